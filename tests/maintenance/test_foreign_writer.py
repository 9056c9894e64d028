"""Issue 18: the platform stays exact while a real foreign writer maintains its tables.

Iceberg's own procedures (``foreign.ForeignWriter``, Spark on the session the tests share) run
against every table of the ``events`` topic at the moments a shared lakehouse runs them, on
both engines, with the hostile three-batch dataset of ``scenario`` and a run after each batch.
Each scenario ends with the tables and figures of the uninterrupted run of the same dataset (the
``uninterrupted`` twin: no maintenance, on the Arrow engine, the reference whatever engine the
scenario runs) and every per-run and all-time equation balanced:

1. compaction + expiry keeping one snapshot, of every table, after each run;
2. the same while data waits unconsumed in RAW (batches 2 and 3, before their runs);
3. a compaction committed between a run's read and its commit (the run must re-read);
4. manifests rewritten (and the default-argument expiry, which honours ``history.expire.*``);
5. orphan-file clean-up;
6. a second reader (Spark SQL) agrees with pyiceberg on every table after the maintenance;
7. a foreign ``replace`` alone changes no watermark and no running total;
8. the unprovable case (the consumer's tag removed, RAW compacted and expired right after new
   appends): the run stops with ``HistoryLost`` naming ``leanops recover --topic events``, and
   the recovery ends with the uninterrupted run's tables.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyiceberg.table.snapshots import ancestors_of
from pyiceberg.types import (
    IntegerType,
    LongType,
    StringType,
    TimestampType,
    TimestamptzType,
)

from leanops_dagster.iceberg import watermarks
from leanops_dagster.pipeline.curate import curated_layer
from leanops_dagster.pipeline.layer_run import Layer
from leanops_dagster.pipeline.standardize import standardized_layer
from tests.maintenance.foreign import ForeignWriter, maintain_topic, topic_tables
from tests.maintenance.scenario import (
    BATCHES,
    TABLES,
    TOPIC,
    TopicRun,
    assert_balanced,
    assert_same_state,
)

ENGINES = pytest.mark.parametrize("engine", ["arrow", "spark"])
#: a Spark scenario is a dozen engine runs and procedures: on a busy 2-core machine it can pass
#: the suite's 900 s
pytestmark = pytest.mark.timeout(2400)


def _finish(run: TopicRun, uninterrupted, context: str, *, ignore: tuple[str, ...] = ()):
    """The scenario's end: the tables, the equations and each run's figures (but ``ignore``)
    are the uninterrupted run's."""
    twin_figures, twin_state = uninterrupted
    assert_same_state(run.state(), twin_state, context)
    assert_balanced(run, context)

    def kept(figures: tuple[dict, dict]) -> tuple[dict, ...]:
        return tuple({k: v for k, v in layer.items() if k not in ignore} for layer in figures)

    for number, (got, want) in enumerate(zip(run.figures, twin_figures, strict=True), 1):
        got, want = kept(got), kept(want)
        assert got == want, (f"{context}: run {number}'s figures (Standardized, Curated) "
                             f"differ from the uninterrupted run's:\n{got}\n{want}")


def _no_lost_history(context: str) -> Callable[[], contextlib.AbstractContextManager]:
    """A run that must not stop: when it raises ``HistoryLost`` the test says so plainly (the
    history it needed was protected, or the increment was provable)."""

    @contextlib.contextmanager
    def guard() -> Iterator[None]:
        lost = getattr(watermarks, "HistoryLost", None)
        try:
            yield
        except Exception as error:
            if lost is not None and isinstance(error, lost):
                pytest.fail(f"{context}: the run stopped with HistoryLost although nothing it "
                            f"needed was removed: {error}")
            raise

    return guard


# --- 1 ------------------------------------------------------------------------------------------
@ENGINES
def test_compaction_and_expiry_of_every_table_after_each_run(engine, maint_settings, foreign,
                                                             uninterrupted):
    run = TopicRun(maint_settings, engine)
    guard = _no_lost_history("maintenance after each run")
    for number in range(BATCHES):
        run.inject(number)
        with guard():
            run.run()
        done = maintain_topic(foreign, TABLES, compact=True, expire="keep_newest")
        assert done.compacted[TABLES.raw]["rewritten_data_files_count"] >= 1  # it did run
    _finish(run, uninterrupted, f"{engine}: compaction + expiry (keep 1) after each run")


