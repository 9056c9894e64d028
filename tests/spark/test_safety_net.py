"""The safety net on the Spark engine: a row that makes a rule raise is quarantined with the
reason and detail the Arrow engine gives it, everything else commits, the equations balance,
and every table and figure is the Arrow engine's.

The faults are injected on the driver (``tests.safety_net.faults``); the Spark engine ships
the rules its driver resolved to its Python workers, so the workers raise on the same rows.
"""

from __future__ import annotations

import datetime as dt

from leanops_dagster import accountability
from leanops_dagster.iceberg.catalog import open_catalog
from leanops_dagster.pipeline.engine import run_curate, run_standardize
from leanops_dagster.settings import get_settings
from tests.dagster.conftest import append_raw, event, raw_row
from tests.safety_net.faults import POISON
from tests.spark.test_equivalence import SCHEMA, TABLES, _figures, _state

KEY = b"safety-net-key"
NOW = dt.datetime(2026, 1, 21, 8, 0, tzinfo=dt.UTC)


def _standardized_poison() -> list[list[list[dict]]]:
    """Runs of RAW appends: poison among good rows in two snapshots, a parse error, then a
    run with nothing new, then one more poisoned row."""
    good = [raw_row(f"m{i:02d}", event(f"k{i}"), minutes=i) for i in range(12)]
    return [
        [[*good[:6], raw_row("p1", event("kp1", verb=POISON))],
         [*good[6:], raw_row("p2", event("kp2", verb=POISON), minutes=5),
          raw_row("bad", "{not json")]],
        [],
        [[raw_row("p3", event("kp3", verb=POISON)), raw_row("m99", event("k99"))]],
    ]


def _curated_poison() -> list[list[list[dict]]]:
    return [
        [[raw_row("m1", event("k1")), raw_row("p1", event("k2", verb=POISON)),
          raw_row("m3", event("k3", user="nobody")), raw_row("m4", event("k4"))]],
        [],
        [[raw_row("p2", event("k1", verb=POISON, minutes=9), minutes=9),  # poisoned correction
          raw_row("m5", event("k4", verb="newer", minutes=4), minutes=4)]],
    ]


def _run(catalog, engine: str, runs) -> tuple[list, dict]:
    figures = []
    for number, appends in enumerate(runs):
        for rows in appends:
            append_raw(catalog, rows)
        now = NOW + dt.timedelta(hours=number)
        std = run_standardize(catalog, TABLES, SCHEMA, engine=engine, now=now)
        cur = run_curate(catalog, TABLES, SCHEMA, engine=engine, pii_key=KEY, now=now)
        assert std.balanced and cur.balanced, (engine, std, cur)
        figures.append((_figures(std), _figures(cur)))
    post_raw = accountability.post_raw_equation(catalog, TABLES)
    curated = accountability.curated_equation(catalog, TABLES)
    assert post_raw.balanced and curated.balanced, (post_raw, curated)
    return figures, _state(catalog)


def _arrow(tmp_path, runs):
    return _run(open_catalog(get_settings(home=tmp_path / "arrow-home")), "arrow", runs)


def _internal_rows(state: dict, table: str, reason: str) -> list[tuple]:
    _, rows = state[table]
    return sorted((r["message_id"], r[reason], r["error_detail"]) for r in rows
                  if r[reason].startswith("internal:"))


def test_a_row_that_makes_flatten_raise_is_quarantined_as_on_arrow(
    spark_settings, tmp_path, poisoned_flatten
):
    runs = _standardized_poison()
    arrow_figures, arrow_state = _arrow(tmp_path, runs)
    figures, state = _run(open_catalog(spark_settings), "spark", runs)

    (std1, cur1), (std2, _), (std3, _) = figures
    assert (std1["rows_read"], std1["rows_written"], std1["parse_errors"],
            std1["quarantined"]) == (15, 12, 1, 2)
    assert (std2["rows_read"], std2["quarantined"]) == (0, 0)  # no endless retry
    assert (std3["rows_read"], std3["rows_written"], std3["quarantined"]) == (2, 1, 1)
    assert (cur1["rows_read"], cur1["inserted"], cur1["quarantined"]) == (12, 12, 0)
    detail = "ValueError: injected: a payload no rule foresaw"
    assert _internal_rows(state, "parse_errors", "error_reason") == [
        (m, "internal:ValueError", detail) for m in ("p1", "p2", "p3")]
    post_raw = state["accountability"][0]
    assert post_raw["right"]["quarantined"] == 3, post_raw

    assert figures == arrow_figures
    for name in arrow_state:
        assert state[name] == arrow_state[name], name


def test_a_row_that_makes_validation_raise_is_quarantined_as_on_arrow(
    spark_settings, tmp_path, poisoned_validate
):
    runs = _curated_poison()
    arrow_figures, arrow_state = _arrow(tmp_path, runs)
    figures, state = _run(open_catalog(spark_settings), "spark", runs)

    (_, cur1), (_, cur2), (_, cur3) = figures
    assert (cur1["rows_read"], cur1["inserted"], cur1["cde_error_rows"],
            cur1["quarantined"]) == (4, 2, 1, 1)
    assert (cur2["rows_read"], cur2["quarantined"]) == (0, 0)
    assert (cur3["rows_read"], cur3["updated"], cur3["quarantined"]) == (2, 1, 1)
    detail = "KeyError: 'injected: a rule lookup failed'"
    assert _internal_rows(state, "curated_errors", "rule") == [
        ("p1", "internal:KeyError", detail), ("p2", "internal:KeyError", detail)]
    curated = state["accountability"][1]
    assert curated["right"]["quarantined"] == 2, curated
    # the poisoned correction of k1 did not supersede its stored version
    _, curated_rows = state["curated"]
    assert {r["idempotency_key"]: r["verb"] for r in curated_rows} == {
        "k1": "clicked", "k4": "newer"}

    assert figures == arrow_figures
    for name in arrow_state:
        assert state[name] == arrow_state[name], name
