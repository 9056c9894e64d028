"""Benchmark: RAW -> Standardized -> Curated, and the Curated MERGE against growing tables.

Phases (issue 3, item 12):

a. end to end: a 1,000,000-row RAW increment through Standardized and Curated into a Curated
   table already holding 5,000,000 rows;
b. growth: a 100,000-row increment merged into Curated tables of 1M and of 10M rows;
   ``growth_1m_to_10m = t(10M) / t(1M)``, each the median of ``--repeat`` runs after one
   untimed warm-up merge;
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
import multiprocessing
import os
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

# as the Dockerfile sets it for the workers; read by Arrow's allocator when pyarrow loads
os.environ.setdefault("MIMALLOC_PURGE_DECOMMITS", "0")

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.types import NestedField, StringType, TimestamptzType
from rich.console import Console
from rich.table import Table as RichTable

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._data import (
    CURATED_EVENTS_SCHEMA,
    History,
    IncrementSpec,
    make_increment,
    raw_from_curated,
)
from leanops_dagster.constants import IDEMPOTENCY_KEY as KEY_COLUMN
from leanops_dagster.constants import curated_partition_spec
from leanops_dagster.iceberg.datafiles import write_data_files
from leanops_dagster.iceberg.key_index import FORMAT as KEY_INDEX_FORMAT
from leanops_dagster.iceberg.key_index import KeyIndex, updated_index
from leanops_dagster.iceberg.merge import MergeStats, merge_lifo
from leanops_dagster.iceberg.tables import (
    RAW_STAGING_PARTITION_SPEC,
    RAW_STAGING_SCHEMA,
)
from leanops_dagster.pipeline.curate import curate_topic
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.standardize import standardize_topic
from leanops_dagster.schemas.loader import load_topic_dir
from leanops_dagster.schemas.models import TopicSchema
from leanops_dagster.settings import REPO_ROOT

NAMESPACE = "bench"
BASE_COMPLETE = "leanops.bench.base"
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
    columns = ",".join(f"{f.field_id}:{f.name}:{f.field_type}"
                       for f in CURATED_EVENTS_SCHEMA.fields)
    signature = (f"{history.rows}/{history.rows_per_day}/{history.end_day}/{history.seed}/"
                 f"{columns}/{KEY_INDEX_FORMAT}/10-day-manifests")
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
    # rows per append: a manifest per 10 days of history for every size (--quick or not), so
    # the 1M and the 10M tables have manifests of the same shape (1 and 10 of 160 files)
    append_rows = 10 * history.rows_per_day
    for start in range(0, history.rows, append_rows):
        chunk = history.chunk(start, start + append_rows)
        chunk = pa.Table.from_arrays(
            [chunk.column(f.name).cast(f.type) for f in arrow_schema], schema=arrow_schema
        )
        # as the pipeline's MERGE writes them: data files plus a key index segment
        written = write_data_files(table.metadata, table.io, chunk, index_column=KEY_COLUMN)
        previous = KeyIndex.of(table, KEY_COLUMN)
        index = updated_index(
            table, KEY_COLUMN, previous, previous.read(table.io) if previous else [],
            written.entries,
        )
        files = written.files
        with table.transaction() as tx, tx.update_snapshot(
            snapshot_properties=index.property()
        ).fast_append() as append:
            for data_file in files:
                append.append_data_file(data_file)
        say(f"  base {name[1]}: {min(start + append_rows, history.rows):,} rows "
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


@contextlib.contextmanager
def files_written_removed(*tables: Table) -> Iterator[None]:
    """Delete every file written under these tables' locations during the block: a fork
    shares its base's location, and each merge writes ~250 MB there (before this, repeated
    runs left tens of GB behind and pushed the base files out of the page cache)."""
    roots = [Path(urlparse(t.location()).path) for t in tables]
    before = {path for root in roots for path in root.rglob("*")}
    try:
        yield
    finally:
        for root in roots:
            for path in root.rglob("*"):
                if path not in before and path.is_file():
                    path.unlink()


# --- phases ---------------------------------------------------------------------------------
@dataclass
class Row:
    phase: str
    rows: int
    seconds: float
    detail: str = ""

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def _stats_detail(stats: MergeStats) -> str:
    phases = " ".join(f"{k} {v:.2f}" for k, v in stats.elapsed.items())
    return (
        f"ins {stats.inserted:,} upd {stats.updated:,} stale {stats.stale:,}; rewrote "
        f"{stats.rewritten_files}/{stats.scanned_files} files ({stats.rewritten_rows:,} rows); "
        f"{phases}"
    )


def merge_phase(
    catalog: Catalog, history: History, spec: IncrementSpec, label: str, repeat: int = 3
) -> tuple[Row, MergeStats]:
    """``repeat`` timed merges of the same increment, each into a fresh fork; the median."""
    base = base_table(catalog, history)
    increment = make_increment(history, spec)
    say(f"{label}: merging {spec.rows:,} rows into {history.rows:,} "
        f"({increment.new_keys:,} new keys, {increment.newer_versions:,} newer versions, "
        f"{increment.late_versions:,} older versions arriving late), {repeat} time(s)")
    timings: list[tuple[float, MergeStats]] = []
    for run in range(repeat):
        table = fork(catalog, base, "fork_merge")
        gc.collect()
        with files_written_removed(base):
            started = time.perf_counter()
            stats = merge_lifo(table, increment.rows,
                               snapshot_properties={"leanops.bench": label})
            seconds = time.perf_counter() - started
            bench_label = table.current_snapshot().summary.additional_properties.get(
                "leanops.bench")
        say(f"{label} [{run + 1}/{repeat}]: {seconds:.2f} s; {_stats_detail(stats)}")
        expected = (increment.new_keys, increment.newer_versions, increment.late_versions)
        if (stats.inserted, stats.updated, stats.stale) != expected:
            raise SystemExit(f"{label}: merge counts {stats} differ from the generator's "
                             f"{expected}")
        if bench_label != label:
            raise SystemExit(f"{label}: snapshot summary lacks the snapshot properties")
        timings.append((seconds, stats))
    seconds, stats = sorted(timings, key=lambda t: t[0])[len(timings) // 2]
    runs = ", ".join(f"{t:.2f}" for t, _ in timings)
    return Row(label, spec.rows, seconds,
               f"median of {repeat} runs ({runs} s); {_stats_detail(stats)}"), stats


def warm_up(catalog: Catalog, history: History, spec: IncrementSpec) -> None:
    """One untimed merge, so the timed ones do not pay for first use (imports, thread pools,
    the page cache of the base files): a single cold run made the growth figure swing from
    0.9 to 1.8 between identical runs."""
    base = base_table(catalog, history)
    table = fork(catalog, base, "fork_warm_up")
    started = time.perf_counter()
    with files_written_removed(base):
        merge_lifo(table, make_increment(history, spec).rows)
    say(f"warm-up merge into {history.rows:,} (not counted): "
        f"{time.perf_counter() - started:.2f} s")


def upsert_phase(
    catalog: Catalog, history: History, spec: IncrementSpec, sample: int, merge_seconds: float
) -> tuple[Row, float]:
    """pyiceberg ``Table.upsert`` of a sample of the increment, extrapolated linearly."""
    base = base_table(catalog, history)
    rows = make_increment(history, spec).rows.slice(0, sample)
    table = fork(catalog, base, "fork_upsert")
    arrow_schema = table.schema().as_arrow()
    rows = pa.Table.from_arrays(
        [rows.column(f.name).cast(f.type) for f in arrow_schema], schema=arrow_schema
    )
    say(f"c: pyiceberg Table.upsert of {sample:,} of the {spec.rows:,} increment rows into "
        f"{history.rows:,} ...")
    gc.collect()
    with files_written_removed(base):
        started = time.perf_counter()
        result = table.upsert(rows, join_cols=["idempotency_key"])
        seconds = time.perf_counter() - started
    extrapolated = seconds * spec.rows / sample
    say(f"c: upsert {seconds:.2f} s for {sample:,} rows (updated {result.rows_updated:,}, "
        f"inserted {result.rows_inserted:,}) -> EXTRAPOLATED {extrapolated:.1f} s for "
        f"{spec.rows:,}")
    ratio = extrapolated / merge_seconds
    row = Row(
        f"c: Table.upsert {_size(IncrementSpec(sample))} -> {_size(history)}", sample,
        seconds,
        f"extrapolated linearly to {spec.rows:,} rows: {extrapolated:.1f} s (EXTRAPOLATED); "
        f"ratio to merge_lifo {ratio:.0f}x",
    )
    return row, ratio


def pipeline_phase(
    catalog: Catalog, history: History, raw_rows: int, key: bytes
) -> list[Row]:
    """Phase a through the pipeline's ``standardize_topic`` and ``curate_topic``."""

    schema = load_topic_dir(REPO_ROOT / "schemas", "events")
    tables = TopicTables("events")
    raw_input = raw_increment_table(catalog, history, raw_rows)
    for namespace in {t[0] for t in (tables.raw, tables.standardized, tables.curated)}:
        with contextlib.suppress(Exception):
            catalog.create_namespace(namespace)
    for identifier in (tables.standardized, tables.parse_errors, tables.curated_errors,
                       tables.drift_log):
        with contextlib.suppress(NoSuchTableError):
            catalog.purge_table(identifier)
    curated_base = base_table(catalog, history)
    for identifier, source in ((tables.raw, raw_input), (tables.curated, curated_base)):
        with contextlib.suppress(NoSuchTableError):
            catalog.drop_table(identifier)  # a fork: files are shared, never purge
        catalog.register_table(identifier, source.metadata_location)
    say(f"a: {raw_rows:,} RAW rows ({raw_input.properties[RAW_MIX]}) -> standardize_topic -> "
        f"curate_topic into Curated of {history.rows:,} (Standardized starts empty)")
    gc.collect()
    with files_written_removed(curated_base):
        return _timed_pipeline(catalog, tables, schema, raw_rows, history, key)


