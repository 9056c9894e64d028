"""The safety net on the Spark engine: a row that makes a rule raise is quarantined with the
reason and detail the Arrow engine gives it, everything else commits, the equations balance,
and every table and figure is the Arrow engine's.

The faults are injected on the driver (``tests.safety_net.faults``); the Spark engine ships
the rules its driver resolved to its Python workers, so the workers raise on the same rows.
"""

from __future__ import annotations

from leanops_dagster.iceberg.catalog import open_catalog
from leanops_dagster.settings import get_settings
from tests.dagster.conftest import event, raw_row
from tests.safety_net.faults import POISON
from tests.spark.test_equivalence import _run_scenario, _state


def _standardized_poison():
    """Runs of RAW appends: poison among good rows in two snapshots and a parse error, then
    a run with nothing new, then one more poisoned row."""
    good = [raw_row(f"m{i:02d}", event(f"k{i}"), minutes=i) for i in range(12)]
    return (
        lambda: [
            [*good[:6], raw_row("p1", event("kp1", verb=POISON))],
            [
                *good[6:],
                raw_row("p2", event("kp2", verb=POISON), minutes=5),
                raw_row("bad", "{not json"),
            ],
        ],
        list,
        lambda: [[raw_row("p3", event("kp3", verb=POISON)), raw_row("m99", event("k99"))]],
    )


def _curated_poison():
    """Poison among good rows and a CDE failure, nothing new, then a poisoned correction."""
    return (
        lambda: [
            [
                raw_row("m1", event("k1")),
                raw_row("p1", event("k2", verb=POISON)),
                raw_row("m3", event("k3", user="nobody")),
                raw_row("m4", event("k4")),
            ]
        ],
        list,
        lambda: [
            [
                raw_row("p2", event("k1", verb=POISON, minutes=9), minutes=9),
                raw_row("m5", event("k4", verb="newer", minutes=4), minutes=4),
            ]
        ],
    )


def _spark_as_on_arrow(spark_settings, tmp_path, scenario) -> tuple[list, dict]:
    """The scenario through each engine in its own catalog: every run's figures and every
    table (the accountability equations included) must be identical; Spark's are returned."""
    arrow = open_catalog(get_settings(home=tmp_path / "arrow-home"))
    arrow_figures = _run_scenario(arrow, ["arrow"] * len(scenario), scenario)
    arrow_state = _state(arrow)
    spark = open_catalog(spark_settings)
    figures = _run_scenario(spark, ["spark"] * len(scenario), scenario)
    state = _state(spark)
    assert figures == arrow_figures
    for name in arrow_state:
        assert state[name] == arrow_state[name], name
    assert all(e["balanced"] for e in state["accountability"]), state["accountability"]
    return figures, state


def _internal_rows(state: dict, table: str, reason: str) -> list[tuple]:
    _, rows = state[table]
    return sorted(
        (r["message_id"], r[reason], r["error_detail"])
        for r in rows
        if r[reason].startswith("internal:")
    )


def test_a_row_that_makes_flatten_raise_is_quarantined_as_on_arrow(
    spark_settings, tmp_path, poisoned_flatten
):
    figures, state = _spark_as_on_arrow(spark_settings, tmp_path, _standardized_poison())
    (std1, cur1), (std2, _), (std3, _) = figures
    assert (std1["rows_read"], std1["rows_written"], std1["parse_errors"], std1["quarantined"]) == (
        15,
        12,
        1,
        2,
    )
    assert (std2["rows_read"], std2["quarantined"]) == (0, 0)  # no endless retry
    assert (std3["rows_read"], std3["rows_written"], std3["quarantined"]) == (2, 1, 1)
    assert (cur1["rows_read"], cur1["inserted"], cur1["quarantined"]) == (12, 12, 0)
    detail = "ValueError: injected: a payload no rule foresaw"
    assert _internal_rows(state, "parse_errors", "error_reason") == [
        (m, "internal:ValueError", detail) for m in ("p1", "p2", "p3")
    ]
    post_raw = state["accountability"][0]
    assert post_raw["right"]["quarantined"] == 3, post_raw


def test_a_row_that_makes_validation_raise_is_quarantined_as_on_arrow(
    spark_settings, tmp_path, poisoned_validate
):
    figures, state = _spark_as_on_arrow(spark_settings, tmp_path, _curated_poison())
    (_, cur1), (_, cur2), (_, cur3) = figures
    assert (cur1["rows_read"], cur1["inserted"], cur1["cde_error_rows"], cur1["quarantined"]) == (
        4,
        2,
        1,
        1,
    )
    assert (cur2["rows_read"], cur2["quarantined"]) == (0, 0)
    assert (cur3["rows_read"], cur3["updated"], cur3["quarantined"]) == (2, 1, 1)
    detail = "KeyError: 'injected: a rule lookup failed'"
    assert _internal_rows(state, "curated_errors", "rule") == [
        ("p1", "internal:KeyError", detail),
        ("p2", "internal:KeyError", detail),
    ]
    curated = state["accountability"][1]
    assert curated["right"]["quarantined"] == 2, curated
    # the poisoned correction of k1 did not supersede its stored version
    _, curated_rows = state["curated"]
    assert {r["idempotency_key"]: r["verb"] for r in curated_rows} == {
        "k1": "clicked",
        "k4": "newer",
    }
