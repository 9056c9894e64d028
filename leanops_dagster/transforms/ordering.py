"""The LIFO ordering of versions: which of two rows of the same key is the newer (pure).

A version's place in the order is its tuple of *version columns*: the schema's sequence
columns (``curated.sequence``, ``publish_time`` by default) in order, then the tie-breaks
``ingestion_ts`` and ``message_id`` that the sequence lacks (``version_columns``). Tuples are
compared lexicographically, a null ordering before every value; of two equal tuples neither
is newer (re-applying the same message is a no-op).

One rule, three callers: the in-increment dedup ranks a key's rows newest first
(``transforms.dedup.lifo_dedup``, ``newest_first``); the Curated MERGE keeps an increment row
only when it is newer than the stored row of its key (``iceberg.merge``, ``judge_stored``);
the Spark engine translates both (``engines.spark.curate``: its window order and its MERGE
condition take their column list from ``version_columns``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from leanops_dagster.constants import DEFAULT_SEQUENCE, INGESTION_TS, MESSAGE_ID

#: appended to every sequence that lacks them, in this order
TIEBREAK_COLUMNS = (INGESTION_TS, MESSAGE_ID)

_STORED = "__stored_"


def version_columns(
    sequence: Sequence[str] = DEFAULT_SEQUENCE, available: Collection[str] | None = None
) -> tuple[str, ...]:
    """``sequence`` then each tie-break it lacks (only those in ``available``, if given)."""
    sequence = tuple(sequence)
    return sequence + tuple(
        c for c in TIEBREAK_COLUMNS if c not in sequence and (available is None or c in available)
    )


def newest_first(columns: Sequence[str]) -> list[tuple[str, str, str]]:
    """Arrow sort keys ranking versions newest first over ``columns`` (nulls last: oldest)."""
    return [(c, "descending", "at_end") for c in columns]


def is_newer(
    left: Sequence[pa.Array | pa.ChunkedArray], right: Sequence[pa.Array | pa.ChunkedArray]
) -> pa.BooleanArray | pa.ChunkedArray:
    """Element-wise ``tuple(left) > tuple(right)``; a null orders before every value."""
    greater = None
    equal_so_far = None
    for a, b in zip(left, right, strict=True):
        gt = pc.or_(pc.fill_null(pc.greater(a, b), False), pc.and_(pc.is_valid(a), pc.is_null(b)))
        eq = pc.or_(pc.fill_null(pc.equal(a, b), False), pc.and_(pc.is_null(a), pc.is_null(b)))
        if greater is None:
            greater, equal_so_far = gt, eq
        else:
            greater = pc.or_(greater, pc.and_(equal_so_far, gt))
            equal_so_far = pc.and_(equal_so_far, eq)
    return greater


@dataclass(frozen=True)
class StoredVerdict:
    """Rows unique per key judged against the stored versions of their keys."""

    #: indices of the rows that win: new keys, or newer than every stored version (None: all)
    selection: pa.Array | None
    #: keys whose stored versions the winners replace
    updated_keys: pa.Array
    #: one row per stored version replaced: its key and ``stored``'s other columns (not the
    #: version columns)
    replaced: pa.Table
    inserted: int
    updated: int
    #: rows not newer than a stored version of their key: they lose
    stale: int

    @property
    def written(self) -> int:
        return self.inserted + self.updated


def judge_stored(
    rows: pa.Table, stored: pa.Table, key: str, columns: Sequence[str]
) -> StoredVerdict:
    """Which of ``rows`` (unique per ``key``) beat the ``stored`` versions of their keys.

    ``stored`` holds ``key`` and ``columns`` (``version_columns``) of the stored rows, and may
    hold more columns (``replaced`` returns them, e.g. the file a stored row lives in). A key
    stored more than once wins only when it is newer than each of its stored versions.
    """
    keys = rows.column(key)
    if stored.num_rows == 0:
        return StoredVerdict(
            None,
            pa.array([], keys.type),
            stored.select([key, *_extra(stored, key, columns)]),
            rows.num_rows,
            0,
            0,
        )
    renamed = stored.rename_columns(
        [f"{_STORED}{name}" if name in columns else name for name in stored.column_names]
    )
    pairs = rows.select([key, *columns]).join(
        renamed, keys=key, join_type="inner", use_threads=True
    )
    newer = is_newer(
        [pairs.column(c) for c in columns], [pairs.column(f"{_STORED}{c}") for c in columns]
    )
    matched_keys = pc.unique(pairs.column(key))
    stale_keys = pc.unique(pairs.filter(pc.invert(newer)).column(key))
    updated_keys = pc.filter(matched_keys, pc.invert(pc.is_in(matched_keys, value_set=stale_keys)))
    replaced = pairs.filter(pc.is_in(pairs.column(key), value_set=updated_keys))

    # indices, not a filtered copy: the caller gathers the rows once, where it writes them
    selection = pc.indices_nonzero(pc.invert(pc.is_in(keys, value_set=stale_keys)))
    updated = len(updated_keys)
    return StoredVerdict(
        selection=selection,
        updated_keys=updated_keys,
        replaced=replaced.select([key, *_extra(stored, key, columns)]),
        inserted=len(selection) - updated,
        updated=updated,
        stale=rows.num_rows - len(selection),
    )


def _extra(stored: pa.Table, key: str, columns: Sequence[str]) -> list[str]:
    return [c for c in stored.column_names if c != key and c not in columns]