# --- 2 ------------------------------------------------------------------------------------------
@ENGINES
def test_compaction_and_expiry_while_data_waits_in_raw(engine, maint_settings, foreign,
                                                       uninterrupted):
    """Batches 2 and 3 are appended (two appends each), then every table is compacted and
    expired to its newest snapshot before their runs: RAW's unconsumed appends exist only in a
    ``replace`` snapshot, their own snapshots are gone; the consumer's tag keeps its watermark
    snapshot."""
    run = TopicRun(maint_settings, engine)
    guard = _no_lost_history("maintenance while data waits in RAW")
    for number in range(BATCHES):
        appended = run.inject(number, appends=2)
        if number in (1, 2):
            maintain_topic(foreign, TABLES, compact=True, expire="keep_newest")
            raw = foreign.catalog.load_table(TABLES.raw)
            assert raw.snapshot_by_id(appended[0]) is None, "the maintenance expired nothing"
        with guard():
            run.run()
    _finish(run, uninterrupted, f"{engine}: compaction + expiry while data waits in RAW")


# --- 3 ------------------------------------------------------------------------------------------
_RUN_LAYER_MODULES = (
    "leanops_dagster.pipeline.standardize",
    "leanops_dagster.pipeline.curate",
    "leanops_dagster.engines.spark.standardize",
    "leanops_dagster.engines.spark.curate",
)


@contextlib.contextmanager
def barrier_before_commit(
    monkeypatch: pytest.MonkeyPatch, action: Callable[[Layer], None]
) -> Iterator[collections.Counter]:
    """Every layer run's body gets a barrier in front of its commit step
    (``LayerBody.commit``, step 5 of ``layer_run.run_layer``): the first time each layer
    reaches it, ``action(layer)`` runs there, between the run's read and its commit. Yields
    the number of times each layer (zone) reached its commit step."""
    import importlib

    reached: collections.Counter = collections.Counter()
    fired: set[str] = set()

    def wrap(original):
        def run_layer(catalog, layer, body, **kwargs):
            class Barrier:
                def __getattr__(self, name):
                    return getattr(body, name)

                def commit(self, read, work, result):
                    reached[layer.zone] += 1
                    if layer.zone not in fired:
                        fired.add(layer.zone)
                        action(layer)
                    return body.commit(read, work, result)

            return original(catalog, layer, Barrier(), **kwargs)

        return run_layer

    with monkeypatch.context() as patch:
        for name in _RUN_LAYER_MODULES:
            module = importlib.import_module(name)
            patch.setattr(module, "run_layer", wrap(module.run_layer))
        yield reached


@ENGINES
def test_compaction_between_a_runs_read_and_its_commit(engine, maint_settings, foreign,
                                                       uninterrupted, monkeypatch):
    """In runs 2 and 3, each layer's run reaches its commit after a foreign compaction of
    every table of the topic (its own table included) committed since its read: the commit
    must fail as a conflict and the run re-read and commit again, on top of the compaction."""
    run = TopicRun(maint_settings, engine)
    guard = _no_lost_history("compaction between read and commit")
    replaces: dict[str, int] = {}

    def compact_everything(layer: Layer) -> None:
        maintain_topic(foreign, TABLES, compact=True, expire=None)
        replaces[layer.zone] = foreign.catalog.load_table(layer.table).current_snapshot(
        ).snapshot_id

    for number in range(BATCHES):
        run.inject(number)
        if number in (1, 2):
            with barrier_before_commit(monkeypatch, compact_everything) as reached, guard():
                run.run()
            for zone, snapshot_id in replaces.items():
                assert reached[zone] >= 2, (
                    f"{engine}, run {number + 1}: the {zone} run reached its commit "
                    f"{reached[zone]} time(s): it committed over a foreign compaction made "
                    "after its read instead of re-reading")
                table = foreign.catalog.load_table(
                    TABLES.standardized if zone == "standardized" else TABLES.curated)
                ancestry = {s.snapshot_id
                            for s in ancestors_of(table.current_snapshot(), table.metadata)}
                assert snapshot_id in ancestry, (
                    f"{zone}: the foreign replace {snapshot_id} is not in the table's history")
            assert set(replaces) == {"standardized", "curated"}, replaces
            replaces.clear()
        else:
            with guard():
                run.run()
    # the columns a run adds are committed before its data (schema evolution), so the attempt
    # that lost the race added them and the one that committed reports none: not a figure of
    # the data, and not what this test is about
    _finish(run, uninterrupted, f"{engine}: compaction between a run's read and its commit",
            ignore=("new_columns",))


