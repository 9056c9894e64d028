"""FIFO on message_id, LIFO on idempotency_key (the order itself: ``test_ordering``)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from leanops_dagster.transforms.dedup import fifo_dedup, lifo_dedup
from tests.transforms.conftest import TS, at


def rows(ids, ingested, snapshots=None, keys=None, published=None, extra=None) -> pa.Table:
    n = len(ids)
    data = {
        "message_id": pa.array(ids, pa.string()),
        "idempotency_key": pa.array(keys or [f"k{i}" for i in range(n)], pa.string()),
        "publish_time": pa.array([at(s) if s is not None else None for s in
                                  (published or range(n))], TS),
        "ingestion_ts": pa.array([at(s) for s in ingested], TS),
        "raw_snapshot_id": pa.array(snapshots or [1] * n, pa.int64()),
        "pos": pa.array(range(n), pa.int64()),
    }
    data.update(extra or {})
    return pa.table(data)


def test_fifo_keeps_first_by_ingestion_then_position():
    table = rows(["a", "b", "a", "c", "b", "a"], [5, 1, 3, 2, 1, 3])
    result = fifo_dedup(table)
    # a: earliest ingestion_ts is 3 (positions 2 and 5) -> position 2; b: tie at 1 -> pos 1
    assert result.rows.column("pos").to_pylist() == [1, 2, 3]
    assert result.dropped == 3
    assert result.dropped_existing == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fifo_matches_a_naive_reference_on_random_input(seed):
    """Many duplicates, ties on ingestion_ts and null ids: the first row per id by
    (ingestion_ts, snapshot rank, position) is kept, every null id is kept."""
    rng = np.random.default_rng(seed)
    n = 2_000
    ids = [None if rng.random() < 0.05 else f"m{rng.integers(0, 400)}" for _ in range(n)]
    ingested = rng.integers(0, 50, n).tolist()
    snapshots = rng.choice([7, 3, 9], n).tolist()
    order = {3: 0, 9: 1, 7: 2}
    result = fifo_dedup(rows(ids, ingested, snapshots=snapshots), snapshot_order=order)
    best: dict[str, tuple] = {}
    for pos, (mid, ing, snap) in enumerate(zip(ids, ingested, snapshots, strict=True)):
        rank = (ing, order[snap], pos)
        if mid is not None and (mid not in best or rank < best[mid]):
            best[mid] = rank
    expected = sorted([rank[2] for rank in best.values()]
                      + [pos for pos, mid in enumerate(ids) if mid is None])
    assert result.rows.column("pos").to_pylist() == expected
    assert result.dropped == n - len(expected)


def test_fifo_snapshot_order_breaks_ingestion_ties():
    table = rows(["a", "a"], [1, 1], snapshots=[900, 100])
    assert fifo_dedup(table).rows.column("pos").to_pylist() == [0]
    ordered = fifo_dedup(table, snapshot_order={100: 0, 900: 1})
    assert ordered.rows.column("pos").to_pylist() == [1]


def test_fifo_drops_ids_already_stored():
    table = rows(["a", "b", "b", "c"], [1, 2, 3, 4])
    result = fifo_dedup(table, existing_ids=pa.array(["b", "z"]))
    assert result.rows.column("message_id").to_pylist() == ["a", "c"]
    assert result.dropped == 2  # both b rows: one twin in the increment, one stored
    assert result.dropped_existing == 2
    assert fifo_dedup(table, existing_ids=["c"]).rows.column("pos").to_pylist() == [0, 1]


def test_fifo_null_message_ids_are_kept_and_empty_input():
    table = rows([None, None, "a"], [1, 2, 3])
    assert fifo_dedup(table).rows.num_rows == 3
    empty = fifo_dedup(rows([], []))
    assert empty.rows.num_rows == 0 and empty.dropped == 0


def test_lifo_newest_publish_time_wins_out_of_order():
    # k1 arrives newest first (correction sent before the original), k2 in order
    table = rows(["m1", "m2", "m3", "m4"], [1, 2, 3, 4], keys=["k1", "k1", "k2", "k2"],
                 published=[50, 10, 10, 60])
    result = lifo_dedup(table)
    assert result.rows.column("message_id").to_pylist() == ["m1", "m4"]
    assert result.superseded == 2


def test_lifo_ties_broken_by_ingestion_ts_then_message_id():
    table = rows(["m1", "m2", "m3", "m4", "m5"], [1, 9, 5, 5, 5],
                 keys=["a", "a", "b", "b", "b"], published=[10, 10, 10, 10, 10],
                 extra={})
    table = table.set_column(0, "message_id", pa.array(["m1", "m2", "x1", "x3", "x2"]))
    result = lifo_dedup(table)
    # a: same publish_time -> later ingestion_ts (m2); b: all tied -> greatest message_id (x3)
    assert result.rows.column("message_id").to_pylist() == ["m2", "x3"]
    assert result.superseded == 3


def test_lifo_null_sequence_is_oldest_and_custom_sequence():
    table = rows(["m1", "m2"], [1, 2], keys=["a", "a"], published=[None, 5])
    assert lifo_dedup(table).rows.column("message_id").to_pylist() == ["m2"]
    table = table.append_column("version", pa.array([3, 1], pa.int64()))
    assert lifo_dedup(table, sequence=["version"]).rows.column("message_id").to_pylist() == [
        "m1"
    ]


def test_lifo_rejects_null_keys():
    table = rows(["m1"], [1], keys=[None])
    with pytest.raises(ValueError, match="null idempotency_key"):
        lifo_dedup(table)
