"""SchemaRegistry deploy/list/diff on a local directory and on S3 (moto); the CLI."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from leanops_dagster.cli import main
from leanops_dagster.schemas.loader import SchemaFileError, SchemaNotFoundError
from leanops_dagster.schemas.registry import SchemaRegistry, content_version
from leanops_dagster.settings import REPO_ROOT, get_settings

T1 = dt.datetime(2026, 1, 19, 10, 0, tzinfo=dt.UTC)
T2 = dt.datetime(2026, 1, 20, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def source(tmp_path):
    root = tmp_path / "schemas"
    shutil.copytree(REPO_ROOT / "schemas", root)
    return root


def edit_curated(source, topic, change):
    path = source / topic / "curated.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def exercise(registry: SchemaRegistry, source) -> None:
    assert registry.deployed_topics() == []
    assert registry.deployed_versions() == {}
    with pytest.raises(SchemaNotFoundError, match="leanops schema deploy events"):
        registry.load("events")

    first = registry.deploy("events", now=T1)
    assert first.changed and first.previous_version is None
    assert first.deployed_at == "2026-01-19T10:00:00+00:00"
    assert registry.deployed_topics() == ["events"]
    assert registry.deployed_versions() == {"events": first.version}
    loaded = registry.load("events")
    assert loaded.version == first.version == content_version(registry.load_source("events"))
    assert loaded.curated == registry.load_source("events").curated

    again = registry.deploy("events", now=T2)  # unchanged: no-op, deployed_at kept
    assert not again.changed and again.deployed_at == first.deployed_at
    assert registry.diff("events") == []

    edit_curated(source, "events", lambda d: d["columns"].append(
        {"name": "country", "source": "event_metadata_geo_country", "type": "string"}))
    edit_curated(source, "events", lambda d: d.update(cde_error_rate_threshold=0.1))
    assert registry.diff("events") == [
        "~ curated.cde_error_rate_threshold: 0.05 -> 0.1",
        "+ curated column country (string, source=event_metadata_geo_country)",
    ]
    second = registry.deploy("events", now=T2)
    assert second.changed and second.previous_version == first.version
    assert registry.deployed_versions() == {"events": second.version}
    assert registry.load("events").deployed_at == "2026-01-20T10:00:00+00:00"

    assert registry.diff("sensor_readings")[0].startswith("+ not deployed yet")
    results = registry.deploy_all(now=T2)
    assert [(r.topic, r.changed) for r in results] == [("events", False),
                                                       ("sensor_readings", True)]
    assert registry.deployed_topics() == ["events", "sensor_readings"]


def test_local_store(tmp_path, source):
    exercise(SchemaRegistry(source, tmp_path / "registry"), source)
    assert sorted(p.name for p in (tmp_path / "registry").iterdir()) == [
        "events.json", "sensor_readings.json"
    ]


@mock_aws
def test_s3_store(source):
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="schemas-bucket")
    registry = SchemaRegistry(source, "s3://schemas-bucket/lean-ops/schemas", s3_client=client)
    exercise(registry, source)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="schemas-bucket")["Contents"]]
    assert sorted(keys) == ["lean-ops/schemas/events.json", "lean-ops/schemas/sensor_readings.json"]


def test_invalid_source_is_not_deployed(tmp_path, source):
    registry = SchemaRegistry(source, tmp_path / "registry")
    edit_curated(source, "sensor_readings", lambda d: d["columns"][0].update(type="decimal(99,1)"))
    with pytest.raises(SchemaFileError, match=r"sensor_readings/curated.json: columns.0.type"):
        registry.deploy_all()
    assert registry.deployed_topics() == []  # all or nothing
    with pytest.raises(SchemaFileError):
        registry.deploy("sensor_readings")


def test_from_settings(tmp_path, source):
    local = SchemaRegistry.from_settings(get_settings(home=tmp_path, schema_registry=str(source)))
    assert local.source_dir == source and local.deployed_uri == str(tmp_path / "registry")
    with mock_aws():
        aws = SchemaRegistry.from_settings(
            get_settings(home=tmp_path, schema_registry="s3://b/p"),
            s3_client=boto3.client("s3", region_name="us-east-1"),
        )
    assert aws.source_dir == REPO_ROOT / "schemas" and aws.deployed_uri == "s3://b/p"


def test_resource_delegates(tmp_path, source):
    from leanops_dagster.resources.schema_registry import SchemaRegistryResource

    settings = get_settings(home=tmp_path, schema_registry=str(source))
    resource = SchemaRegistryResource.from_settings(settings)
    assert resource.deployed_versions() == {}
    SchemaRegistry.from_settings(settings).deploy("events")
    assert resource.deployed_topics() == ["events"]
    assert resource.load("events").topic == "events"


@pytest.fixture
def cli_env(tmp_path, source, monkeypatch):
    monkeypatch.setenv("LEANOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LEANOPS_SCHEMA_REGISTRY", str(source))
    return source


def test_cli_deploy_list_diff(cli_env):
    runner = CliRunner()
    listed = runner.invoke(main, ["schema", "list"])
    assert listed.exit_code == 0, listed.output
    assert "not deployed" in listed.output

    deployed = runner.invoke(main, ["schema", "deploy", "events"])
    assert deployed.exit_code == 0, deployed.output
    assert deployed.output.startswith("events: deployed version ")
    assert "unchanged" in runner.invoke(main, ["schema", "deploy", "events"]).output

    listed = runner.invoke(main, ["schema", "list"])
    assert "events" in listed.output and "up to date" in listed.output

    same = runner.invoke(main, ["schema", "diff", "events"])
    assert same.output == "events: no differences (deployed = source)\n"
    edit_curated(cli_env, "events", lambda d: d["columns"].pop())
    changed = runner.invoke(main, ["schema", "diff", "events"])
    assert changed.exit_code == 0
    assert "- curated column user_agent (string, source=event_metadata_useragent)" in (
        changed.output
    )
    assert "source differs" in runner.invoke(main, ["schema", "list"]).output

    refused = runner.invoke(main, ["schema", "deploy", "--all"])  # a removed column: breaking
    assert refused.exit_code == 1
    assert "events: 1 breaking change(s) refused" in refused.output
    assert "removed column: its stored values would be dropped" in refused.output
    listed = runner.invoke(main, ["schema", "list"]).output
    assert "not deployed" in listed  # all or nothing: sensor_readings was not deployed either

    shutil.copy(REPO_ROOT / "schemas/events/curated.json", cli_env / "events/curated.json")
    everything = runner.invoke(main, ["schema", "deploy", "--all"])
    assert everything.exit_code == 0, everything.output
    assert "events: unchanged" in everything.output
    assert "sensor_readings: deployed" in everything.output


def test_cli_errors(cli_env):
    runner = CliRunner()
    edit_curated(cli_env, "events", lambda d: d["columns"][1].update(type="text"))
    bad = runner.invoke(main, ["schema", "deploy", "events"])
    assert bad.exit_code == 1
    assert "events/curated.json: columns.1.type: Value error, unsupported type 'text'" in (
        bad.output
    )
    missing = runner.invoke(main, ["schema", "deploy", "payments"])
    assert missing.exit_code == 1 and "no schema for topic 'payments'" in missing.output
    usage = runner.invoke(main, ["schema", "deploy"])
    assert usage.exit_code == 2
    assert runner.invoke(main, ["schema", "deploy", "events", "--from-raw"]).exit_code == 2
    assert runner.invoke(main, ["schema", "deploy", "--all", "--rebuild"]).exit_code == 2
    invalid = runner.invoke(main, ["schema", "diff", "Bad-Topic"])
    assert invalid.exit_code == 2


def test_cli_diff_labels_each_change(cli_env):
    runner = CliRunner()
    assert runner.invoke(main, ["schema", "deploy", "events"]).exit_code == 0

    def change(d):
        d["columns"].append(
            {"name": "country", "source": "event_metadata_country", "type": "string"})
        next(c for c in d["columns"] if c["name"] == "device_id")["type"] = "long"

    edit_curated(cli_env, "events", change)
    shown = runner.invoke(main, ["schema", "diff", "events"])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0] == "events: deployed -> source (1 compatible, 1 breaking)"
    assert lines[1].split() == ["compatible", "+", "curated", "column", "country",
                                "(string,", "source=event_metadata_country)"]
    assert "rows already curated read it as null" in lines[2]
    assert lines[3].split()[:2] == ["breaking", "~"]
    assert "device_id: type: 'string' -> 'long'" in lines[3]
    assert "not an Iceberg type promotion" in lines[4]


def test_cli_check_fails_on_breaking_changes_only(cli_env):
    runner = CliRunner()
    fresh = runner.invoke(main, ["schema", "check"])  # nothing deployed: onboarding only
    assert fresh.exit_code == 0, fresh.output
    assert fresh.output.count("topic_onboarded") == 0  # kinds are for code, not the table
    assert fresh.output.count("first deployment") == 2
    assert runner.invoke(main, ["schema", "deploy", "--all"]).exit_code == 0
    clean = runner.invoke(main, ["schema", "check"])
    assert clean.exit_code == 0 and clean.output.count("no differences") == 2
    assert clean.output.rstrip().endswith("no breaking changes")

    edit_curated(cli_env, "events", lambda d: d["columns"].append(
        {"name": "country", "source": "event_metadata_country", "type": "string"}))
    compatible = runner.invoke(main, ["schema", "check"])
    assert compatible.exit_code == 0, compatible.output
    assert "compatible" in compatible.output and "country" in compatible.output

    edit_curated(cli_env, "sensor_readings", lambda d: d["columns"].pop())
    breaking = runner.invoke(main, ["schema", "check"])
    assert breaking.exit_code == 1
    assert "removed column" in breaking.output
    assert "breaking or invalid schema changes in: sensor_readings" in breaking.output

    edit_curated(cli_env, "events", lambda d: d["columns"][0].update(type="text"))
    invalid = runner.invoke(main, ["schema", "check"])
    assert invalid.exit_code == 1
    assert "breaking or invalid schema changes in: events, sensor_readings" in invalid.output
