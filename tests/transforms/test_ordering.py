"""The one order of versions (``transforms.ordering``): the columns, "newer than", and the
increment's winners judged against the stored versions of their keys (the MERGE's decision)."""

from __future__ import annotations

import pyarrow as pa

from leanops_dagster.transforms.ordering import (
    is_newer,
    judge_stored,
    newest_first,
    version_columns,
)
from tests.transforms.conftest import TS, at
from tests.transforms.test_dedup import rows

KEY = "idempotency_key"


def compare_with_stored(winners: pa.Table, stored: pa.Table) -> tuple[pa.Table, pa.Array, object]:
    """The MERGE's decision on ``winners``: (winning rows, replaced keys, verdict)."""
    columns = version_columns(("publish_time",), stored.column_names)
    verdict = judge_stored(winners, stored, KEY, columns)
    won = winners if verdict.selection is None else winners.take(verdict.selection)
    return won, verdict.updated_keys, verdict


def test_version_columns_append_the_missing_tie_breaks_once():
    assert version_columns() == ("publish_time", "ingestion_ts", "message_id")
    assert version_columns(["version", "ingestion_ts"]) == ("version", "ingestion_ts", "message_id")
    assert version_columns(["version"], {"version", "message_id"}) == ("version", "message_id")
    assert newest_first(["a"]) == [("a", "descending", "at_end")]


def test_is_newer_is_lexicographic_with_null_oldest_and_ties_not_newer():
    left = [pa.array([2, 1, 1, None, 1, None]), pa.array(["a", "b", "a", "z", None, None])]
    right = [pa.array([1, 1, 1, 1, None, None]), pa.array(["z", "a", "a", "a", "z", None])]
    assert is_newer(left, right).to_pylist() == [True, True, False, False, True, False]


def stored(keys, published, ingested, ids) -> pa.Table:
    return pa.table(
        {
            "idempotency_key": pa.array(keys, pa.string()),
            "publish_time": pa.array([at(s) for s in published], TS),
            "ingestion_ts": pa.array([at(s) for s in ingested], TS),
            "message_id": pa.array(ids, pa.string()),
        }
    )


def test_compare_with_stored_new_newer_older_and_same():
    winners = rows(
        ["n1", "n2", "n3", "n4", "n5"],
        [50, 50, 50, 50, 7],
        keys=["new", "newer", "older", "tie", "same"],
        published=[5, 30, 10, 20, 20],
    )
    table = stored(
        ["newer", "older", "tie", "same", "other"],
        [20, 20, 20, 20, 1],
        [1, 1, 40, 7, 1],
        ["s1", "s2", "s3", "n5", "s5"],
    )
    won, replaced_keys, result = compare_with_stored(winners, table)
    assert won.column("message_id").to_pylist() == ["n1", "n2", "n4"]
    # the set of replaced keys (the join decides their order)
    assert sorted(replaced_keys.to_pylist()) == ["newer", "tie"]
    assert (result.inserted, result.updated, result.stale) == (1, 2, 2)
    # accountability of this step: every winner is inserted, updated or stale
    assert result.inserted + result.updated + result.stale == winners.num_rows


def test_compare_with_stored_sequence_only_and_empty():
    winners = rows(["n1", "n2"], [1, 1], keys=["a", "b"], published=[5, 5])
    only_seq = stored(["a", "b"], [5, 4], [0, 0], ["x", "y"]).select(
        ["idempotency_key", "publish_time"]
    )
    won, _, _ = compare_with_stored(winners, only_seq)
    assert won.column("message_id").to_pylist() == ["n2"]  # equal sequence: stored stays
    _, _, none_stored = compare_with_stored(winners, only_seq.slice(0, 0))
    assert (none_stored.inserted, none_stored.updated, none_stored.stale) == (2, 0, 0)
    empty_won, _, empty = compare_with_stored(winners.slice(0, 0), only_seq)
    assert empty_won.num_rows == 0 and empty.stale == 0


def test_a_key_stored_twice_wins_only_over_both_versions():
    winners = rows(["n1", "n2"], [5, 5], keys=["a", "b"], published=[30, 30])
    twice = stored(["a", "a", "b", "b"], [20, 40, 20, 10], [0, 0, 0, 0], ["x", "y", "z", "w"])
    twice = twice.append_column("file", pa.array(["f1", "f2", "f1", "f3"]))
    won, replaced_keys, verdict = compare_with_stored(winners, twice)
    assert won.column("message_id").to_pylist() == ["n2"]
    assert replaced_keys.to_pylist() == ["b"]
    assert sorted(verdict.replaced.column("file").to_pylist()) == ["f1", "f3"]
    assert (verdict.inserted, verdict.updated, verdict.stale) == (0, 1, 1)