# --- 4 ------------------------------------------------------------------------------------------
@ENGINES
def test_manifests_rewritten(engine, maint_settings, foreign, uninterrupted):
    """RAW's manifests rewritten while data waits in it, every table's after each run, and at
    the end the default-argument ``expire_snapshots`` procedure (what an untuned maintenance job
    runs: it honours the tables' ``history.expire.*`` properties)."""
    run = TopicRun(maint_settings, engine)
    for number in range(BATCHES):
        run.inject(number, appends=2)
        waiting = maintain_topic(foreign, TABLES, compact=False, expire=None, manifests=True,
                                 only=[TABLES.raw])
        assert waiting.manifests[TABLES.raw]["rewritten_manifests_count"] >= 2  # it did run
        run.run()
        maintain_topic(foreign, TABLES, compact=False, expire=None, manifests=True)
    maintain_topic(foreign, TABLES, compact=False, expire="default", expire_procedure=True)
    _finish(run, uninterrupted, f"{engine}: manifests rewritten")


# --- 5 ------------------------------------------------------------------------------------------
def _plant_orphans(foreign: ForeignWriter, tag: str) -> dict[tuple, str]:
    """A stray file in each table's data and metadata folders (what a failed foreign write
    leaves behind); returns table -> the data file's name."""
    planted = {}
    for identifier in topic_tables(foreign.catalog, TABLES):
        location = Path(foreign.catalog.load_table(identifier).location()
                        .removeprefix("file://").removeprefix("file:"))
        for folder in ("data", "metadata"):
            (location / folder).mkdir(parents=True, exist_ok=True)
            (location / folder / f"foreign-orphan-{tag}.parquet").write_bytes(b"PAR1 orphan")
        planted[identifier] = f"foreign-orphan-{tag}.parquet"
    return planted


@ENGINES
def test_orphan_file_clean_up(engine, maint_settings, foreign, uninterrupted):
    """Iceberg's orphan-file clean-up (``older_than`` in the future: every file no snapshot
    references) on every table after each run, and on RAW while batch 2 waits there."""
    run = TopicRun(maint_settings, engine)
    removed: list[str] = []
    for number in range(BATCHES):
        run.inject(number)
        if number == 1:  # while it waits in RAW
            maintain_topic(foreign, TABLES, compact=False, expire=None, orphans=True,
                           only=[TABLES.raw])
        run.run()
        planted = _plant_orphans(foreign, str(number))
        done = maintain_topic(foreign, TABLES, compact=False, expire=None, orphans=True)
        for identifier, name in planted.items():
            names = [Path(p).name for p in done.orphans[identifier]]
            assert names.count(name) == 2, (identifier, done.orphans[identifier])
        removed += [p for paths in done.orphans.values() for p in paths
                    if "foreign-orphan" not in p]
    _finish(run, uninterrupted, f"{engine}: orphan-file clean-up")
    print(f"platform files removed as orphans ({len(removed)}):",
          sorted({Path(p).parent.name + "/" + Path(p).name.split("-")[0] for p in removed}))


# --- 6 ------------------------------------------------------------------------------------------
def _spark_expression(name: str, field_type) -> str:
    quoted = "`" + name.replace("`", "``") + "`"
    if isinstance(field_type, TimestamptzType | TimestampType):
        return f"unix_micros({quoted})"
    if isinstance(field_type, StringType | LongType | IntegerType):
        return quoted
    return f"CAST({quoted} AS STRING)"


