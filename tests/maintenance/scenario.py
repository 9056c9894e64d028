"""The hostile multi-batch dataset and the driver of one topic through it.

The dataset: three RAW batches of the ``events`` topic, each part of the fixed hostile corpus
(``tests/safety_net/hostile_corpus.jsonl``: invalid JSON, wrong types, numbers and timestamps
past every bound, unsafe keys, deep nesting) and part seeded random hostile bodies
(``hostile.random_body``: corrections of earlier keys included), with network duplicates in a
batch (``hostile.raw_rows``) and across batches, corrections arriving later (newer: an update)
and older ones arriving later (stale: superseded).

``TopicRun`` runs Standardized then Curated on one engine after each batch, at a fixed ``now``
per run (the same in every catalog, so ``recorded_ts`` columns match), and checks each run's
own equation. ``state`` is what must be equal to an uninterrupted run: every table's content,
order-insensitive, and the all-time equations (``accountability``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from leanops_dagster.engines.choice import run_curate, run_standardize
from leanops_dagster.iceberg.catalog import ensure_table
from leanops_dagster.iceberg.tables import RAW_STAGING_PARTITION_SPEC, RAW_STAGING_SCHEMA
from leanops_dagster.pipeline import accountability
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.schemas.registry import SchemaRegistry
from leanops_dagster.settings import Settings
from tests.safety_net import hostile

TOPIC = "events"
TABLES = TopicTables(TOPIC)
BATCHES = 3
CORPUS_PER_BATCH = 70
RANDOM_PER_BATCH = 110
NOW = dt.datetime(2026, 2, 1, 8, 0, tzinfo=dt.UTC)
CORPUS = Path(__file__).parents[1] / "safety_net" / "hostile_corpus.jsonl"

#: columns that name a snapshot of another table (ids differ between catalogs by nature, and
#: an expired upstream snapshot has no position left to compare) or the time of the run that
#: wrote the row (a recovery writes at its own time)
VOLATILE_COLUMNS = frozenset({"raw_snapshot_id", "standardized_snapshot_id", "recorded_ts"})

_ENGINE_SPECIFIC = frozenset({"topic", "watermark_from", "watermark_to", "snapshot_id",
                              "files_read", "files_rewritten", "rows_rewritten", "busy"})


def _corpus() -> list[str]:
    entries = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    return [e["body"] for e in entries if e["topic"] == TOPIC]


def hostile_batches() -> list[pa.Table]:
    """The RAW batches (deterministic: a seeded generator over a fixed corpus)."""
    rng = random.Random(18)
    corpus = _corpus()
    per_batch = CORPUS_PER_BATCH + RANDOM_PER_BATCH
    batches: list[pa.Table] = []
    previous: list[dict] = []
    for number in range(BATCHES):
        start = number * per_batch
        bodies = corpus[number * CORPUS_PER_BATCH:(number + 1) * CORPUS_PER_BATCH]
        bodies += [hostile.random_body(rng, TOPIC, start + i) for i in range(RANDOM_PER_BATCH)]
        if number:
            # a newer version of a key of the previous batch (an update) and an older one
            # arriving late (superseded by what is stored)
            bodies.append(hostile.render(hostile.base_body(TOPIC, 10 * per_batch + number,
                                                           key=f"k{start - per_batch + 1}")))
            bodies.append(hostile.render(hostile.base_body(TOPIC, 0, key=f"k{start - 1}")))
        rows = hostile.raw_rows(bodies, TOPIC, rng, start=start).to_pylist()
        # network duplicates of the previous batch's messages, delivered again later
        rows += [{**row, "ingestion_ts": row["ingestion_ts"] + dt.timedelta(hours=1)}
                 for row in previous[:6]]
        previous = rows
        batches.append(pa.Table.from_pylist(rows, schema=RAW_STAGING_SCHEMA.as_arrow()))
    return batches


DATASET = hostile_batches()


def figures(result) -> dict:
    """A run's figures that do not depend on the catalog or the engine."""
    return {k: v for k, v in dataclasses.asdict(result).items() if k not in _ENGINE_SPECIFIC}


