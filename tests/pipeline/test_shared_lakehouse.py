"""Exact in a shared lakehouse (Arrow engine, maintenance through pyiceberg): the layers' state
survives other writers' compaction and snapshot expiry, unconsumed RAW rows are read exactly
once after their snapshots were compacted and expired, and a history removed beyond proof
stops the topic loudly until `leanops recover` re-reads it.

The same scenarios with Iceberg's own Spark procedures as the foreign writer, on both
engines, are in ``tests/maintenance/``."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from leanops_dagster.cli import main
from leanops_dagster.constants import RAW_WATERMARK, STD_WATERMARK, Count
from leanops_dagster.iceberg.history import HistoryLost, consumer_tag
from leanops_dagster.iceberg.maintenance import compact_small_files
from leanops_dagster.iceberg.watermarks import read_counter, read_watermark
from leanops_dagster.pipeline import accountability
from tests.dagster.conftest import append_raw
from tests.pipeline.test_rebuild import BATCHES, LATER, TABLES, Home

ALL_TABLES = (TABLES.raw, TABLES.standardized, TABLES.parse_errors, TABLES.curated,
              TABLES.curated_errors)


def home_with(root, batches, *, maintain=None) -> Home:
    """A home that appended ``batches`` one after another, a run after each; ``maintain(home,
    i)`` runs before the run of batch ``i``, after its rows landed in RAW."""
    home = Home(root)
    home.registry.deploy("events")
    for i, batch in enumerate(batches):
        append_raw(home.catalog, batch)
        if maintain is not None:
            maintain(home, i)
        home.run()
    return home


def compact_and_expire(home: Home, identifier, *, drop_tags: bool = False) -> None:
    """What a foreign maintainer leaves: every file rewritten into one, then every snapshot
    expired but the current one and those a ref keeps (unless ``drop_tags``)."""
    table = home.catalog.load_table(identifier)
    if table.current_snapshot() is None:
        return
    compact_small_files(table, min_files=1)
    table = home.catalog.load_table(identifier)
    if drop_tags:
        for name in [n for n in table.metadata.refs if n != "main"]:
            table.manage_snapshots().remove_tag(name).commit()
        table = home.catalog.load_table(identifier)
    kept = {table.current_snapshot().snapshot_id}
    kept |= {ref.snapshot_id for ref in table.metadata.refs.values()}
    old = [s.snapshot_id for s in table.snapshots() if s.snapshot_id not in kept]
    if old:
        table.maintenance.expire_snapshots().by_ids(old).commit()


def content(home: Home) -> dict[str, list]:
    """Every table of the topic, order-free, without what differs between homes by nature
    (snapshot ids are random, timestamps of recording are the wall clock)."""
    volatile = {"raw_snapshot_id", "standardized_snapshot_id", "recorded_ts", "ingestion_ts"}
    out = {}
    for identifier in ALL_TABLES[1:]:
        rows = home.catalog.load_table(identifier).scan().to_arrow().to_pylist()
        out[".".join(identifier)] = sorted(
            repr(sorted((k, v) for k, v in r.items() if k not in volatile)) for r in rows)
    return out


def assert_balanced(home: Home) -> None:
    post_raw = accountability.post_raw_equation(home.catalog, TABLES)
    curated = accountability.curated_equation(home.catalog, TABLES)
    assert post_raw.balanced, post_raw.as_dict()
    assert curated.balanced, curated.as_dict()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Home:
    return home_with(tmp_path_factory.mktemp("uninterrupted"), [*BATCHES, LATER])


def test_state_survives_compaction_and_expiry_of_every_table(tmp_path, uninterrupted):
    home = home_with(tmp_path, BATCHES)
    std, cur = (home.catalog.load_table(t) for t in (TABLES.standardized, TABLES.curated))
    before = (read_watermark(std, RAW_WATERMARK), read_counter(std, Count.DUPLICATES),
              read_watermark(cur, STD_WATERMARK), read_counter(cur, Count.SUPERSEDED))
    for identifier in ALL_TABLES:
        compact_and_expire(home, identifier)
    std, cur = (home.catalog.load_table(t) for t in (TABLES.standardized, TABLES.curated))
    assert len(std.snapshots()) <= 2 and len(cur.snapshots()) <= 2  # the history is gone
    after = (read_watermark(std, RAW_WATERMARK), read_counter(std, Count.DUPLICATES),
             read_watermark(cur, STD_WATERMARK), read_counter(cur, Count.SUPERSEDED))
    assert after == before and before[1] > 0  # the watermarks and totals are all still there
    assert_balanced(home)
    append_raw(home.catalog, LATER)
    home.run()
    assert content(home) == content(uninterrupted)
    assert_balanced(home)


def test_unconsumed_raw_compacted_and_expired_is_read_exactly_once(tmp_path, uninterrupted):
    def maintain(home: Home, i: int) -> None:
        if i in (1, 2):  # rows of this batch wait in RAW: compact and expire everything
            for identifier in ALL_TABLES:
                compact_and_expire(home, identifier)

    home = home_with(tmp_path, [*BATCHES, LATER], maintain=maintain)
    assert content(home) == content(uninterrupted)
    assert_balanced(home)
    std = home.catalog.load_table(TABLES.standardized)
    raw = home.catalog.load_table(TABLES.raw)
    # the consumer's tag stands where Standardized has read up to
    assert raw.metadata.refs[consumer_tag("standardized")].snapshot_id == read_watermark(
        std, RAW_WATERMARK)


def test_history_removed_beyond_proof_stops_loudly_and_recover_re_reads(
    tmp_path, monkeypatch, uninterrupted
):
    home = home_with(tmp_path, BATCHES)
    append_raw(home.catalog, LATER)
    compact_and_expire(home, TABLES.raw, drop_tags=True)
    with pytest.raises(HistoryLost, match=r"raw\.events_staging: snapshot \d+.*"
                                          r"leanops recover --topic events"):
        home.run()
    home.env(monkeypatch)
    stopped = CliRunner().invoke(main, ["run", "--topic", "events"])
    assert stopped.exit_code != 0
    lines = [line for line in stopped.output.splitlines() if "leanops recover" in line]
    assert len(lines) == 1 and "raw.events_staging: snapshot" in lines[0], stopped.output
    result = CliRunner().invoke(main, ["recover", "--topic", "events"])
    assert result.exit_code == 0, result.output
    assert "balanced True" in result.output
    home.run()  # continues incrementally from the recovered tables: nothing new
    assert content(home) == content(uninterrupted)
    assert_balanced(home)
