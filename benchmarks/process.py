"""Benchmark: RAW -> Standardized -> Curated, and the Curated MERGE against growing tables.

Phases (issue 3, item 12):

a. end to end: a 1,000,000-row RAW increment through Standardized and Curated into a Curated
   table already holding 5,000,000 rows;
b. growth: a 100,000-row increment merged into Curated tables of 1M and of 10M rows;
   ``growth_1m_to_10m = t(10M) / t(1M)``;
c. pyiceberg's ``Table.upsert`` on a sample of the same 100k increment into a copy of the 1M
   table, extrapolated linearly to 100k (labelled so); ``upsert_ratio = t(upsert) / t(merge)``.

Base tables are built once (a few large appends, seeded, see ``benchmarks/_data.py``) under
``--workdir`` and reused; every phase merges into a *fork* of a base table (the catalog
registers a second table on the same metadata file, so the base stays untouched and a fork costs
nothing). ``--quick`` scales every size down by 10.

The last line printed is JSON:
``{"rows": N, "rows_per_s": X, "upsert_ratio": R, "growth_1m_to_10m": G, "peak_rss_mb": M}``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table
from rich.console import Console
from rich.table import Table as RichTable

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._data import (  # noqa: E402
    CURATED_EVENTS_SCHEMA,
    History,
    IncrementSpec,
    make_increment,
)
from leanops_dagster.iceberg.merge import (  # noqa: E402
    curated_partition_spec,
    merge_lifo,
    write_data_files,
)

NAMESPACE = "bench"
BASE_COMPLETE = "leanops.bench.base"
APPEND_ROWS = 2_000_000  # rows per base append (divided by the --quick scale)
console = Console(stderr=False)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def say(message: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}")


# --- tables ---------------------------------------------------------------------------------
def open_bench_catalog(workdir: Path) -> Catalog:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "warehouse").mkdir(exist_ok=True)
    catalog = SqlCatalog(
        "bench", uri=f"sqlite:///{workdir / 'catalog.db'}",
        warehouse=(workdir / "warehouse").resolve().as_uri(),
    )
    with contextlib.suppress(Exception):
        catalog.create_namespace(NAMESPACE)
    return catalog


def base_table(catalog: Catalog, history: History) -> Table:
    """The cached Curated base table of ``history``, built on first use."""
    name = (NAMESPACE, f"curated_{history.rows}_{history.rows_per_day}_{history.seed}")
    signature = f"{history.rows}/{history.rows_per_day}/{history.end_day}/{history.seed}"
    try:
        table = catalog.load_table(name)
        if table.properties.get(BASE_COMPLETE) == signature:
            return table
        catalog.purge_table(name)  # an interrupted build: start again
    except NoSuchTableError:
        pass
    table = catalog.create_table(
        name, schema=CURATED_EVENTS_SCHEMA,
        partition_spec=curated_partition_spec(CURATED_EVENTS_SCHEMA),
        properties={"format-version": "2"},
    )
    started = time.perf_counter()
    arrow_schema = CURATED_EVENTS_SCHEMA.as_arrow()
    for start in range(0, history.rows, APPEND_ROWS):
        chunk = history.chunk(start, start + APPEND_ROWS)
        chunk = pa.Table.from_arrays(
            [chunk.column(f.name).cast(f.type) for f in arrow_schema], schema=arrow_schema
        )
        files = write_data_files(table.metadata, table.io, chunk)
        with table.transaction() as tx, tx.update_snapshot().fast_append() as append:
            for data_file in files:
                append.append_data_file(data_file)
        say(f"  base {name[1]}: {min(start + APPEND_ROWS, history.rows):,} rows "
            f"({time.perf_counter() - started:.0f} s)")
        del chunk, files
        gc.collect()
    with table.transaction() as tx:
        tx.set_properties({BASE_COMPLETE: signature})
    return catalog.load_table(name)


def fork(catalog: Catalog, base: Table, name: str) -> Table:
    """A second catalog entry on ``base``'s metadata: merges into it leave ``base`` unchanged."""
    identifier = (NAMESPACE, name)
    with contextlib.suppress(NoSuchTableError):
        catalog.drop_table(identifier)  # drop (not purge): files are shared with the base
    return catalog.register_table(identifier, base.metadata_location)


# --- phases ---------------------------------------------------------------------------------
@dataclass
class Row:
    phase: str
    rows: int
    seconds: float
    detail: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def merge_phase(catalog: Catalog, history: History, spec: IncrementSpec, label: str) -> Row:
    base = base_table(catalog, history)
    increment = make_increment(history, spec)
    table = fork(catalog, base, f"fork_{label}")
    say(f"{label}: merging {spec.rows:,} rows into {history.rows:,} "
        f"({increment.new_keys:,} new, {increment.newer_versions:,} newer, "
        f"{increment.late_versions:,} late)")
    started = time.perf_counter()
    stats = merge_lifo(table, increment.rows, snapshot_properties={"leanops.bench": label})
    seconds = time.perf_counter() - started
    phases = ", ".join(f"{k} {v:.2f}" for k, v in stats.elapsed.items())
    say(f"{label}: {seconds:.2f} s ({phases}); inserted {stats.inserted:,}, "
        f"updated {stats.updated:,}, stale {stats.stale:,}, rewrote {stats.rewritten_files} "
        f"files / {stats.rewritten_rows:,} rows, scanned {stats.scanned_files} files")
    expected = (increment.new_keys, increment.newer_versions, increment.late_versions)
    if (stats.inserted, stats.updated, stats.stale) != expected:
        raise SystemExit(f"{label}: merge counts {stats} differ from the generator's {expected}")
    return Row(
        label, spec.rows, seconds,
        f"ins {stats.inserted:,} upd {stats.updated:,} stale {stats.stale:,}; rewrote "
        f"{stats.rewritten_files} of {stats.scanned_files} files ({stats.rewritten_rows:,} rows)",
        dict(stats.elapsed),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(".leanops/bench"))
    parser.add_argument("--quick", action="store_true", help="every size divided by 10")
    parser.add_argument("--rows-per-day", type=int, default=100_000)
    parser.add_argument("--mean-age-days", type=float, default=2.0,
                        help="mean age of the stored rows a correction replaces")
    parser.add_argument("--phases", default="abc")
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    rows_per_day = args.rows_per_day // scale
    catalog = open_bench_catalog(args.workdir)
    results: list[Row] = []
    spec_100k = IncrementSpec(100_000 // scale, mean_age_days=args.mean_age_days)
    if "b" in args.phases:
        for rows, label in ((1_000_000, "b: 100k -> 1M"), (10_000_000, "b: 100k -> 10M")):
            results.append(merge_phase(
                catalog, History(rows // scale, rows_per_day), spec_100k, label))
    render(results)
    return 0


def render(results: list[Row]) -> None:
    table = RichTable(title="Lean-Ops benchmark")
    for column in ("phase", "rows", "seconds", "rows/s", "detail"):
        table.add_column(column)
    for row in results:
        table.add_row(row.phase, f"{row.rows:,}", f"{row.seconds:.2f}", f"{row.rows_per_s:,.0f}",
                      row.detail)
    console.print(table)


if __name__ == "__main__":
    raise SystemExit(main())