def _pyiceberg_column(column: pa.ChunkedArray, field_type) -> list:
    if isinstance(field_type, TimestamptzType | TimestampType):
        return pc.cast(column, pa.timestamp("us", tz="UTC") if isinstance(
            field_type, TimestamptzType) else pa.timestamp("us")).cast(pa.int64()).to_pylist()
    if isinstance(field_type, StringType | LongType | IntegerType):
        return column.to_pylist()
    return [None if v is None else str(v) for v in column.to_pylist()]


def _by_spark_and_pyiceberg(foreign: ForeignWriter, identifier) -> tuple[list, list]:
    table = foreign.catalog.load_table(identifier)
    fields = table.schema().fields
    spark_rows = foreign.spark.sql(
        f"SELECT {', '.join(_spark_expression(f.name, f.field_type) for f in fields)} "
        f"FROM {foreign.sql_table(identifier)}").collect()
    arrow = table.scan().to_arrow()
    columns = [_pyiceberg_column(arrow[f.name], f.field_type) for f in fields]
    ours = [tuple(row) for row in zip(*columns, strict=True)] if columns else []
    key = repr
    return sorted((tuple(r) for r in spark_rows), key=key), sorted(ours, key=key)


@ENGINES
def test_a_second_reader_after_foreign_maintenance(engine, maint_settings, foreign):
    """After compaction, manifests and expiry (keep 1) of every table, Spark SQL reads every
    table as pyiceberg does: the same ``count(*)`` and the same rows."""
    run = TopicRun(maint_settings, engine)
    run.inject(0, appends=2)
    run.run()
    maintain_topic(foreign, TABLES, compact=True, expire="keep_newest", manifests=True,
                   expire_procedure=True)
    identifiers = topic_tables(foreign.catalog, TABLES)
    assert len(identifiers) == 6, identifiers
    for identifier in identifiers:
        table = foreign.catalog.load_table(identifier)
        # the newest snapshot and those references hold: the expiry did run
        assert len(table.snapshots()) <= len(table.refs()), (identifier, table.snapshots())
        pyiceberg_count = table.scan().to_arrow().num_rows
        assert foreign.count(identifier) == pyiceberg_count, identifier
        by_spark, by_pyiceberg = _by_spark_and_pyiceberg(foreign, identifier)
        assert len(by_spark) == len(by_pyiceberg) == pyiceberg_count, identifier
        differ = [(a, b) for a, b in zip(by_spark, by_pyiceberg, strict=True) if a != b]
        assert not differ, (identifier, differ[:3])


# --- 7 ------------------------------------------------------------------------------------------
def _kept_state(run: TopicRun) -> dict[str, object]:
    """Every watermark and running total the topic's layers keep, read as the layers read
    them (``watermarks.read_watermark`` / ``read_counter``)."""
    kept: dict[str, object] = {}
    for layer in (standardized_layer(TABLES, run.schema),
                  curated_layer(run.catalog, TABLES, run.schema)):
        table = run.catalog.load_table(layer.table)
        errors = run.catalog.load_table(layer.errors)
        kept[f"{layer.zone} watermark {layer.watermark}"] = watermarks.read_watermark(
            table, layer.watermark)
        kept[f"{layer.zone} errors watermark {layer.errors_watermark}"] = \
            watermarks.read_watermark(errors, layer.errors_watermark)
        for name in layer.totals:
            kept[f"{layer.zone} total {name}"] = watermarks.read_counter(table, name)
    return kept


@ENGINES
def test_a_foreign_replace_alone_changes_no_watermark_or_total(engine, maint_settings, foreign,
                                                               uninterrupted):
    run = TopicRun(maint_settings, engine)
    for number in range(2):
        run.inject(number)
        run.run()
    before = _kept_state(run)
    assert all(v is not None for v in before.values()), before
    assert any(v for k, v in before.items() if " total " in k), before  # totals were counted
    done = maintain_topic(foreign, TABLES, compact=True, expire=None)
    assert len(done.compacted) == 6, done.compacted
    for identifier in done.compacted:
        current = foreign.catalog.load_table(identifier).current_snapshot()
        assert current.summary.operation.value == "replace", (identifier, current.summary)
    after = _kept_state(run)
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not changed, f"{engine}: a foreign replace changed (before, after): {changed}"
    # a run with nothing new: it reads nothing and leaves every total as it was
    std, cur = run.run()
    assert (std.rows_read, cur.rows_read) == (0, 0), (
        f"{engine}: a foreign replace was read as new data: {std}, {cur}")
    totals = {k: v for k, v in _kept_state(run).items() if " total " in k}
    assert totals == {k: v for k, v in before.items() if " total " in k}, totals
    run.figures.pop()  # the no-op run has no twin
    for number in range(2, BATCHES):
        run.inject(number)
        run.run()
    _finish(run, uninterrupted, f"{engine}: a foreign replace alone")


