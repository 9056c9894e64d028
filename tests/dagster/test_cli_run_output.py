"""`leanops run` output: one table per run, one line per failure, checks that stay truthful.

Runs the real job in process on a fresh LEANOPS_HOME (see conftest); a raising step and a held
lease are simulated by replacing the layer function the asset calls, everything else is real.
"""

from __future__ import annotations

import json
import re

import dagster as dg
from click.testing import CliRunner

import leanops_dagster.assets.curated as curated_asset
import leanops_dagster.assets.standardized as standardized_asset
from leanops_dagster.cli import main
from leanops_dagster.iceberg.lease import TableLeases, lease_name
from leanops_dagster.pipeline import curate as curate_module
from leanops_dagster.pipeline import standardize as standardize_module
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.standardize import StandardizeResult
from leanops_dagster.schemas.registry import SchemaRegistry
from tests.dagster.conftest import append_raw, event, raw_row


def _run(*args: str):
    return CliRunner().invoke(main, ["run", "--topic", "events", *args])


def _rows(output: str) -> dict[str, list[str]]:
    """Body rows of the printed Rich tables, keyed by their first cell (wrapped cells joined)."""
    rows: dict[str, list[str]] = {}
    last: str | None = None
    for line in output.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if cells[0]:
            last = cells[0]
            rows[last] = cells[1:]
        elif last is not None:  # a wrapped cell continues on the next line
            rows[last] = [f"{a} {b}".strip() for a, b in zip(rows[last], cells[1:], strict=True)]
    return rows


def _run_id(output: str) -> str:
    return re.search(r"\(run ([0-9a-f-]{36})\)", output).group(1)


def _check_evaluations(run_id: str) -> dict[str, dg.AssetCheckEvaluation]:
    """What the Dagster instance (the UI) recorded for each check of the run."""
    instance = dg.DagsterInstance.get()
    records = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    return {
        r.dagster_event.event_specific_data.check_name: r.dagster_event.event_specific_data
        for r in records
    }


def test_run_prints_one_table_of_layers_and_checks_not_the_event_log(
    settings, registry, catalog
):
    registry.deploy("events")
    append_raw(catalog, [
        raw_row("m1", event("k1")),
        raw_row("m1", event("k1")),  # network duplicate of m1
        raw_row("m2", event("k1", verb="viewed"), minutes=3),  # newer version of k1
        raw_row("m3", event("k2"), minutes=1),
        raw_row("x1", "not json"),
    ])
    ran = _run()
    assert ran.exit_code == 0, ran.output
    assert ran.stderr == ""
    assert "DEBUG" not in ran.output and "STEP_START" not in ran.output
    rows = _rows(ran.stdout)
    #                          status  read written errors duplicates quarantined
    assert rows["standardized"] == ["done", "5", "3", "1", "1", "0"]
    assert rows["curated"] == ["done", "3", "2", "0", "1", "0"]
    assert rows["post_raw_water_balance"][:2] == ["standardized/records", "pass"]
    assert rows["post_raw_water_balance"][2] == (
        "balanced: 5 RAW rows read = 3 written + 1 parse errors + 1 duplicates + 0 quarantined"
    )
    assert rows["curated_water_balance"][2] == (
        "balanced: 3 Standardized rows read = 2 inserted + 0 updated + 1 superseded + "
        "0 CDE error rows + 0 quarantined"
    )
    assert rows["cde_error_rate"][1:] == ["pass", "0.0 % <= 5 % threshold: 0 of 3 rows"]
    assert rows["schema_drift"][1] == "pass"

    # the UI shows the same sentence, and the materialization carries the new fields
    evaluations = _check_evaluations(_run_id(ran.stdout))
    assert evaluations["cde_error_rate"].description == rows["cde_error_rate"][2]
    assert evaluations["post_raw_water_balance"].description == rows["post_raw_water_balance"][2]
    instance = dg.DagsterInstance.get()
    for key in (standardized_asset.STANDARDIZED, curated_asset.CURATED):
        event_ = instance.get_latest_materialization_event(key)
        metadata = event_.asset_materialization.metadata
        assert metadata["quarantined"].value == 0
        assert "busy" not in metadata