def _timed_pipeline(
    catalog: Catalog, tables: TopicTables, schema: TopicSchema, raw_rows: int,
    history: History, key: bytes,
) -> list[Row]:
    started = time.perf_counter()
    std = standardize_topic(catalog, tables, schema)
    std_seconds = time.perf_counter() - started
    say(f"a: standardize_topic {std_seconds:.2f} s (peak RSS {peak_rss_mb():,.0f} MB): read "
        f"{std.rows_read:,}, written {std.rows_written:,}, parse errors {std.parse_errors:,}, "
        f"duplicates {std.duplicates:,}")
    started = time.perf_counter()
    cur = curate_topic(catalog, tables, schema, pii_key=key)
    cur_seconds = time.perf_counter() - started
    say(f"a: curate_topic {cur_seconds:.2f} s (peak RSS {peak_rss_mb():,.0f} MB): read "
        f"{cur.rows_read:,}, inserted {cur.inserted:,}, updated {cur.updated:,}, superseded "
        f"{cur.superseded:,}, CDE error rows {cur.cde_error_rows:,}")
    if not (std.balanced and cur.balanced and std.rows_read == raw_rows):
        raise SystemExit(f"a: accountability does not balance: {std} {cur}")
    total = std_seconds + cur_seconds
    return [
        Row("a: standardize_topic", raw_rows, std_seconds,
            f"written {std.rows_written:,}, duplicates {std.duplicates:,}"),
        Row("a: curate_topic", raw_rows, cur_seconds,
            f"ins {cur.inserted:,} upd {cur.updated:,} superseded {cur.superseded:,}"),
        Row(f"a: end to end {_size(IncrementSpec(raw_rows))} RAW -> {_size(history)} Curated",
            raw_rows, total, "pipeline functions (standardize_topic + curate_topic)"),
    ]