# --- 8 ------------------------------------------------------------------------------------------
def drift_seen(log: tuple[list[str], list[dict]] | None) -> tuple[list[str], list[dict]] | None:
    """A drift log as the set of drifting columns (each logged once per topic)."""
    if log is None:
        return None
    return ["column_name"], [{"column_name": c}
                             for c in sorted({row["column_name"] for row in log[1]})]


@ENGINES
def test_lost_history_stops_the_run_and_recovery_restores_exactness(
    engine, maint_settings, foreign, uninterrupted, monkeypatch
):
    """What cannot be proven: after run 1, batch 2 is appended in two appends; an operator
    drops the consumer's ``leanops*`` tags on RAW, compacts RAW and expires it to its newest
    snapshot (``retain_last => 1, older_than => now``). The Standardized run must stop with
    ``HistoryLost`` naming RAW, the snapshot and ``leanops recover --topic events``; after
    ``leanops recover --topic events`` the tables are the uninterrupted run's."""
    from click.testing import CliRunner

    from leanops_dagster.cli import main

    monkeypatch.setenv("LEANOPS_ENGINE", engine)
    run = TopicRun(maint_settings, engine)
    run.inject(0)
    run.run()
    raw_watermark = watermarks.read_watermark(
        run.catalog.load_table(TABLES.standardized),
        standardized_layer(TABLES, run.schema).watermark)
    run.inject(1, appends=2)
    tags = foreign.leanops_tags(TABLES.raw)
    dropped = foreign.drop_leanops_tags(TABLES.raw)
    maintain_topic(foreign, TABLES, compact=True, expire="keep_newest", only=[TABLES.raw])
    raw = foreign.catalog.load_table(TABLES.raw)
    assert len(raw.snapshots()) == 1 and not foreign.leanops_tags(TABLES.raw), raw.snapshots()

    lost = getattr(watermarks, "HistoryLost", None)
    if lost is None:
        pytest.fail("leanops_dagster.iceberg.watermarks.HistoryLost does not exist: the core "
                    "of issue 18 is not merged (the run below would have to raise it)")
    assert tags, (f"{engine}: the Standardized consumer kept no leanops* tag on RAW at its "
                  f"watermark {raw_watermark} (refs: {raw.refs()})")
    assert dropped
    with pytest.raises(lost) as stopped:
        run.run(check=False)
    message = str(stopped.value)
    assert "\n" not in message.strip(), f"not one line: {message!r}"
    assert "leanops recover --topic events" in message, message
    assert "events_staging" in message, f"the message does not name RAW: {message}"
    assert str(raw_watermark) in message, (
        f"the message does not name the snapshot {raw_watermark}: {message}")
    run.figures.clear()  # after a recovery, the run-by-run figures have no twin

    result = CliRunner().invoke(main, ["recover", "--topic", TOPIC])
    assert result.exit_code == 0, (
        f"`leanops recover --topic {TOPIC}` exited {result.exit_code}: {result.output}"
        f"{result.exception!r}")
    for number in range(2, BATCHES):
        run.inject(number)
        run.run()
    _, twin_state = uninterrupted
    state, twin_state = run.state(), dict(twin_state)
    equations = state.pop("accountability")
    twin_state.pop("accountability")  # the recovery may account for its re-read apart
    # the drift log records each column once, with the rows seen in the increment that first
    # showed it; the recovery re-read the history in other increments (the original appends
    # are gone): compared as the set of drifting columns
    state["drift_log"], twin_state["drift_log"] = (
        drift_seen(state["drift_log"]), drift_seen(twin_state["drift_log"]))
    assert_same_state(state, twin_state, f"{engine}: after `leanops recover`")
    assert_balanced(run, f"{engine}: after `leanops recover` ({equations})")
