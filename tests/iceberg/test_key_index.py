"""Key index (``leanops_dagster.iceberg.key_index``): the MERGE reads only the partitions the
index names, and stays exactly as correct as a full scan when the index is missing, stale,
unreadable or bypassed by another writer."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import mmh3
import numpy as np
import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table
from test_merge import SCHEMA, batch, contents, open_test_catalog

from leanops_dagster.constants import INDEX_PROPERTY_PREFIX, curated_partition_spec
from leanops_dagster.iceberg import key_index
from leanops_dagster.iceberg.datafiles import file_partition_token
from leanops_dagster.iceberg.key_index import (
    KeyIndex,
    key_hashes,
    partition_token,
)
from leanops_dagster.iceberg.maintenance import compact_small_files
from leanops_dagster.iceberg.merge import merge_lifo

UTC = dt.UTC
START = dt.datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
KEY = "idempotency_key"


@pytest.fixture
def catalog(tmp_path) -> SqlCatalog:
    return open_test_catalog(tmp_path)


def new_table(catalog: SqlCatalog, name: str) -> Table:
    return catalog.create_table(
        ("curated", name), schema=SCHEMA, partition_spec=curated_partition_spec(SCHEMA),
        properties={"format-version": "2"},
    )


def rows_for(keys: range, day: int, value: int) -> pa.Table:
    """One row per key, all published on day ``day`` (a new version when ``day`` grows)."""
    when = START + dt.timedelta(days=day)
    return batch(*[(value, f"m{k}-{day}", f"k{k:05d}", when, when) for k in keys])


def index_of(table: Table) -> KeyIndex:
    index = KeyIndex.of(table, KEY)
    assert index is not None, "the current snapshot carries no key index"
    return index


def test_key_hash_is_two_iceberg_bucket_hashes():
    """Independent implementation of the spec'd hash: murmur3_32 (mmh3) of the key and of the
    key behind the salt, 31 bits each (Iceberg's bucket function with N = 2^31 - 1)."""
    keys = ["", "k1", "é-ü-✓", "a" * 300, "00000000-0000-0000-0000-000000000000"]

    def bucket31(text: str) -> int:
        return (mmh3.hash(text.encode(), signed=False) & 0x7FFFFFFF) % 2_147_483_647

    expected = [(bucket31(k) << 31) | bucket31("lx2|" + k) for k in keys]
    assert key_hashes(pa.array(keys)).tolist() == expected
    chunked = pa.chunked_array([keys[:2], keys[2:]])
    assert key_hashes(chunked).tolist() == expected


def test_key_hash_separates_a_million_keys_of_a_common_shape():
    keys = pa.array([f"{i:032x}-device" for i in range(1_000_000)])
    assert len(np.unique(key_hashes(keys))) == 1_000_000


def test_partition_tokens_of_writer_and_manifest_agree(catalog):
    table = new_table(catalog, "tokens")
    merge_lifo(table, rows_for(range(40), 0, 1))
    merge_lifo(table, rows_for(range(40, 80), 3, 1))
    index = index_of(table)
    segment_tokens = set()
    for entries in index.read(table.io):
        segment_tokens |= set(entries.partitions)
    manifest_tokens = {file_partition_token(t.file) for t in table.scan().plan_files()}
    assert manifest_tokens == segment_tokens
    assert partition_token(0, [dt.date(1970, 1, 11), 3]) == "[0,10,3]"
    assert partition_token(2, [Decimal("1.50"), None, "a"]) == '[2,"1.50",null,"a"]'


def test_merge_reads_only_the_partitions_the_index_names(catalog):
    table = new_table(catalog, "pruned")
    for day in range(10):  # ten days x 16 buckets of history
        merge_lifo(table, rows_for(range(day * 400, day * 400 + 400), day, 1))
    files_total = len(list(table.scan().plan_files()))
    # corrections of 5 keys of day 2, plus 100 new keys
    increment = pa.concat_tables([rows_for(range(800, 805), 12, 2),
                                  rows_for(range(9000, 9100), 12, 2)])
    stats = merge_lifo(table, increment)
    assert (stats.inserted, stats.updated, stats.stale) == (100, 5, 0)
    assert stats.scanned_files <= 5 < files_total
    stored = {row[2]: row for row in contents(table)}
    assert len(stored) == 4100
    assert stored["k00800"][0] == 2 and stored["k00800"][3] == START + dt.timedelta(days=12)


def test_index_and_full_scan_give_identical_tables(catalog):
    """The same merges into one table with the index and one whose index is dropped each time
    (every lookup a full scan): same rows, same counts."""
    indexed, plain = new_table(catalog, "indexed"), new_table(catalog, "plain")
    rng = np.random.default_rng(3)
    for step in range(6):
        keys = rng.choice(3000, size=500, replace=False)
        increment = batch(*[
            (step, f"m{k}-{step}", f"k{k:05d}",
             START + dt.timedelta(days=int(rng.integers(0, 8)), minutes=step), START)
            for k in keys
        ])
        a = merge_lifo(indexed, increment)
        _drop_index(plain)
        b = merge_lifo(plain, increment)
        assert (a.inserted, a.updated, a.stale) == (b.inserted, b.updated, b.stale)
        assert contents(indexed) == contents(plain)


def test_foreign_append_makes_the_next_merge_scan_everything_and_rebuild(catalog):
    table = new_table(catalog, "foreign")
    merge_lifo(table, rows_for(range(100), 0, 1))
    # another writer appends rows without maintaining the index
    table.append(rows_for(range(100, 150), 1, 1).cast(table.schema().as_arrow()))
    assert KeyIndex.of(table, KEY) is None
    files_total = len(list(table.scan().plan_files()))
    stats = merge_lifo(table, rows_for(range(120, 125), 5, 2))
    assert (stats.inserted, stats.updated) == (0, 5)  # found in the foreign rows
    assert stats.scanned_files == files_total
    rebuilt = index_of(table)
    assert len(rebuilt.segments) == 1
    # the rebuilt index covers the foreign rows: the next correction of them is found by it
    stats = merge_lifo(table, rows_for(range(140, 142), 6, 3))
    assert (stats.inserted, stats.updated) == (0, 2)
    assert stats.scanned_files < files_total
    assert len(contents(table)) == 150


def test_unreadable_segment_falls_back_to_a_full_scan(catalog):
    table = new_table(catalog, "lost")
    merge_lifo(table, rows_for(range(100), 0, 1))
    for segment in index_of(table).segments:
        Path(segment.removeprefix("file://")).unlink()
    stats = merge_lifo(table, rows_for(range(50, 60), 2, 2))
    assert (stats.inserted, stats.updated) == (0, 10)
    assert len(contents(table)) == 100
    assert all(Path(s.removeprefix("file://")).exists() for s in index_of(table).segments)


def test_segments_are_size_tiered(catalog):
    """Equal-sized commits merge like a binary counter: 1, 2 -> 1, 2, 3 -> 2, ..."""
    table = new_table(catalog, "segments")
    counts = []
    for step in range(7):
        merge_lifo(table, rows_for(range(step * 10, step * 10 + 10), step, step))
        counts.append(len(index_of(table).segments))
    assert counts == [1, 1, 2, 1, 2, 2, 3]
    sizes = [len(e.hashes) for e in index_of(table).read(table.io)]
    assert sizes == [40, 20, 10]
    stats = merge_lifo(table, rows_for(range(0, 72), 9, 9))  # every key stored so far
    assert (stats.inserted, stats.updated) == (2, 70)


def test_at_most_max_segments(catalog, monkeypatch):
    monkeypatch.setattr(key_index, "MAX_SEGMENTS", 2)
    table = new_table(catalog, "capped")
    for step, size in enumerate((40, 15, 5, 1)):  # sizes that would not merge by tiers alone
        merge_lifo(table, rows_for(range(step * 100, step * 100 + size), step, step))
    assert len(index_of(table).segments) == 2
    stats = merge_lifo(table, rows_for(range(0, 400), 9, 9))
    assert (stats.inserted, stats.updated) == (400 - 61, 61)


def test_compaction_carries_the_index_of_the_current_snapshot(catalog):
    table = new_table(catalog, "compacted")
    for step in range(4):
        merge_lifo(table, rows_for(range(step * 25, step * 25 + 25), 0, 1))
    before = index_of(table)
    compact_small_files(table, min_files=2)
    table.refresh()
    assert table.current_snapshot().summary.operation.value == "overwrite"
    assert index_of(table) == before
    stats = merge_lifo(table, rows_for(range(10, 20), 1, 2))
    assert (stats.inserted, stats.updated) == (0, 10)


def test_pointer_of_an_unknown_format_is_ignored(catalog):
    table = new_table(catalog, "format")
    table.append(rows_for(range(3), 0, 1).cast(table.schema().as_arrow()), snapshot_properties={
        INDEX_PROPERTY_PREFIX + KEY: json.dumps({"format": "other/v9", "segments": []}),
    })
    assert KeyIndex.of(table, KEY) is None
    stats = merge_lifo(table, rows_for(range(3), 1, 2))
    assert (stats.inserted, stats.updated) == (0, 3)


def _drop_index(table: Table) -> None:
    """A watermark-only snapshot without the pointer: the next lookup cannot use the index."""
    if table.current_snapshot() is not None:
        table.append(table.schema().as_arrow().empty_table())


def test_segments_no_snapshot_points_to_are_found_for_removal(catalog, monkeypatch):
    """Tier merges replace segments; once the snapshots pointing to the old ones expire, the
    maintenance finds them (and only them, and only once they are old enough)."""
    table = new_table(catalog, "orphans")
    for step in range(2):  # [10] then [10, 10] -> merged into one new segment of 20
        merge_lifo(table, rows_for(range(step * 10, step * 10 + 10), step, step))
    current = set(index_of(table).segments)
    assert key_index.unreferenced_segments(table, older_than=dt.timedelta(0)) == []
    expired = [s.snapshot_id for s in table.snapshots()
               if s.snapshot_id != table.current_snapshot().snapshot_id]
    table.maintenance.expire_snapshots().by_ids(expired).commit()
    table.refresh()
    orphans = key_index.unreferenced_segments(table, older_than=dt.timedelta(0))
    assert len(orphans) == 1 and not set(orphans) & current
    assert key_index.unreferenced_segments(table) == []  # written just now: kept for an hour
    for location in orphans:
        table.io.delete(location)
    stats = merge_lifo(table, rows_for(range(0, 20), 5, 5))
    assert (stats.inserted, stats.updated) == (0, 20)


def test_compaction_across_a_spec_change_drops_the_index(catalog):
    """Rows of an older spec move to other partitions when compacted: the pointer must not
    survive, and the next MERGE (a full scan) still finds every key."""
    table = new_table(catalog, "respec")
    merge_lifo(table, rows_for(range(0, 30), 0, 1))
    with table.update_spec() as update:
        update.remove_field("idempotency_key_bucket")
    merge_lifo(table, rows_for(range(30, 60), 1, 1))
    assert KeyIndex.of(table, KEY) is not None
    compact_small_files(table, min_files=2)
    table.refresh()
    assert KeyIndex.of(table, KEY) is None
    stats = merge_lifo(table, rows_for(range(0, 60), 3, 2))
    assert (stats.inserted, stats.updated) == (0, 60)
    assert KeyIndex.of(table, KEY) is not None
