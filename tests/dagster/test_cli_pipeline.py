"""`leanops run` and `leanops report` on a fresh LEANOPS_HOME."""

import json

from click.testing import CliRunner

from leanops_dagster.cli import main
from tests.dagster.conftest import append_raw, event, raw_row


def test_run_then_report_balances(settings, registry, catalog):
    registry.deploy("events")
    append_raw(catalog, [raw_row("m1", event("k1")), raw_row("m2", event("k1", verb="b"),
                                                              minutes=3), raw_row("x", "oops")])
    runner = CliRunner()
    ran = runner.invoke(main, ["run", "--topic", "events"])
    assert ran.exit_code == 0, ran.output
    assert "standardized/records" in ran.output and "curated/records" in ran.output

    report = runner.invoke(main, ["report", "--topic", "events", "--json"])
    assert report.exit_code == 0, report.output
    equations = {e["layer"]: e for e in json.loads(report.output)}
    assert equations["post-RAW"]["right"] == {
        "standardized": 2, "parse_errors": 1, "duplicates": 0, "quarantined": 0}
    assert equations["curated"]["right"] == {
        "curated": 1, "updates": 0, "superseded": 1, "cde_error_rows": 0,
        "quarantined": 0}
    assert all(e["balanced"] for e in equations.values())


def test_run_refuses_a_topic_without_schema_and_a_bad_name(settings):
    runner = CliRunner()
    missing = runner.invoke(main, ["run", "--topic", "orders"])
    assert missing.exit_code != 0
    assert "no deployed schema" in missing.output
    bad = runner.invoke(main, ["report", "--topic", "Bad-Name"])
    assert bad.exit_code == 2
    assert "invalid topic name" in bad.output
