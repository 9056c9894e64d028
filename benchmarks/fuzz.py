"""Fuzz run: hostile payloads through ``standardize_topic`` and ``curate_topic`` on real tables.

Issue 8, item 3: no row can stop a topic. ``--payloads`` RAW bodies (default 100,000, half
``events``, half ``sensor_readings``) are drawn from ``tests/safety_net/hostile.py`` with a
seeded ``random.Random``: about a quarter valid bodies (some correcting earlier keys), 5 % not
a JSON object, the rest a valid body with one to three mutations (wrong types for declared
columns, numbers at and beyond every bound, text from every Unicode plane with NUL and lone
surrogates, reserved / colliding / unsafe keys, nesting up to 3,000 levels); about 3 % reuse
an earlier message_id. The fixed corpus ``tests/safety_net/hostile_corpus.jsonl`` goes first.

Each ``--batch`` of one topic is one RAW append followed by one Standardized and one Curated
run on a fresh local SQL catalog (SQLite, in a temporary LEANOPS_HOME unless ``--home``).
After every run the per-run equation must balance, and at the end the equations recomputed
from the tables (``leanops_dagster.pipeline.accountability``) must balance for both topics. An
exception escaping a layer run is counted (class and message printed) and the run continues
with the next batch; the exit status is non-zero if any escaped or any equation did not balance.

Progress lines per batch, then a table per topic and layer; the last line printed is JSON:
``{"payloads": N, "seconds": S, "payloads_per_s": X, "escaped": 0, "balanced": true, ...}``.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import functools
import json
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow as pa
from rich.console import Console
from rich.table import Table as RichTable

from leanops_dagster.iceberg.catalog import ensure_table, open_catalog
from leanops_dagster.iceberg.tables import RAW_STAGING_PARTITION_SPEC, RAW_STAGING_SCHEMA
from leanops_dagster.pipeline import accountability
from leanops_dagster.pipeline.curate import curate_topic
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.standardize import standardize_topic
from leanops_dagster.schemas.registry import SchemaRegistry
from leanops_dagster.settings import get_settings
from tests.safety_net import hostile

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "safety_net" / "hostile_corpus.jsonl"
PII_KEY = b"fuzz-key"
console = Console(stderr=True)

STD_FIELDS = ("rows_read", "rows_written", "parse_errors", "duplicates", "quarantined")
CUR_FIELDS = ("rows_read", "inserted", "updated", "superseded", "cde_error_rows",
              "quarantined")


def say(message: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}")


def corpus_bodies() -> dict[str, list[str]]:
    bodies: dict[str, list[str]] = collections.defaultdict(list)
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line.strip():
            entry = json.loads(line)
            bodies[entry["topic"]].append(entry["body"])
    return bodies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payloads", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000, help="RAW rows per append and run")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--home", type=Path, help="LEANOPS_HOME to use (default: a temp dir)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the net's warnings are counted, not printed

    home = args.home or Path(tempfile.mkdtemp(prefix="leanops-fuzz-"))
    os.environ["LEANOPS_HOME"] = str(home)
    settings = get_settings(home=home)
    catalog = open_catalog(settings)
    registry = SchemaRegistry.from_settings(settings)
    schemas = {}
    for topic in hostile.TOPICS:
        registry.deploy(topic)
        schemas[topic] = registry.load(topic)
        ensure_table(catalog, TopicTables(topic).raw, RAW_STAGING_SCHEMA,
                     RAW_STAGING_PARTITION_SPEC)
    rng = random.Random(args.seed)

    batches: list[tuple[str, list[str]]] = list(corpus_bodies().items())
    corpus_size = sum(len(b) for _, b in batches)
    remaining = max(args.payloads - corpus_size, 0)
    index = 0
    while remaining > 0:
        for topic in hostile.TOPICS:
            n = min(args.batch, remaining)
            if n <= 0:
                break
            batches.append((topic, [hostile.random_body(rng, topic, index + i)
                                    for i in range(n)]))
            index += n
            remaining -= n
    total = sum(len(b) for _, b in batches)
    say(f"{total:,} payloads ({corpus_size} from the corpus) in {len(batches)} batches, "
        f"seed {args.seed}, LEANOPS_HOME {home}")

    std_totals = {t: collections.Counter() for t in hostile.TOPICS}
    cur_totals = {t: collections.Counter() for t in hostile.TOPICS}
    escaped: list[str] = []
    unbalanced: list[str] = []
    started = time.perf_counter()
    offsets = collections.Counter()
    for number, (topic, bodies) in enumerate(batches, 1):
        tables = TopicTables(topic)
        rows = hostile.raw_rows(bodies, topic, rng, start=offsets[topic])
        offsets[topic] += len(bodies)
        catalog.load_table(tables.raw).append(rows)
        t = time.perf_counter()
        now = dt.datetime.now(dt.UTC)
        runs = (
            ("standardized", functools.partial(standardize_topic, now=now), STD_FIELDS,
             std_totals[topic]),
            ("curated", functools.partial(curate_topic, pii_key=PII_KEY, now=now), CUR_FIELDS,
             cur_totals[topic]),
        )
        for layer, run, fields, totals in runs:
            try:
                result = run(catalog, tables, schemas[topic])
            except Exception as exc:  # counted and reported: the whole point of the run
                escaped.append(f"batch {number} {topic} {layer}: {type(exc).__name__}: {exc}")
                say(f"[red]ESCAPED[/red] {escaped[-1][:300]}")
                continue
            totals.update({f: getattr(result, f) for f in fields})
            if not result.balanced:
                unbalanced.append(f"batch {number} {topic} {layer}: {result}")
        say(f"batch {number}/{len(batches)} {topic}: {len(bodies):,} payloads in "
            f"{time.perf_counter() - t:.1f} s; quarantined so far "
            f"{sum(c['quarantined'] for c in std_totals.values())} std / "
            f"{sum(c['quarantined'] for c in cur_totals.values())} cur")
    seconds = time.perf_counter() - started

    equations = []
    for topic in hostile.TOPICS:
        tables = TopicTables(topic)
        for equation in (accountability.post_raw_equation(catalog, tables),
                         accountability.curated_equation(catalog, tables)):
            equations.append((topic, equation))
            if not equation.balanced or equation.pending:
                unbalanced.append(f"{topic} {equation.layer}: {equation.as_dict()}")

    table = RichTable(title=f"Fuzz run: {total:,} hostile payloads, seed {args.seed}")
    for column in ("topic", "layer", "rows read", "written / inserted", "updated",
                   "superseded", "parse / CDE errors", "duplicates", "quarantined",
                   "equation (tables)"):
        table.add_column(column, justify="left" if column in ("topic", "layer") else "right")
    for topic, equation in equations:
        if equation.layer == "post-RAW":
            c = std_totals[topic]
            values = (c["rows_read"], c["rows_written"], "", "", c["parse_errors"],
                      c["duplicates"], c["quarantined"])
        else:
            c = cur_totals[topic]
            values = (c["rows_read"], c["inserted"], c["updated"], c["superseded"],
                      c["cde_error_rows"], "", c["quarantined"])
        table.add_row(topic, equation.layer, *(f"{v:,}" if isinstance(v, int) else v
                                               for v in values),
                      f"{equation.left:,} = {equation.right_total:,}"
                      + ("" if equation.balanced else " [red]NO[/red]"))
    Console(width=200).print(table)
    for line in escaped + unbalanced:
        print(line)
    summary = {
        "payloads": total,
        "seconds": round(seconds, 1),
        "payloads_per_s": round(total / seconds, 1) if seconds else None,
        "escaped": len(escaped),
        "balanced": not unbalanced,
        "std_quarantined": sum(c["quarantined"] for c in std_totals.values()),
        "cur_quarantined": sum(c["quarantined"] for c in cur_totals.values()),
        "parse_errors": sum(c["parse_errors"] for c in std_totals.values()),
        "cde_error_rows": sum(c["cde_error_rows"] for c in cur_totals.values()),
        "seed": args.seed,
    }
    print(json.dumps(summary))
    return 0 if not escaped and not unbalanced else 1


if __name__ == "__main__":
    pa.set_cpu_count(max(1, min(2, os.cpu_count() or 1)))
    sys.exit(main())
