"""Curated MERGE (``leanops_dagster.iceberg.merge.merge_lifo``) on exact expected tables."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import DayTransform
from pyiceberg.types import LongType, NestedField, StringType, TimestamptzType

from leanops_dagster.constants import curated_partition_spec
from leanops_dagster.iceberg.merge import MergeStats, merge_lifo

UTC = dt.UTC
DAY1 = dt.datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
DAY2 = dt.datetime(2026, 1, 11, 9, 0, tzinfo=UTC)
DAY3 = dt.datetime(2026, 1, 12, 9, 0, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")

SCHEMA = Schema(
    NestedField(1, "value", LongType(), required=False),
    NestedField(2, "message_id", StringType(), required=False),
    NestedField(3, "idempotency_key", StringType(), required=True),
    NestedField(4, "publish_time", TimestamptzType(), required=False),
    NestedField(5, "ingestion_ts", TimestamptzType(), required=False),
)
COLUMNS = ("value", "message_id", "idempotency_key", "publish_time", "ingestion_ts")


def open_test_catalog(tmp_path: Path) -> SqlCatalog:
    """A SQLite SQL catalog under ``tmp_path`` with a ``curated`` namespace."""
    catalog = SqlCatalog(
        "test", uri=f"sqlite:///{tmp_path / 'catalog.db'}",
        warehouse=(tmp_path / "warehouse").as_uri(),
    )
    catalog.create_namespace("curated")
    return catalog


@pytest.fixture
def catalog(tmp_path) -> SqlCatalog:
    return open_test_catalog(tmp_path)


@pytest.fixture
def table(catalog) -> Table:
    return catalog.create_table(
        ("curated", "events"), schema=SCHEMA, partition_spec=curated_partition_spec(SCHEMA),
        properties={"format-version": "2"},
    )


def batch(*rows: tuple) -> pa.Table:
    """Rows of (value, message_id, key, publish_time, ingestion_ts)."""
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in COLUMNS]
    return pa.table({
        "value": pa.array(columns[0], pa.int64()),
        "message_id": pa.array(columns[1], pa.string()),
        "idempotency_key": pa.array(columns[2], pa.string()),
        "publish_time": pa.array(columns[3], TS),
        "ingestion_ts": pa.array(columns[4], TS),
    })


def contents(table: Table) -> list[tuple]:
    table.refresh()
    rows = table.scan().to_arrow().select(list(COLUMNS)).sort_by("idempotency_key").to_pylist()
    return [tuple(row[c] for c in COLUMNS) for row in rows]


def files(table: Table) -> set[str]:
    return {task.file.file_path for task in table.scan().plan_files()}


def summary(table: Table) -> dict[str, str]:
    return table.current_snapshot().summary.additional_properties


def test_curated_partition_spec_is_day_and_bucket16():
    spec = curated_partition_spec(SCHEMA)
    assert [(f.name, str(f.transform), f.source_id) for f in spec.fields] == [
        ("publish_time_day", "day", 4), ("idempotency_key_bucket", "bucket[16]", 3)
    ]


def test_inserts_into_empty_table(table):
    rows = [(1, "m1", "k1", DAY1, DAY1), (2, "m2", "k2", DAY2, DAY2)]
    stats = merge_lifo(table, batch(*rows), snapshot_properties={"leanops.watermark.std": "7"})
    assert (stats.inserted, stats.updated, stats.stale, stats.rewritten_files) == (2, 0, 0, 0)
    assert contents(table) == rows
    assert table.current_snapshot().summary.operation.value == "append"
    assert summary(table)["leanops.watermark.std"] == "7"
    assert stats.snapshot_id == table.current_snapshot().snapshot_id


def test_update_moves_key_to_new_day_partition(table):
    merge_lifo(table, batch((1, "m1", "k1", DAY1, DAY1), (2, "m2", "k2", DAY1, DAY1)),
               snapshot_properties={})
    newer = (10, "m1b", "k1", DAY3, DAY3)
    stats = merge_lifo(table, batch(newer), snapshot_properties={"leanops.watermark.std": "8"})
    assert (stats.inserted, stats.updated, stats.stale) == (0, 1, 0)
    assert contents(table) == [newer, (2, "m2", "k2", DAY1, DAY1)]
    assert summary(table)["leanops.watermark.std"] == "8"
    assert table.current_snapshot().summary.operation.value == "overwrite"
    holding_k1 = {
        task.file.partition[0] for task in table.scan().plan_files()
        if "k1" in pq.read_table(task.file.file_path.removeprefix("file://"))
        .column("idempotency_key").to_pylist()
    }
    assert holding_k1 == {(DAY3.date() - dt.date(1970, 1, 1)).days}  # old day's copy gone


def test_older_correction_arriving_later_is_stale(table):
    stored = (5, "m-new", "k1", DAY2, DAY2)
    merge_lifo(table, batch(stored), snapshot_properties={})
    before = table.current_snapshot().snapshot_id
    stats = merge_lifo(table, batch((4, "m-old", "k1", DAY1, DAY3)),
                       snapshot_properties={"leanops.watermark.std": "9"})
    assert (stats.inserted, stats.updated, stats.stale) == (0, 0, 1)
    assert contents(table) == [stored]
    # nothing to write: no commit at all, the caller decides on a watermark-only commit
    assert table.current_snapshot().snapshot_id == before
    assert stats.snapshot_id is None


@pytest.mark.parametrize(
    ("incoming", "wins"),
    [
        ((2, "m1", "k1", DAY1, DAY2), True),            # same publish_time, later ingestion
        ((2, "m1", "k1", DAY1, DAY1 - dt.timedelta(seconds=1)), False),  # earlier ingestion
        ((2, "m2", "k1", DAY1, DAY1), True),            # full tie on times: message_id decides
        ((2, "m0", "k1", DAY1, DAY1), False),
        ((2, "m1", "k1", DAY1, DAY1), False),           # identical sequence: stale
    ],
)
def test_ties_on_publish_time_broken_by_ingestion_ts_then_message_id(table, incoming, wins):
    stored = (1, "m1", "k1", DAY1, DAY1)
    merge_lifo(table, batch(stored), snapshot_properties={})
    stats = merge_lifo(table, batch(incoming), snapshot_properties={})
    assert (stats.updated, stats.stale) == ((1, 0) if wins else (0, 1))
    assert contents(table) == [incoming if wins else stored]


def test_null_sequence_values_order_first(table):
    stored = (1, None, "k1", DAY1, None)
    merge_lifo(table, batch(stored), snapshot_properties={})
    stats = merge_lifo(table, batch((2, None, "k1", DAY1, DAY1)), snapshot_properties={})
    assert stats.updated == 1
    assert contents(table) == [(2, None, "k1", DAY1, DAY1)]


def test_only_files_holding_replaced_rows_are_rewritten(table):
    days = [DAY1, DAY2, DAY3]
    rows = [(i, f"m{i}", f"k{i:03d}", days[i % 3] + dt.timedelta(minutes=i), DAY3)
            for i in range(120)]
    for part in range(3):  # three appends: several files per partition
        merge_lifo(table, batch(*rows[part::3]), snapshot_properties={})
    before = files(table)
    target = rows[7]
    stats = merge_lifo(
        table, batch((99, "m7b", target[2], target[3] + dt.timedelta(days=3), DAY3)),
        snapshot_properties={"leanops.watermark.std": "11"},
    )
    after = files(table)
    assert stats.rewritten_files == 1
    gone = before - after
    assert len(gone) == 1
    assert before - gone <= after  # every other file survives, same path
    assert len(after - before) == (2 if stats.rewritten_rows else 1)
    expected = sorted([r for r in rows if r[2] != target[2]]
                      + [(99, "m7b", target[2], target[3] + dt.timedelta(days=3), DAY3)],
                      key=lambda r: r[2])
    assert contents(table) == expected
    assert summary(table)["leanops.watermark.std"] == "11"


def test_remerging_the_same_increment_is_idempotent(table):
    merge_lifo(table, batch((1, "m1", "k1", DAY1, DAY1), (2, "m2", "k2", DAY1, DAY1)),
               snapshot_properties={})
    increment = batch((3, "m3", "k1", DAY2, DAY2), (4, "m4", "k3", DAY2, DAY2))
    first = merge_lifo(table, increment, snapshot_properties={"w": "1"})
    state, snapshot = contents(table), table.current_snapshot().snapshot_id
    second = merge_lifo(table, increment, snapshot_properties={"w": "2"})
    assert (first.inserted, first.updated, first.stale) == (1, 1, 0)
    assert (second.inserted, second.updated, second.stale) == (0, 0, 2)
    assert contents(table) == state
    assert table.current_snapshot().snapshot_id == snapshot


def test_empty_increment_commits_nothing(table):
    stats = merge_lifo(table, batch(), snapshot_properties={"w": "1"})
    assert stats == MergeStats(elapsed=stats.elapsed)
    assert table.current_snapshot() is None


def test_increment_must_be_unique_and_fit_the_table(table):
    with pytest.raises(ValueError, match="not unique"):
        merge_lifo(table, batch((1, "a", "k1", DAY1, DAY1), (2, "b", "k1", DAY2, DAY2)),
                   snapshot_properties={})
    with pytest.raises(ValueError, match="does not have"):
        merge_lifo(table, batch((1, "a", "k1", DAY1, DAY1)).append_column(
            "surprise", pa.array(["x"])), snapshot_properties={})
    with pytest.raises(ValueError, match="null"):
        merge_lifo(table, batch((1, "a", None, DAY1, DAY1)), snapshot_properties={})


def test_commit_conflict_reaches_the_caller(catalog, table):
    merge_lifo(table, batch((1, "m1", "k1", DAY1, DAY1)), snapshot_properties={})
    stale_view = catalog.load_table(("curated", "events"))
    merge_lifo(table, batch((2, "m2", "k1", DAY2, DAY2)), snapshot_properties={"w": "a"})
    expected = contents(table)
    with pytest.raises(CommitFailedException):
        merge_lifo(stale_view, batch((3, "m3", "k2", DAY2, DAY2)), snapshot_properties={"w": "b"})
    assert contents(catalog.load_table(("curated", "events"))) == expected


def test_files_of_an_older_schema_are_rewritten_through_pyiceberg(catalog, table):
    merge_lifo(table, batch((1, "m1", "k1", DAY1, DAY1), (2, "m2", "k2", DAY1, DAY1)),
               snapshot_properties={})
    with table.update_schema() as update:
        update.rename_column("value", "amount")
        update.add_column("note", StringType())
    increment = pa.table({
        "amount": pa.array([10], pa.int64()), "message_id": ["m1b"], "idempotency_key": ["k1"],
        "publish_time": pa.array([DAY2], TS), "ingestion_ts": pa.array([DAY2], TS),
        "note": ["fixed"],
    })
    stats = merge_lifo(table, increment, snapshot_properties={})
    assert (stats.updated, stats.rewritten_files) == (1, 1)
    got = table.scan().to_arrow().sort_by("idempotency_key").to_pylist()
    assert [(r["idempotency_key"], r["amount"], r["note"]) for r in got] == [
        ("k1", 10, "fixed"), ("k2", 2, None)
    ]


# --- against a naive reference ---------------------------------------------------------------
def _reference(stored: pa.Table, increment: pa.Table) -> pa.Table:
    """Newest version per key over stored + increment (nulls first; ties keep the stored row)."""
    both = pa.concat_tables([
        stored.append_column("_inc", pa.array(np.zeros(stored.num_rows, np.int8))),
        increment.append_column("_inc", pa.array(np.ones(increment.num_rows, np.int8))),
    ])
    order = pc.sort_indices(both, sort_keys=[
        ("idempotency_key", "ascending", "at_end"), ("publish_time", "descending", "at_end"),
        ("ingestion_ts", "descending", "at_end"), ("message_id", "descending", "at_end"),
        ("_inc", "ascending", "at_end"),
    ])
    ranked = both.take(order)
    keys = ranked.column("idempotency_key").to_numpy(zero_copy_only=False)
    first = np.ones(len(keys), bool)
    first[1:] = keys[1:] != keys[:-1]
    return ranked.filter(pa.array(first)).drop_columns(["_inc"])


def _random_rows(rng, keys: list[str], base: dt.datetime, spread_days: int) -> pa.Table:
    n = len(keys)
    publish = [base + dt.timedelta(seconds=int(s))
               for s in rng.integers(0, spread_days * 86_400, n)]
    ingestion = [p + dt.timedelta(seconds=int(s)) if rng.random() > 0.05 else None
                 for p, s in zip(publish, rng.integers(0, 5, n), strict=True)]
    return batch(*zip(
        rng.integers(0, 1_000_000, n).tolist(),
        [f"m{int(x):08d}" for x in rng.integers(0, 10**8, n)],
        keys, publish, ingestion, strict=True,
    ))


def test_10k_table_and_1k_increment_match_a_naive_reference(table):
    rng = np.random.default_rng(42)
    stored = _random_rows(rng, [f"key-{i:05d}" for i in range(10_000)], DAY1, 12)
    for start in range(0, stored.num_rows, 4_000):
        merge_lifo(table, stored.slice(start, 4_000), snapshot_properties={})

    existing = rng.choice(10_000, 400, replace=False)
    increment = pa.concat_tables([
        _random_rows(rng, [f"new-{i:04d}" for i in range(600)], DAY3, 3),
        _random_rows(rng, [f"key-{i:05d}" for i in existing], DAY1, 16),  # newer and older
    ])
    # a few exact ties on publish_time / ingestion_ts with the stored version
    tied = stored.filter(pc.is_in(stored.column("idempotency_key"),
                                  value_set=pa.array([f"key-{i:05d}" for i in existing[:20]])))
    increment = increment.filter(pc.invert(pc.is_in(
        increment.column("idempotency_key"), value_set=tied.column("idempotency_key"))))
    tied = tied.set_column(1, "message_id", pc.binary_join_element_wise(
        tied.column("message_id"), pa.array(["x"] * tied.num_rows), ""))
    increment = pa.concat_tables([increment, tied.select(list(COLUMNS))])
    increment = increment.take(pa.array(rng.permutation(increment.num_rows)))

    expected = _reference(stored, increment)
    stats = merge_lifo(table, increment, snapshot_properties={"leanops.watermark.std": "42"})

    got = table.scan().to_arrow().select(list(COLUMNS)).sort_by("idempotency_key")
    assert got.to_pylist() == expected.select(list(COLUMNS)).to_pylist()
    new_keys = pc.invert(pc.is_in(increment.column("idempotency_key"),
                                  value_set=stored.column("idempotency_key")))
    changed = expected.join(increment.select(["idempotency_key", "message_id"]),
                            keys=["idempotency_key", "message_id"], join_type="inner")
    assert stats.inserted == pc.sum(new_keys).as_py() == 600
    assert stats.updated == changed.num_rows - 600
    assert stats.inserted + stats.updated + stats.stale == increment.num_rows
    assert stats.updated > 100 and stats.stale > 100  # the mix really covers both
    assert summary(table)["leanops.watermark.std"] == "42"


def test_written_data_files_match_pyiceberg_writer(table):
    """The lean writer records the same metrics and partitions as pyiceberg's own writer."""
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    from leanops_dagster.iceberg.datafiles import write_data_files

    rows = batch(*[(i, f"m{i}", f"k{i}", DAY1 + dt.timedelta(hours=i), None) for i in range(40)])
    rows = rows.cast(SCHEMA.as_arrow())
    ours = write_data_files(table.metadata, table.io, rows).files
    theirs = list(_dataframe_to_data_files(table.metadata, rows, table.io))

    def described(data_files):
        return sorted(
            (tuple(f.partition), f.record_count, f.value_counts, f.null_value_counts,
             f.lower_bounds, f.upper_bounds, f.file_format)
            for f in data_files
        )

    assert described(ours) == described(theirs)
    ids = {f.name: f.metadata[b"PARQUET:field_id"] for f in
           pq.read_schema(ours[0].file_path.removeprefix("file://"))}
    assert ids == {f.name: str(f.field_id).encode() for f in SCHEMA.fields}


