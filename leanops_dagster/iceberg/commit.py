"""Retry an Iceberg read-modify-commit step when another writer committed first."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from pyiceberg.exceptions import CommitFailedException

T = TypeVar("T")
log = logging.getLogger(__name__)


def retry_commit(step: Callable[[], T], *, attempts: int = 5, base_delay_s: float = 0.1) -> T:
    """Run ``step`` again on ``CommitFailedException``.

    ``step`` must reload its tables and re-read its watermark: after a concurrent writer
    committed the same increment, the retry finds nothing new and does nothing.
    """
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except CommitFailedException:
            if attempt == attempts:
                raise
            delay = base_delay_s * 2 ** (attempt - 1) * (1 + random.random())
            log.warning("Iceberg commit conflict (attempt %d/%d); retrying", attempt, attempts)
            time.sleep(delay)
    raise AssertionError("unreachable")