RAW_MIX = "leanops.bench.mix"


def raw_increment_table(catalog: Catalog, history: History, raw_rows: int) -> Table:
    """The RAW increment of phase a (cached like the base tables: built in the child process)."""
    name = (NAMESPACE, f"raw_events_{raw_rows}_{history.rows}_{history.rows_per_day}")
    with contextlib.suppress(NoSuchTableError):
        table = catalog.load_table(name)
        if RAW_MIX in table.properties:
            return table
        catalog.purge_table(name)
    duplicates = raw_rows // 200  # 0.5 % network duplicates
    increment = make_increment(history, IncrementSpec(raw_rows - duplicates, seed=5))
    raw = raw_from_curated(increment.rows, duplicates=duplicates)
    table = _fresh_table(catalog, name[1], RAW_STAGING_SCHEMA, RAW_STAGING_PARTITION_SPEC)
    table.append(raw.cast(RAW_STAGING_SCHEMA.as_arrow()))
    mix = (f"{duplicates:,} network duplicates; {increment.new_keys:,} new keys, "
           f"{increment.newer_versions:,} corrections, {increment.late_versions:,} older "
           "versions arriving late")
    with table.transaction() as tx:
        tx.set_properties({RAW_MIX: mix})
    return catalog.load_table(name)


def _fresh_table(catalog: Catalog, name: str, schema: Schema,
                 spec: PartitionSpec = UNPARTITIONED_PARTITION_SPEC) -> Table:
    identifier = (NAMESPACE, name)
    with contextlib.suppress(NoSuchTableError):
        catalog.purge_table(identifier)
    return catalog.create_table(identifier, schema=schema, partition_spec=spec,
                                properties={"format-version": "2"})


def _all_string_schema(rows: pa.Table) -> Schema:
    fields = []
    for i, f in enumerate(rows.schema, start=1):
        kind = TimestamptzType() if pa.types.is_timestamp(f.type) else StringType()
        fields.append(NestedField(i, f.name, kind, required=False))
    return Schema(*fields)


