"""``leanops inject / raw / info``: argument errors are one line, exit 2, nothing written."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from leanops_dagster.cli import main


@pytest.fixture
def run(tmp_path):
    home = tmp_path / "home"

    def invoke(*args: str):
        result = CliRunner().invoke(main, list(args), env={"LEANOPS_HOME": str(home)})
        return result, home

    return invoke


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("inject", "--topic", "Bad-Topic", "--file", "x.jsonl"), "invalid topic name"),
        (("inject", "--topic", "1events", "--file", "x.jsonl"), "invalid topic name"),
        (("inject", "--config", "no_such_scenario"), "unknown config 'no_such_scenario'"),
        (("inject", "--config", "missing/dir/x.json"), "unknown config"),
        (("inject", "--topic", "events", "--file", "/nonexistent/x.jsonl"), "no such file"),
        (("inject", "--topic", "events"), "give --config FILE"),
        (("inject", "--config", "happy_path", "--topic", "events"), "either --config"),
        (("raw", "--topic", "Nope!"), "invalid topic name"),
        (("raw", "--topic", "events"), "no catalog under"),
    ],
)
def test_argument_errors_are_one_line_and_write_nothing(run, args, expected):
    result, home = run(*args)
    assert expected in _one_line_error(result)
    assert not home.exists()


def test_invalid_config_content_is_one_line(run, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "streams": [{"topic": "events", "records": -1,
                                                          "typo": 1}]}))
    result, home = run("inject", "--config", str(bad))
    line = _one_line_error(result)
    assert "streams.0.records" in line and "streams.0.typo" in line
    assert not home.exists()


def test_line_sqs_cannot_carry_is_rejected_before_sending(run, tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"ok": 1}\n{"nul": "\x00"}\n')
    result, home = run("inject", "--topic", "events", "--file", str(data))
    assert "bad.jsonl:2" in _one_line_error(result)
    assert not home.exists()


def test_info_on_a_fresh_home_lists_properties_without_creating_it(run):
    result, home = run("info", "--json")
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    assert info["catalog"]["name"] == "leanops"
    assert info["catalog"]["uri"] == f"sqlite:///{home / 'catalog.db'}"
    assert info["namespaces"] == {}
    assert not home.exists()


def test_inject_file_then_raw_and_info(run, tmp_path):
    data = tmp_path / "mixed.jsonl"
    lines = ['{"_metadata": {"messageId": "m-1"}, "v": 1}', "not json at all", '{"a":', "[]"]
    data.write_text("\n".join(lines) + "\n\n")
    result, _ = run("inject", "--topic", "cli_topic", "--file", str(data), "--json")
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["sent"] == {"cli_topic": 4}
    assert outcome["delivered"] == {"cli_topic_staging": 4}
    assert "1 empty line(s) skipped" in result.stderr

    result, _ = run("raw", "--topic", "cli_topic", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 4
    assert summary["latest_snapshot_id"] == summary["snapshots"][-1]["snapshot_id"]

    result, _ = run("raw", "--topic", "other_topic")
    assert "no RAW table" in _one_line_error(result)

    result, _ = run("info", "--json")
    info = json.loads(result.stdout)
    assert info["namespaces"] == {"raw": ["cli_topic_staging"]}
    from pyiceberg.catalog import load_catalog

    props = info["catalog"]["properties"]
    table = load_catalog(info["catalog"]["name"], **props).load_table("raw.cli_topic_staging")
    assert sorted(table.scan().to_arrow()["json_payload"].to_pylist()) == sorted(lines)