@pytest.mark.parametrize("layout", ["grouped", "interleaved"])
def test_rows_already_grouped_by_partition_are_written_without_a_sort(
    catalog, layout, monkeypatch
):
    """An append whose rows come partition by partition (day 3, then 1, then 2) takes the
    no-gather path; the same rows interleaved take the sort path; both write one file per
    partition holding exactly its rows, and the index entries name the right partitions."""
    from leanops_dagster.iceberg import datafiles
    from leanops_dagster.iceberg.datafiles import file_partition_token, write_data_files
    from leanops_dagster.iceberg.key_index import key_hashes

    gathers = []
    take_rows = datafiles.take_rows
    monkeypatch.setattr(datafiles, "take_rows",
                        lambda rows, indices: gathers.append(1) or take_rows(rows, indices))

    table = catalog.create_table(("curated", f"by_day_{layout}"), schema=SCHEMA,
                                 partition_spec=PartitionSpec(PartitionField(
                                     source_id=4, field_id=1000, transform=DayTransform(),
                                     name="publish_time_day")))
    days = [DAY3] * 5 + [DAY1] * 4 + [DAY2] * 3
    if layout == "interleaved":
        days = days[::2] + days[1::2]
    rows = batch(*[(i, f"m{i}", f"k{i}", day, None) for i, day in enumerate(days)])
    written = write_data_files(table.metadata, table.io, rows.cast(SCHEMA.as_arrow()),
                                  index_column="idempotency_key")
    assert len(gathers) == (0 if layout == "grouped" else 1)
    by_day = {}
    for data_file in written.files:
        stored = pq.read_table(data_file.file_path.removeprefix("file://"))
        assert len(set(stored.column("publish_time").to_pylist())) == 1
        by_day[stored.column("publish_time")[0].as_py()] = sorted(
            stored.column("value").to_pylist())
    assert by_day == {day: sorted(i for i, d in enumerate(days) if d == day)
                      for day in (DAY1, DAY2, DAY3)}
    with table.transaction() as tx, tx.update_snapshot().fast_append() as append:
        for data_file in written.files:
            append.append_data_file(data_file)
    tokens = {file_partition_token(task.file) for task in table.scan().plan_files()}
    entries = written.entries
    assert set(entries.partitions) == tokens
    expected = dict(zip(key_hashes(rows.column("idempotency_key")).tolist(),
                        [table.spec().fields[0].transform.transform(
                            table.schema().find_field(4).field_type)(
                            int(d.timestamp() * 1_000_000)) for d in days], strict=True))
    got = {h: json.loads(entries.partitions[i])[1]
           for h, i in zip(entries.hashes.tolist(), entries.ids.tolist(), strict=True)}
    assert got == expected
