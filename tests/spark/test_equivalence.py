"""The Spark engine gives the Arrow engine's tables, row for row.

The same RAW fixtures (the brief's rules, hostile payloads, drift, corrections out of order
across runs, CDE failures, PII) go through the Arrow engine, the Spark engine, and both in
turn on one topic; Standardized, Curated, ``parse_errors``, curated ``errors``, the drift log,
each run's figures and the accountability equations must be identical. Snapshot ids differ
between catalogs by nature, so lineage columns are compared as positions in their upstream
table's history.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from leanops_dagster.engines.choice import run_curate, run_standardize
from leanops_dagster.iceberg.catalog import open_catalog
from leanops_dagster.iceberg.history import snapshot_order
from leanops_dagster.iceberg.watermarks import read_watermark
from leanops_dagster.pipeline import accountability
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.schemas.loader import load_topic_dir
from leanops_dagster.settings import REPO_ROOT
from tests.dagster.conftest import append_raw, event, raw_row

TABLES = TopicTables("events")
KEY = b"equivalence-key"
NOW = dt.datetime(2026, 1, 20, 8, 0, tzinfo=dt.UTC)
SCHEMA = load_topic_dir(REPO_ROOT / "schemas", "events")


def _run1() -> list[list[dict]]:
    hostile = event("k-hostile", extra={"drop table x; --": "1", "a": {"b": "nested"},
                                        "a_b": "flat", "Mixed.Case": [1, {"x": None}]})
    return [
        [
            raw_row("m1", event("k1", verb="v1"), ingested=5),
            raw_row("m1", event("k1", verb="twin"), ingested=0),  # earlier twin wins (FIFO)
            raw_row("m2", event("k2", extra={"newKey": {"deep": 1.50}})),  # drift
            raw_row("bad-json", "{not json"),
            raw_row("array", "[1, 2]"),
            raw_row("no-key", {"event": {"userId": "user-000001"}, "_metadata": {}}),
            raw_row("m3", hostile),
            raw_row("m4", event("k4", user="not-a-user")),  # CDE regex
            raw_row("m5", event("k5", extra={"event": {"eventType": "nope", "userId":
                                                       "user-000005"}})),  # CDE allowed
        ],
        [
            raw_row("m6", event("k6", minutes=3)),
            raw_row("m7", event("k6", minutes=7, verb="newest")),  # LIFO within increment
            raw_row("m8", {**event("k8"), "event": {"timestamp": "yesterday", "userId":
                                                     "user-000008", "eventType": "click"}}),
        ],
    ]


def _run2() -> list[list[dict]]:
    return [
        [
            raw_row("m1", event("k1"), ingested=90),  # a duplicate across increments
            raw_row("m9", event("k1", minutes=-5, verb="older")),  # late and older: stale
            raw_row("m10", event("k2", minutes=2, verb="newer")),  # a correction: update
            raw_row("m11", event("k6", minutes=7, verb="tie"), ingested=30),  # tie on time
            raw_row("m12", event("k12", extra={"laterKey": "x"})),  # a new column
        ],
    ]


def _run3() -> list[list[dict]]:
    return [[raw_row("m13", event("k13")), raw_row("m14", event("k2", minutes=1))]]


SCENARIO = (_run1, _run2, _run3, list)  # the last run finds nothing new


def _run_scenario(catalog, engines: list[str], scenario=SCENARIO) -> list[tuple[dict, dict]]:
    """Each run's RAW appends, then Standardized and Curated on that run's engine."""
    figures = []
    for number, (appends, engine) in enumerate(zip(scenario, engines, strict=True)):
        for rows in appends():
            append_raw(catalog, rows)
        now = NOW + dt.timedelta(hours=number)
        std = run_standardize(catalog, TABLES, SCHEMA, engine=engine, now=now)
        cur = run_curate(catalog, TABLES, SCHEMA, engine=engine, pii_key=KEY, now=now)
        assert std.balanced and cur.balanced, (engine, std, cur)
        figures.append((_figures(std), _figures(cur)))
    return figures


_ENGINE_SPECIFIC = {"topic", "watermark_from", "watermark_to", "snapshot_id", "files_read",
                    "files_rewritten", "rows_rewritten"}


def _figures(result) -> dict:
    return {k: v for k, v in dataclasses.asdict(result).items() if k not in _ENGINE_SPECIFIC}


def _rows(catalog, identifier, lineage: tuple[str, tuple[str, str]] | None = None):
    """All rows, lineage snapshot ids as positions in their upstream history, sorted (None:
    no such table)."""
    if not catalog.table_exists(identifier):
        return None
    table = catalog.load_table(identifier)
    rows = table.scan().to_arrow().to_pylist()
    if lineage is not None:
        column, upstream = lineage
        positions = snapshot_order(catalog.load_table(upstream))
        for row in rows:
            row[column] = positions[row[column]]
    return table.schema().column_names, sorted(rows, key=lambda r: repr(sorted(r.items(),
                                                                              key=str)))


def _state(catalog) -> dict:
    equations = (accountability.post_raw_equation(catalog, TABLES),
                 accountability.curated_equation(catalog, TABLES))
    return {
        "standardized": _rows(catalog, TABLES.standardized),
        "parse_errors": _rows(catalog, TABLES.parse_errors, ("raw_snapshot_id", TABLES.raw)),
        "curated": _rows(catalog, TABLES.curated),
        "curated_errors": _rows(catalog, TABLES.curated_errors,
                                ("standardized_snapshot_id", TABLES.standardized)),
        "drift_log": _rows(catalog, TABLES.drift_log,
                           ("standardized_snapshot_id", TABLES.standardized)),
        "accountability": [e.as_dict() for e in equations],
    }


@pytest.fixture(scope="module")
def arrow_reference(tmp_path_factory):
    from leanops_dagster.settings import get_settings

    catalog = open_catalog(get_settings(home=tmp_path_factory.mktemp("arrow-home")))
    figures = _run_scenario(catalog, ["arrow"] * len(SCENARIO))
    return figures, _state(catalog)


def test_engines_in_turn_on_one_topic_match_arrow(spark_settings, arrow_reference,
                                                  production_codegen):
    """Spark, then Arrow on Spark's tables, then Spark again on Arrow's: both hand-overs, with
    the engine's own code generation. (Spark alone, run by run, is the killed-and-rerun test
    below.)"""
    reference_figures, reference_state = arrow_reference
    catalog = open_catalog(spark_settings)
    figures = _run_scenario(catalog, ["spark", "arrow", "spark", "arrow"])
    state = _state(catalog)
    for name in reference_state:
        assert state[name] == reference_state[name], name
    assert figures == reference_figures


def test_the_reference_exercises_every_rule(arrow_reference):
    """Guards the fixture itself: each rule the comparison relies on produced rows."""
    figures, state = arrow_reference
    std1, cur1 = figures[0]
    std2, cur2 = figures[1]
    assert std1["duplicates"] == 1 and std1["parse_errors"] == 3 and std2["duplicates"] == 1
    assert cur1["superseded"] >= 1 and cur1["cde_error_rows"] >= 3
    assert cur2["updated"] >= 1 and cur2["superseded"] >= 1
    assert figures[3][0]["rows_read"] == 0 and figures[3][1]["rows_read"] == 0
    assert {r["rule"] for r in state["curated_errors"][1]} >= {"regex", "allowed", "type_cast"}
    assert state["drift_log"][1]
    columns = state["standardized"][0]
    assert "newkey_deep" in columns and "laterkey" in columns
    assert any(c.startswith("drop_table_x") for c in columns)  # sanitised, never executed
    ip = {r["idempotency_key"]: r["ip_address"] for r in state["curated"][1]}
    assert ip["k1"] != "10.0.0.1" and len(ip["k1"]) == 64  # masked with the keyed hash


def test_a_spark_run_killed_between_its_commits_reruns_to_the_same_tables(
    spark_settings, arrow_reference, monkeypatch
):
    """Spark alone, and in run 2 each layer dies after its error table's commit, before its
    own: the rerun records nothing twice, and every run's figures and the final tables are
    the Arrow engine's."""
    from leanops_dagster.engines.spark import curate as spark_curate
    from leanops_dagster.engines.spark import standardize as spark_standardize

    reference_figures, reference_state = arrow_reference
    catalog = open_catalog(spark_settings)

    class Killed(Exception):
        pass

    def killed(*args, **kwargs):
        raise Killed

    for number, appends in enumerate(SCENARIO):
        for rows in appends():
            append_raw(catalog, rows)
        now = NOW + dt.timedelta(hours=number)
        if number == 1:
            with monkeypatch.context() as patch:
                patch.setattr(spark_standardize, "evolve_and_align", killed)
                with pytest.raises(Killed):
                    run_standardize(catalog, TABLES, SCHEMA, engine="spark", now=now)
            # the kill came between the two commits: parse_errors is at RAW's head, not Std
            raw_head = catalog.load_table(TABLES.raw).current_snapshot().snapshot_id
            assert read_watermark(catalog.load_table(TABLES.parse_errors),
                                  "parse_errors.events.raw_snapshot_id") == raw_head
            assert read_watermark(catalog.load_table(TABLES.standardized),
                                  "raw_snapshot_id") != raw_head
        std = run_standardize(catalog, TABLES, SCHEMA, engine="spark", now=now)
        if number == 1:
            with monkeypatch.context() as patch:
                patch.setattr(spark_curate, "_merge", killed)
                with pytest.raises(Killed):
                    run_curate(catalog, TABLES, SCHEMA, engine="spark", pii_key=KEY, now=now)
                std_head = catalog.load_table(TABLES.standardized).current_snapshot().snapshot_id
                assert read_watermark(catalog.load_table(TABLES.curated_errors),
                                      "errors.events.standardized_snapshot_id") == std_head
                assert read_watermark(catalog.load_table(TABLES.curated),
                                      "standardized_snapshot_id") != std_head
        cur = run_curate(catalog, TABLES, SCHEMA, engine="spark", pii_key=KEY, now=now)
        assert (_figures(std), _figures(cur)) == reference_figures[number]
    state = _state(catalog)
    for name in reference_state:
        assert state[name] == reference_state[name], name
