"""Process tuning for the runs that process increments (the pure transforms have none).

Flattening (``flatten_increment``): the cyclic garbage collector is paused while an increment
is flattened (millions of short-lived containers on the per-record paths: the collector would
dominate), glibc's allocator is warmed up (``warm_up_malloc``), and a large increment may be
split over worker processes (``workers``).

Transparent huge pages:
A 1M-row increment makes Arrow allocate a few gigabytes. With the kernel's transparent huge
pages in ``madvise`` mode, Arrow's allocator (mimalloc) asks for huge pages, and each first
touch of one makes the kernel clear 2 MiB, again every time freed memory is reused after being
handed back: ``perf`` showed a third of a cold ``standardize_topic`` in ``clear_page_erms``
(system time 4.0 s of 5.3 s). Turning huge pages off for this process alone
(``prctl(PR_SET_THP_DISABLE)``, Linux) brought that run to 3.3 s (system time 1.1 s); nothing
else on the machine changes. ``Settings.disable_thp`` decides (``LEANOPS_DISABLE_THP=false``
keeps the kernel's default); the ring that runs the layers hands it to them.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import os
import sys
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from leanops_dagster.schemas.models import StandardizedSchema
from leanops_dagster.transforms import flatten

_PR_SET_THP_DISABLE = 41


@functools.cache
def disable_transparent_huge_pages() -> bool:
    """Turn transparent huge pages off for this process; whether the kernel accepted it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


@functools.cache
def warm_up_malloc() -> None:
    """Raise glibc's mmap threshold once for this process.

    glibc's malloc raises its mmap threshold (and trim threshold, to twice that) when a mapped
    block up to 32 MiB is freed; without this, each few MiB of NumPy temporaries (the
    vectorised flatten works in blocks of 2 MiB of payloads) is mapped and unmapped anew (page
    faults: ~40 % more CPU in a fresh process). The block is never touched: no memory is used.
    """
    warmup = np.empty(24 << 20, dtype=np.uint8)
    del warmup


def prepare_for_increments(*, disable_thp: bool) -> None:
    """Called by the layer runs before they read an increment (idempotent); ``disable_thp``:
    ``Settings.disable_thp``."""
    if disable_thp:
        disable_transparent_huge_pages()
    warm_up_malloc()


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off inside the block (back as it was after)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


#: increments from this size are split over processes when ``workers`` is None
PARALLEL_MIN_ROWS = 200_000


def flatten_increment(
    raw: pa.Table,
    schema: StandardizedSchema,
    *,
    snapshot_column: str | None,
    workers: int | None = 1,
) -> flatten.FlattenResult:
    """``transforms.flatten.flatten_raw`` tuned for this process (module docstring).

    ``workers``: processes to split the increment over (``None``: one per available core for
    200,000 rows or more, else 1). The result is identical for any number of workers. Workers
    start from a forkserver (safe in a threaded process), so a script calling this with
    ``workers != 1`` needs the ``if __name__ == "__main__":`` guard.
    """
    workers = _auto_workers(raw.num_rows) if workers is None else max(1, workers)
    if workers > 1 and raw.num_rows >= 2 * workers:
        return _flatten_in_processes(raw, schema, snapshot_column, workers)
    return _flatten_here(raw, schema, snapshot_column)


def _flatten_here(
    raw: pa.Table, schema: StandardizedSchema, snapshot_column: str | None
) -> flatten.FlattenResult:
    warm_up_malloc()
    with gc_paused():
        return flatten.flatten_raw(raw, schema, snapshot_column=snapshot_column)


def _auto_workers(rows: int) -> int:
    if rows < PARALLEL_MIN_ROWS:
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cpus or 1, rows // (PARALLEL_MIN_ROWS // 2), 8))


def _flatten_in_processes(
    raw: pa.Table, schema: StandardizedSchema, snapshot_column: str | None, workers: int
) -> flatten.FlattenResult:
    """Flatten contiguous slices in ``workers`` processes (forkserver: safe with threads)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    step = -(-raw.num_rows // workers)
    slices = [raw.slice(start, step) for start in range(0, raw.num_rows, step)]
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(max_workers=len(slices), mp_context=context) as pool:
        parts = list(
            pool.map(_flatten_here, slices, [schema] * len(slices), [snapshot_column] * len(slices))
        )
    return flatten.concat_results(parts)
