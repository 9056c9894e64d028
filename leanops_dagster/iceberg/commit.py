"""Commits of a layer run: each asserts the snapshot the run read, and a conflict reruns it."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table

T = TypeVar("T")
log = logging.getLogger(__name__)


def snapshot_id_of(table: Table | None) -> int | None:
    """The table's current snapshot id; None for a missing table or one with no snapshot."""
    if table is None:
        return None
    return table.metadata.current_snapshot_id


def ensure_unchanged(table: Table, started_from: int | None) -> None:
    """Raise ``CommitFailedException`` unless ``table``'s main branch is still at
    ``started_from``, the snapshot (None: no table, or no snapshot yet) this run read its
    watermark from.

    pyiceberg's snapshot commits assert that main is still at the snapshot of the *table
    object* they start from. A run that created or reloaded the table after reading it (a lost
    creation race loads the winner's table; a schema update's response carries any snapshot
    committed meanwhile) would therefore commit on top of rows it never saw. Checking the object
    against the read point here, and letting pyiceberg assert object == catalog at commit, makes
    the whole step read-point == catalog: a writer that lost the race retries from the watermark.
    """
    current = snapshot_id_of(table)
    if current != started_from:
        raise CommitFailedException(
            f"{'.'.join(table.name())}: main moved from {started_from} to {current} "
            "since this run read it"
        )


def retry_commit(step: Callable[[], T], *, attempts: int = 5, base_delay_s: float = 0.1) -> T:
    """Run ``step`` again on ``CommitFailedException``.

    ``step`` must reload its tables and re-read its watermark: after a concurrent writer
    committed the same increment, the retry finds nothing new and does nothing.
    """
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except CommitFailedException as exc:
            if attempt == attempts:
                raise
            delay = base_delay_s * 2 ** (attempt - 1) * (1 + random.random())
            log.warning(
                "Iceberg commit conflict (attempt %d/%d): %s; retrying", attempt, attempts, exc
            )
            time.sleep(delay)
    raise AssertionError("unreachable")