def test_failing_cde_error_rate_exits_non_zero_with_exactly_its_one_line(
    settings, registry, catalog
):
    registry.deploy("events")
    append_raw(catalog, [
        raw_row(f"m{i}", event(f"k{i}", user="nobody" if i < 2 else f"user-00000{i}"),
                minutes=i)
        for i in range(5)
    ])
    ran = _run()
    assert ran.exit_code == 1
    line = (
        "cde_error_rate 40.0 % > 5 % threshold: 2 of 5 rows; rows are committed; "
        "see curated.errors"
    )
    assert ran.stderr == line + "\n"
    assert "Traceback" not in ran.output and "Stack Trace" not in ran.output
    assert _rows(ran.stdout)["cde_error_rate"][1] == "FAIL"
    # what the line claims is true: the valid rows are in Curated, the failing ones in errors
    tables = TopicTables("events")
    assert catalog.load_table(tables.curated).scan().to_arrow().num_rows == 3
    errors = catalog.load_table(tables.curated_errors).scan().to_arrow()
    assert sorted(set(errors.column("message_id").to_pylist())) == ["m0", "m1"]
    evaluation = _check_evaluations(_run_id(ran.stdout))["cde_error_rate"]
    assert not evaluation.passed
    assert f"cde_error_rate {evaluation.description}" == line


def test_a_raising_step_is_one_line_and_verbose_brings_the_stack_trace(
    settings, registry, catalog, monkeypatch
):
    registry.deploy("events")
    append_raw(catalog, [raw_row("m1", event("k1"))])

    def out_of_range(*_args, **_kwargs):
        raise OverflowError("date value out of range\n(while computing Parquet statistics)")

    # the assets run the layer through engines.choice, which calls the pipeline module's own
    monkeypatch.setattr(curate_module, "curate_topic", out_of_range)
    ran = _run()
    assert ran.exit_code == 1
    assert ran.stderr == (
        "curated/records raised OverflowError: date value out of range "
        "(while computing Parquet statistics)\n"
    )
    assert "Stack Trace" not in ran.output and "out_of_range" not in ran.output
    rows = _rows(ran.stdout)
    assert rows["standardized"][0] == "done"
    assert rows["curated"][0] == "raised"

    verbose = _run("--verbose")
    assert verbose.exit_code == 1
    assert "STEP_FAILURE" in verbose.stderr and "Stack Trace" in verbose.stderr
    assert "in out_of_range" in verbose.stderr  # the frame that raised
    assert verbose.stderr.splitlines()[-1] == (
        "curated/records raised OverflowError: date value out of range "
        "(while computing Parquet statistics)"
    )


def test_idle_rerun_keeps_the_drift_warning_and_says_nothing_read(settings, registry, catalog):
    registry.deploy("events")
    append_raw(catalog, [
        raw_row("m1", event("k1", extra={"newKey": 1, "promo": {"code": "A"}})),
        raw_row("m2", event("k2"), minutes=1),
    ])
    first = _run()
    assert first.exit_code == 0, first.output
    assert _rows(first.stdout)["schema_drift"][1] == "WARN"

    idle = _run()
    assert idle.exit_code == 0, idle.output  # a warning is not a failure
    rows = _rows(idle.stdout)
    assert rows["standardized"][:2] == ["nothing read", "0"]
    assert rows["curated"][:2] == ["nothing read", "0"]
    assert rows["schema_drift"][1:] == [
        "WARN",
        "2 Standardized columns the curated schema does not declare (newkey, promo_code); "
        "they stay in Standardized; see curated.drift_log, extend the curated schema to "
        "promote them",
    ]
    for check in ("post_raw_water_balance", "curated_water_balance", "cde_error_rate"):
        assert rows[check][1] == "pass"
        assert rows[check][2].startswith("nothing read: ")
    evaluations = _check_evaluations(_run_id(idle.stdout))
    drift = evaluations["schema_drift"]
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.WARN
    assert drift.metadata["count"].value == 2
    assert drift.metadata["seen_this_run"].value == []  # this run read nothing, the log did
    assert evaluations["curated_water_balance"].metadata["nothing_read"].value is True