# --- main -----------------------------------------------------------------------------------
def _build_bases(workdir: Path, histories: list[History], raw: tuple[History, int] | None
                 ) -> None:
    """Build missing inputs in a child process: the parent's peak RSS stays the phases'."""
    catalog = open_bench_catalog(workdir)
    for history in histories:
        base_table(catalog, history)
    if raw is not None:
        raw_increment_table(catalog, *raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(".leanops/bench"))
    parser.add_argument("--quick", action="store_true", help="every size divided by 10")
    parser.add_argument("--rows-per-day", type=int, default=100_000,
                        help="daily volume of the stored history (a bigger table = more days)")
    parser.add_argument("--mean-age-days", type=float, default=2.0,
                        help="mean age of the stored rows that corrections replace")
    parser.add_argument("--upsert-sample", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed merges per table size in phase b (the median counts)")
    parser.add_argument("--phases", default="abc", help="any of a, b, c")
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    per_day = args.rows_per_day // scale
    h1, h5, h10 = (History(n // scale, per_day) for n in (1_000_000, 5_000_000, 10_000_000))
    spec_100k = IncrementSpec(100_000 // scale, mean_age_days=args.mean_age_days)
    workdir = args.workdir.resolve()

    needed = [h for h, phase in ((h1, "bc"), (h10, "b"), (h5, "a"))
              if set(phase) & set(args.phases)]
    say(f"base tables ({', '.join(f'{h.rows:,}' for h in needed)} rows, {per_day:,} a day) "
        f"under {workdir}")
    builder = multiprocessing.get_context("spawn").Process(
        target=_build_bases,
        args=(workdir, needed, (h5, 1_000_000 // scale) if "a" in args.phases else None))
    builder.start()
    builder.join()
    if builder.exitcode:
        raise SystemExit("building the base tables failed")
    catalog = open_bench_catalog(workdir)

    results: list[Row] = []
    summary: dict[str, float | int | None] = {
        "rows": None, "rows_per_s": None, "upsert_ratio": None, "growth_1m_to_10m": None,
    }
    if "a" in args.phases:
        rows = pipeline_phase(catalog, h5, 1_000_000 // scale, b"bench-pii-key")
        results += rows
        summary["rows"] = rows[-1].rows
        summary["rows_per_s"] = round(rows[-1].rows_per_s)
        gc.collect()
    merge_1m = None
    if "b" in args.phases or "c" in args.phases:
        warm_up(catalog, h1, spec_100k)
        row, _ = merge_phase(catalog, h1, spec_100k,
                             f"b: MERGE {_size(spec_100k)} -> {_size(h1)}", args.repeat)
        results.append(row)
        merge_1m = row.seconds
    if "b" in args.phases:
        gc.collect()
        row, _ = merge_phase(catalog, h10, spec_100k,
                             f"b: MERGE {_size(spec_100k)} -> {_size(h10)}", args.repeat)
        results.append(row)
        summary["growth_1m_to_10m"] = round(row.seconds / merge_1m, 3)
    if "c" in args.phases:
        gc.collect()
        row, ratio = upsert_phase(catalog, h1, spec_100k, args.upsert_sample // scale, merge_1m)
        results.append(row)
        summary["upsert_ratio"] = round(ratio, 1)
    summary["peak_rss_mb"] = round(peak_rss_mb())
    render(results, summary)
    print(json.dumps(summary))
    return 0


def _size(sized: History | IncrementSpec) -> str:
    return f"{sized.rows / 1e6:g}M" if sized.rows >= 1_000_000 else f"{sized.rows / 1e3:g}k"


def render(results: list[Row], summary: dict) -> None:
    table = RichTable(title="Lean-Ops benchmark (wall-clock seconds)")
    for column in ("phase", "rows", "seconds", "rows/s", "detail"):
        table.add_column(column, overflow="fold")
    for row in results:
        table.add_row(row.phase, f"{row.rows:,}", f"{row.seconds:.2f}", f"{row.rows_per_s:,.0f}",
                      row.detail)
    console.print(table)
    targets = {"rows_per_s": (">=", 100_000), "upsert_ratio": (">=", 50),
               "growth_1m_to_10m": ("<=", 1.5), "peak_rss_mb": ("<", 4096)}
    verdicts = RichTable(title="targets")
    for column in ("metric", "value", "target", "met"):
        verdicts.add_column(column)
    for name, (op, bound) in targets.items():
        value = summary.get(name)
        met = None if value is None else {
            ">=": value >= bound, "<=": value <= bound, "<": value < bound}[op]
        verdicts.add_row(name, "-" if value is None else f"{value:,}", f"{op} {bound:,}",
                         {None: "not run", True: "yes", False: "NO"}[met])
    console.print(verdicts)


if __name__ == "__main__":
    raise SystemExit(main())
