"""Injector configs and generators: validation, determinism, realistic shapes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from leanops_dagster.local.injector.config import ConfigError, known_configs, load_config
from leanops_dagster.local.injector.demo_mix import demo_expected, demo_mix
from leanops_dagster.local.injector.generators import POISON_MARKER, generate
from leanops_dagster.settings import REPO_ROOT

SCENARIOS = ["happy_path", "thundering_herd", "malformed", "schema_drift", "duplicates",
             "corrections", "processing_error"]


def test_every_scenario_exists_and_validates():
    assert set(SCENARIOS) <= set(known_configs())
    for name in SCENARIOS:
        config = load_config(name)
        plan = generate(config)
        assert {t: len(b) for t, b in plan.items()} == {
            t: e["sent"] for t, e in config.expected().items()
        }
        assert plan == generate(config)  # deterministic


def test_happy_path_is_5000_valid_events():
    bodies = generate(load_config("happy_path"))["events"]
    assert len(bodies) == 5000
    first = json.loads(bodies[0])
    assert set(first) == {"event", "sessionId", "_metadata"}
    assert set(first["event"]) == {"userId", "eventType", "verb", "timestamp", "metadata"}
    assert set(first["event"]["metadata"]) == {"ipAddress", "deviceId", "userAgent"}
    assert set(first["_metadata"]) == {"idempotencyKeyResource", "messageId", "publishTime"}
    assert len({json.loads(b)["_metadata"]["messageId"] for b in bodies}) == 5000


def test_sensor_readings_shape():
    body = json.loads(generate(load_config("thundering_herd"))["sensor_readings"][0])
    assert {"deviceId", "temperature", "humidity", "battery", "readingTime"} <= set(body)
    assert isinstance(body["_metadata"]["publishTime"], int)  # epoch milliseconds


def test_scenario_specifics():
    drift = generate(load_config("schema_drift"))["events"]
    assert sum("geo" in json.loads(b)["event"]["metadata"] for b in drift) == 100
    dups = generate(load_config("duplicates"))["events"]
    assert len(dups) - len(set(dups)) == 60
    corr = [json.loads(b) for b in generate(load_config("corrections"))["events"]]
    by_key: dict[str, list[dict]] = {}
    for record in corr:
        by_key.setdefault(record["_metadata"]["idempotencyKeyResource"], []).append(record)
    versions = [v for v in by_key.values() if len(v) == 2]
    assert len(versions) == 40
    # the newer publishTime arrives first: out of order
    assert all(v[0]["_metadata"]["publishTime"] > v[1]["_metadata"]["publishTime"]
               for v in versions)
    poison = generate(load_config("processing_error"))["events"]
    assert sum(POISON_MARKER in b for b in poison) == 5


def test_seed_changes_the_data():
    assert demo_mix(seed=1) != demo_mix(seed=2)
    assert {t: len(b) for t, b in demo_mix().items()} == {
        t: e["sent"] for t, e in demo_expected().items()
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read JSON"),
        (json.dumps({"name": "x", "streams": []}), "streams"),
        (json.dumps({"name": "x", "streams": [{"topic": "Bad", "records": 1}]}),
         "invalid topic name"),
        (json.dumps({"name": "x", "streams": [{"topic": "other", "records": 1}]}),
         "needs a generator"),
        (json.dumps({"name": "x", "streams": [{"topic": "events", "records": 1,
                                                "duplicates": 2}]}), "exceeds records"),
    ],
)
def test_invalid_configs_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "c.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_the_seeds_command_runs_from_the_repository_root_as_leanops_inject():
    """``python tools/data_injector/main.py --config FILE``: a thin entry over ``leanops inject``
    (no sys.path patching: the installed project is importable)."""
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "tools/data_injector/main.py", *args],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                              check=False)

    usage = run("--help")
    assert usage.returncode == 0 and usage.stdout.startswith("Usage: data_injector")
    assert "--config" in usage.stdout
    unknown = run("--config", "no_such_scenario")
    assert unknown.returncode == 2
    assert "unknown config 'no_such_scenario'" in unknown.stderr and "happy_path" in unknown.stderr