def test_drift_clears_once_the_curated_schema_declares_the_column(
    settings, catalog, tmp_schemas, monkeypatch
):
    monkeypatch.setenv("LEANOPS_SCHEMA_REGISTRY", str(tmp_schemas))
    registry = SchemaRegistry(tmp_schemas, settings.home / "registry")
    registry.deploy("events")
    append_raw(catalog, [raw_row("m1", event("k1", extra={"newKey": "x"}))])
    assert _rows(_run().stdout)["schema_drift"][1] == "WARN"

    curated_file = tmp_schemas / "events" / "curated.json"
    spec = json.loads(curated_file.read_text())
    spec["columns"].append({"name": "new_key", "source": "newkey", "type": "string"})
    curated_file.write_text(json.dumps(spec))
    registry.deploy("events")
    rows = _rows(_run().stdout)
    assert rows["schema_drift"][1:] == [
        "pass", "no drift: every Standardized column is declared by the curated schema"
    ]


def test_a_layer_whose_lease_is_held_elsewhere_says_so_and_exits_0(
    settings, registry, catalog, monkeypatch
):
    registry.deploy("events")
    append_raw(catalog, [raw_row("m1", event("k1"))])
    # a real lease, held by another process (TableLeases is what every layer run takes)
    TableLeases(catalog, settings.standardized_namespace).acquire(
        lease_name("events", "standardized"), "otherhost:1234:abcd"
    )
    ran = _run()
    assert ran.exit_code == 0, ran.output
    line = next(x for x in ran.stdout.splitlines() if x.startswith("another run of events"))
    assert line.startswith(
        "another run of events standardized is in progress (held by otherhost:1234:abcd"
    ) and line.endswith("; nothing to do")
    rows = _rows(ran.stdout)
    assert rows["standardized"][0] == "busy"
    assert rows["post_raw_water_balance"][2] == (
        "not evaluated: another run of events standardized is in progress; nothing to do"
    )
    metadata = dg.DagsterInstance.get().get_latest_materialization_event(
        standardized_asset.STANDARDIZED
    ).asset_materialization.metadata
    assert metadata["busy"].value == line
    assert not catalog.table_exists(TopicTables("events").standardized)  # nothing was read


def test_help_says_what_run_prints_and_names_verbose():
    shown = CliRunner().invoke(main, ["run", "--help"])
    assert shown.exit_code == 0
    text = " ".join(shown.output.split())
    assert "--verbose" in text and "one line per failed check or raised step" in text


def test_a_failed_blocking_balance_names_the_check_and_curated_does_not_run(
    settings, registry, catalog, monkeypatch
):
    registry.deploy("events")
    append_raw(catalog, [raw_row("m1", event("k1"))])
    monkeypatch.setattr(  # a layer that lost two rows: the balance must catch it
        standardize_module, "standardize_topic",
        lambda _catalog, tables, _schema, **_options: StandardizeResult(
            tables.topic, rows_read=3, rows_written=1
        ),
    )
    ran = _run()
    assert ran.exit_code == 1
    assert ran.stderr == (
        "post_raw_water_balance off by 2: 3 RAW rows read != 1 written + 0 parse errors + "
        "0 duplicates + 0 quarantined (= 1); Standardized is committed, Curated does not run "
        "in this run; see standardized.parse_errors\n"
    )
    rows = _rows(ran.stdout)
    assert rows["curated"][0] == "not run"
    assert "curated_water_balance" not in rows  # no verdict without a run