class TopicRun:
    """``events`` in one LEANOPS_HOME: RAW appends and the runs of both layers."""

    def __init__(self, settings: Settings, engine: str) -> None:
        from leanops_dagster.iceberg.catalog import open_catalog

        self.settings = settings
        self.engine = engine
        self.catalog = open_catalog(settings)
        registry = SchemaRegistry.from_settings(settings)
        registry.deploy(TOPIC)
        self.schema = registry.load(TOPIC)
        self.pii_key = settings.pii_hash_key.get_secret_value().encode()
        self.runs = 0
        self.figures: list[tuple[dict, dict]] = []
        ensure_table(self.catalog, TABLES.raw, RAW_STAGING_SCHEMA, RAW_STAGING_PARTITION_SPEC)

    def inject(self, number: int, appends: int = 1) -> list[int]:
        """Batch ``number`` into RAW in ``appends`` appends (snapshots). Returns their ids."""
        rows = DATASET[number]
        raw = self.catalog.load_table(TABLES.raw)
        ids = []
        size = -(-rows.num_rows // appends)
        for offset in range(0, rows.num_rows, size):
            raw.append(rows.slice(offset, size))
            ids.append(raw.current_snapshot().snapshot_id)
        return ids

    def run(self, *, check: bool = True):
        """Standardized, then Curated; each run's own equation must balance."""
        now = NOW + dt.timedelta(hours=self.runs)
        self.runs += 1
        std = run_standardize(self.catalog, TABLES, self.schema, engine=self.engine, now=now)
        cur = run_curate(self.catalog, TABLES, self.schema, engine=self.engine,
                         pii_key=self.pii_key, now=now)
        if check:
            assert std.busy is None and cur.busy is None, (std.busy, cur.busy)
            assert std.balanced, f"run {self.runs}: the Standardized run's equation: {std}"
            assert cur.balanced, f"run {self.runs}: the Curated run's equation: {cur}"
        self.figures.append((figures(std), figures(cur)))
        return std, cur

    def equations(self) -> list[dict]:
        return [e.as_dict() for e in (accountability.post_raw_equation(self.catalog, TABLES),
                                      accountability.curated_equation(self.catalog, TABLES))]

    def state(self) -> dict:
        """Every table's content (this topic's rows; volatile columns left out), sorted, and
        the all-time equations."""
        return {
            "standardized": _rows(self.catalog, TABLES.standardized),
            "parse_errors": _rows(self.catalog, TABLES.parse_errors),
            "curated": _rows(self.catalog, TABLES.curated),
            "curated_errors": _rows(self.catalog, TABLES.curated_errors),
            "drift_log": _rows(self.catalog, TABLES.drift_log),
            "accountability": self.equations(),
        }


def _rows(catalog, identifier) -> tuple[list[str], list[dict]] | None:
    if not catalog.table_exists(identifier):
        return None
    table = catalog.load_table(identifier)
    rows = table.scan().to_arrow()
    if "topic_name" in rows.column_names and identifier != TABLES.standardized:
        rows = rows.filter(pc.equal(rows["topic_name"], TOPIC))
    # by name: a table rebuilt from RAW holds the same columns, maybe in another order
    kept = sorted(c for c in rows.column_names if c not in VOLATILE_COLUMNS)
    listed = rows.select(kept).to_pylist()
    return kept, sorted(listed, key=repr)


def assert_same_state(state: dict, reference: dict, context: str) -> None:
    """``state`` equals the uninterrupted run's, table by table, with a message that says
    what differs (row counts and a few rows each way, not the whole tables)."""
    problems = []
    for name, expected in reference.items():
        actual = state[name]
        if actual == expected:
            continue
        if name == "accountability":
            problems.append(f"all-time equations {actual} != uninterrupted {expected}")
            continue
        if actual is None or expected is None:
            problems.append(f"{name}: table {'missing' if actual is None else 'unexpected'}")
            continue
        columns, rows = actual
        expected_columns, expected_rows = expected
        if columns != expected_columns:
            problems.append(f"{name}: columns differ: extra {set(columns) - set(expected_columns)}"
                            f", missing {set(expected_columns) - set(columns)}")
            continue
        have, want = {repr(r) for r in rows}, {repr(r) for r in expected_rows}
        problems.append(
            f"{name}: {len(rows)} rows, uninterrupted run has {len(expected_rows)}; "
            f"{len(have - want)} not in it (e.g. {sorted(have - want)[:2]}), "
            f"{len(want - have)} missing (e.g. {sorted(want - have)[:2]})"
            if have != want else f"{name}: same rows, different multiplicities"
        )
    assert not problems, f"{context}: tables differ from the uninterrupted run:\n- " + \
        "\n- ".join(p[:1500] for p in problems)


def assert_balanced(run: TopicRun, context: str) -> None:
    """Every all-time equation balanced, nothing pending, and all of RAW consumed."""
    raw_rows = sum(batch.num_rows for batch in DATASET[:_injected(run)])
    for equation in run.equations():
        assert equation["balanced"], f"{context}: all-time equation unbalanced: {equation}"
        assert equation["pending"] == 0, f"{context}: rows left pending: {equation}"
    post_raw = run.equations()[0]
    assert post_raw["left"] == raw_rows, (
        f"{context}: post-RAW consumed {post_raw['left']} of the {raw_rows} RAW rows appended")


def _injected(run: TopicRun) -> int:
    raw = run.catalog.load_table(TABLES.raw)
    total = int(raw.current_snapshot().summary["total-records"])
    sizes = [batch.num_rows for batch in DATASET]
    for count in range(len(sizes) + 1):
        if sum(sizes[:count]) == total:
            return count
    raise AssertionError(f"RAW holds {total} rows: not a whole number of batches {sizes}")
