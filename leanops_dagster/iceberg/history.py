"""What a consumer has not read of an upstream table, through other writers' maintenance.

A layer reads its upstream after its watermark ``W`` (a snapshot of the upstream). Other
writers may meanwhile compact the upstream (``replace`` snapshots whose files hold rows of
several appends) and expire its snapshots. Two rules keep the read exact:

1. **The consumer's tag.** After each run the consumer moves a tag
   (``constants.CONSUMER_TAG_PREFIX`` + its zone) on the upstream to the oldest snapshot it has
   read up to. Iceberg's snapshot expiry never removes a snapshot a tag references (Spark's
   ``expire_snapshots``, the Glue retention optimizer and S3 Tables all run Iceberg's
   ``RemoveSnapshots`` semantics), so ``W`` and the files live at ``W`` stay.
2. **Two ways to read after W** (``plan_after``):
   - *intact*: the current snapshot's ancestry reaches ``W`` (or a snapshot whose parent is
     ``W``) with no gap. Then each ``append`` snapshot after ``W`` is read on its own (its
     files exist as long as it does) and ``replace`` snapshots are skipped: they only moved
     rows that those appends brought.
   - *rewritten*: a gap (snapshots after ``W`` expired). The upstream only ever gains rows
     (appends) or has them moved (compaction), so, as multisets of rows, the live rows now
     are the live rows at ``W`` plus the rows appended after it. The increment is therefore
     the rows of the files live now but not at ``W``, minus the rows of the files live at
     ``W`` but not now (the rewritten ones), compared whole (every column).
   Without ``W`` (its tag removed, then expired) nothing proves what was read:
   ``HistoryLost`` names the table, the snapshot and the recovery command.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import FileScanTask, Table
from pyiceberg.table.snapshots import Operation, Snapshot, ancestors_of

from leanops_dagster.constants import CONSUMER_TAG_PREFIX


class HistoryLost(RuntimeError):
    """The snapshots a consumer had not read were removed: exactness cannot be proven."""

    def __init__(self, table: str, snapshot_id: int | None, topic: str | None) -> None:
        self.table, self.snapshot_id, self.topic = table, snapshot_id, topic
        recover = f"leanops recover --topic {topic}" if topic else "leanops recover --topic T"
        super().__init__(
            f"{table}: snapshot {snapshot_id}, up to which this layer had read, and the "
            f"snapshots after it were expired (its tag removed); run `{recover}` to re-read "
            "the topic from RAW"
        )


def consumer_tag(zone: str) -> str:
    """The tag the ``zone`` layer of a topic keeps on its upstream table."""
    return f"{CONSUMER_TAG_PREFIX}{zone}"


def snapshot_order(table: Table) -> dict[int, int]:
    """Snapshot id -> its place in commit order (the sequence number; format v1 tables have
    none, so their ancestry position). Snapshots not listed were expired, and expiry removes
    the oldest: callers treat an unknown id as older than every listed one."""
    if table.metadata.format_version >= 2:
        return {s.snapshot_id: s.sequence_number or 0 for s in table.metadata.snapshots}
    ids = [s.snapshot_id for s in ancestors_of(table.current_snapshot(), table.metadata)]
    return {sid: pos for pos, sid in enumerate(reversed(ids))}


@dataclass(frozen=True)
class IncrementPlan:
    """How to read ``table`` after a watermark (``plan_after``)."""

    #: intact: the append snapshots after the watermark, oldest first (read one by one)
    appends: tuple[Snapshot, ...]
    #: rewritten: the files to read whole, and the rows to take out of them
    added_files: tuple[FileScanTask, ...] = ()
    removed_files: tuple[FileScanTask, ...] = ()
    rewritten: bool = False


def _chain_after(table: Table, watermark: int | None) -> list[Snapshot] | None:
    """The snapshots after ``watermark`` on the current ancestry, newest first, if the chain
    down to it has no gap; None if it has one."""
    newer: list[Snapshot] = []
    for snapshot in ancestors_of(table.current_snapshot(), table.metadata):
        if watermark is not None and snapshot.snapshot_id == watermark:
            return newer
        newer.append(snapshot)
        if snapshot.parent_snapshot_id == watermark:
            return newer
    return None


def appends_after(
    table: Table, watermark: int | None, topic: str | None = None
) -> tuple[Snapshot, ...] | None:
    """The append snapshots after ``watermark``, oldest first, if the history between is
    intact; None where other writers left a gap (``watermark`` still listed: read the
    rewritten way). Reads no manifest. Raises ``HistoryLost`` if ``watermark`` is gone too."""
    chain = _chain_after(table, watermark)
    if chain is not None:
        return tuple(
            s for s in reversed(chain)
            if s.summary is not None and s.summary.operation == Operation.APPEND
        )
    if watermark is not None and table.snapshot_by_id(watermark) is None:
        raise HistoryLost(".".join(table.name()), watermark, topic)
    return None


def plan_after(table: Table, watermark: int | None, topic: str | None = None) -> IncrementPlan:
    """Plan the read of what was appended to ``table`` after ``watermark`` (module doc)."""
    if table.current_snapshot() is None:
        return IncrementPlan(())
    appends = appends_after(table, watermark, topic)
    if appends is not None:
        return IncrementPlan(appends)
    now = {t.file.file_path: t for t in table.scan().plan_files()}
    then = (
        {t.file.file_path: t for t in table.scan(snapshot_id=watermark).plan_files()}
        if watermark is not None else {}
    )
    return IncrementPlan(
        (),
        added_files=tuple(t for path, t in now.items() if path not in then),
        removed_files=tuple(t for path, t in then.items() if path not in now),
        rewritten=True,
    )


def _row_keys(rows: pa.Table) -> Iterator[tuple]:
    columns = [rows.column(i).to_pylist() for i in range(rows.num_columns)]
    return zip(*columns, strict=True)


def subtract_rows(rows: pa.Table, taken_out: pa.Table) -> pa.Table:
    """``rows`` minus ``taken_out`` as multisets of whole rows (``taken_out``'s columns are a
    subset of ``rows``' compared by name), keeping ``rows``' order."""
    if taken_out.num_rows == 0 or rows.num_rows == 0:
        return rows
    compared = rows.select(taken_out.column_names).cast(taken_out.schema)
    remaining = Counter(_row_keys(taken_out))
    keep = []
    for key in _row_keys(compared):
        if remaining[key] > 0:
            remaining[key] -= 1
            keep.append(False)
        else:
            keep.append(True)
    return rows.filter(pa.array(keep, pa.bool_()))


def protect_read(table: Table, zone: str, snapshot_id: int | None, attempts: int = 20) -> None:
    """Move the ``zone`` consumer's tag on ``table`` to ``snapshot_id`` (what it has read up
    to), so expiry keeps it (module doc). Retried on conflicts with the table's writers
    (Firehose commits every few seconds); a crash before it leaves the tag older, which only
    keeps more."""
    if snapshot_id is None:
        return
    tag = consumer_tag(zone)
    for attempt in range(attempts):
        ref = table.metadata.refs.get(tag)
        if ref is not None and ref.snapshot_id == snapshot_id:
            return
        if table.snapshot_by_id(snapshot_id) is None:
            return  # already expired: nothing left to protect
        try:
            table.manage_snapshots().create_tag(snapshot_id, tag).commit()
            return
        except CommitFailedException:
            if attempt == attempts - 1:
                raise
            table = table.refresh()
