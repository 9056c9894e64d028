"""Adversarial checks of issue 13 (one writer per topic and layer), beyond test_one_writer.py.

Each test scripts a race or a fault that the implementation must survive with exact tables.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table, TableProperties

from leanops_dagster.cli import main
from leanops_dagster.constants import InvalidTopicError
from leanops_dagster.iceberg.catalog import ensure_namespace, ensure_table, open_catalog
from leanops_dagster.iceberg.lease import TableLeases, lease_name
from leanops_dagster.iceberg.tables import DRIFT_LOG_PARTITION_SPEC, DRIFT_LOG_SCHEMA
from leanops_dagster.pipeline import curate as curate_module
from leanops_dagster.pipeline import exclusive as exclusive_module
from leanops_dagster.pipeline import increments, layer_run
from leanops_dagster.pipeline import quarantine as quarantine_module
from leanops_dagster.pipeline import standardize as standardize_module
from leanops_dagster.pipeline.curate import curate_topic
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.standardize import standardize_topic
from leanops_dagster.schemas.registry import SchemaRegistry
from leanops_dagster.settings import REPO_ROOT, get_settings
from leanops_dagster.transforms import flatten
from tests.dagster.conftest import append_raw, event, raw_row
from tests.dagster.test_one_writer import (
    BARRIER_TIMEOUT_S,
    Interleaving,
    _append,
    _batch,
    _contents,
    _race,
    _reference,
)
from tests.dagster.test_one_writer import backend as _backend_fixture
from tests.dagster.test_rules import KEY, assert_balanced

backend = _backend_fixture  # SQLite and PostgreSQL, as in test_one_writer


def _schema(tmp_path):
    registry = SchemaRegistry.from_settings(get_settings(home=tmp_path / "schemas-home"))
    registry.deploy("events")
    return registry.load("events")


def test_tables_created_before_the_fix_still_never_rebase_a_stale_commit(
    backend, tmp_path, monkeypatch
):
    """A home whose tables were created before commits failed fast (pyiceberg's default
    ``commit.retry.num-retries`` = 4, which rebuilds a conflicting append on top of the
    winner's snapshot): a writer that lost the race must still be a no-op."""
    catalog = open_catalog(backend)
    schema = _schema(tmp_path)
    tables = TopicTables("events", backend.namespace_prefix)

    def standardize(cat):
        return standardize_topic(cat, tables, schema, lease_ttl_s=None)

    batches = [_batch("a"), _batch("b")]
    _append(catalog, tables, batches[0])
    standardize(catalog)
    curate_topic(catalog, tables, schema, pii_key=KEY, lease_ttl_s=None)
    for identifier in (tables.standardized, tables.parse_errors):  # as an older version made
        with catalog.load_table(identifier).transaction() as tx:
            tx.remove_properties(TableProperties.COMMIT_NUM_RETRIES)
    _append(catalog, tables, batches[1])

    _, follower = Interleaving(monkeypatch, standardize_module, "read").run(
        backend, standardize
    )
    monkeypatch.undo()
    curate_topic(catalog, tables, schema, pii_key=KEY, lease_ttl_s=None)
    assert (follower.rows_written, follower.parse_errors) == (0, 0)
    assert _contents(catalog, tables) == _reference(tmp_path, batches)
    assert_balanced(catalog, tables)


def test_leases_of_many_topics_taken_at_the_same_moment_all_succeed(backend):
    """A CAS conflict with another topic's lease is retried, never busy nor an error."""
    catalog = open_catalog(backend)
    namespace = backend.standardized_namespace
    ensure_namespace(catalog, namespace)
    TableLeases(catalog, namespace).release(  # the lease table exists: only the CAS races
        TableLeases(catalog, namespace).acquire("warmup.standardized", "w")
    )
    topics = [f"t{i}" for i in range(12)]
    barrier = threading.Barrier(len(topics))
    holders = iter(topics)
    lock = threading.Lock()

    def take(cat):
        with lock:
            topic = next(holders)
        leases = TableLeases(cat, namespace)
        leases._table()  # loaded before the barrier: every contender reads the same state
        barrier.wait(BARRIER_TIMEOUT_S)
        return leases.acquire(lease_name(topic, "standardized"), topic)

    won = _race(backend, take, writers=len(topics))
    assert sorted(lease.holder for lease in won) == sorted(topics)
    leases = TableLeases(catalog, namespace)
    assert all(leases.current(lease_name(t, "standardized")).holder == t for t in topics)


def test_lease_table_files_on_disk_stay_bounded(settings):
    """Every run commits at least two lease snapshots per layer (take, release): the files
    they leave in the lease table's folder must not grow with the number of runs."""
    catalog = open_catalog(settings)
    namespace = settings.standardized_namespace
    ensure_namespace(catalog, namespace)
    leases = TableLeases(catalog, namespace)
    name = lease_name("events", "standardized")

    def files() -> int:
        location = leases._table().location().removeprefix("file://")
        return sum(1 for p in Path(location).rglob("*") if p.is_file())

    for i in range(50):
        leases.release(leases.acquire(name, f"h{i}"))
    after_50 = files()
    for i in range(100):
        leases.release(leases.acquire(name, f"h{i}"))
    assert files() <= after_50 + 10, (after_50, files())


def test_a_quarantine_record_that_loses_to_another_topic_is_retried(
    catalog, registry, monkeypatch
):
    """The safety net's own append to the shared ``parse_errors`` table conflicts with another
    topic's commit there: the run retries it (the record is idempotent), it does not fail."""
    registry.deploy("events")
    schema = registry.load("events")
    tables = TopicTables("events")
    original_flatten = flatten.flatten_raw

    def poisoned(raw, *args, **kwargs):
        if any("POISON" in p for p in raw.column("json_payload").to_pylist()):
            raise ValueError("injected: a payload no rule foresaw")
        return original_flatten(raw, *args, **kwargs)

    monkeypatch.setattr(flatten, "flatten_raw", poisoned)
    good = [raw_row(f"m{i}", event(f"k{i}"), minutes=i) for i in range(5)]
    append_raw(catalog, [*good, raw_row("p1", event("kp1", verb="POISON"))])
    other_wrote = []
    original_route = quarantine_module.parse_errors_route

    def route_with_a_concurrent_commit(*args, **kwargs):
        route = original_route(*args, **kwargs)
        build = route.build

        def build_and_race(quarantined):
            rows = build(quarantined)
            if not other_wrote:
                other_wrote.append(True)
                errors = open_catalog(get_settings()).load_table(tables.parse_errors)
                errors.append(  # another topic's error row, committed by another process
                    pa.Table.from_pylist([], schema=errors.schema().as_arrow()),
                    snapshot_properties={"leanops.watermark.parse_errors.orders.x": "1"},
                )
            return rows

        return dataclasses.replace(route, build=build_and_race)

    monkeypatch.setattr(quarantine_module, "parse_errors_route", route_with_a_concurrent_commit)
    result = standardize_topic(catalog, tables, schema)
    assert other_wrote
    assert (result.rows_written, result.quarantined) == (5, 1)
    assert result.balanced
    held = catalog.load_table(tables.parse_errors).scan().to_arrow()
    assert held.column("message_id").to_pylist().count("p1") == 1


def test_a_holder_that_stalls_past_its_ttl_while_another_takes_over_stays_exact(
    backend, tmp_path, monkeypatch
):
    """Run A takes the lease and reads; it then stalls (its heartbeat too) past the TTL. Run B
    takes the expired lease and finishes the increment. A wakes up and commits from what it
    read: every commit must be refused and re-read, so the tables hold each row once."""
    catalog = open_catalog(backend)
    schema = _schema(tmp_path)
    tables = TopicTables("events", backend.namespace_prefix)
    ttl = 0.6
    batches = [_batch("a"), _batch("b")]
    _append(catalog, tables, batches[0])
    standardize_topic(catalog, tables, schema, lease_ttl_s=None)
    _append(catalog, tables, batches[1])

    a_has_read, b_done = threading.Event(), threading.Event()
    holder_ids = iter(["A", "B"])
    monkeypatch.setattr(exclusive_module, "new_holder_id", lambda: next(holder_ids))
    read = layer_run.read_unconsumed
    stalled = threading.local()

    def read_unconsumed(*args, **kwargs):
        unconsumed = read(*args, **kwargs)
        if getattr(stalled, "role", None) == "A" and not a_has_read.is_set():
            a_has_read.set()
            assert b_done.wait(BARRIER_TIMEOUT_S)  # the stall
        return unconsumed

    renew = TableLeases.renew

    def stalled_renew(self, lease, ttl_s=600.0):
        if lease.holder == "A" and not b_done.is_set():
            b_done.wait(BARRIER_TIMEOUT_S)  # the whole process stalls, heartbeat included
        return renew(self, lease, ttl_s)

    monkeypatch.setattr(layer_run, "read_unconsumed", read_unconsumed)
    monkeypatch.setattr(TableLeases, "renew", stalled_renew)
    results, errors = {}, []

    def run(role):
        stalled.role = role
        try:
            if role == "B":
                assert a_has_read.wait(BARRIER_TIMEOUT_S)
                time.sleep(ttl + 0.3)  # A's lease has expired
            results[role] = standardize_topic(
                open_catalog(backend), tables, schema, lease_ttl_s=ttl
            )
        except BaseException as exc:
            errors.append(exc)
        finally:
            if role == "B":
                b_done.set()

    threads = [threading.Thread(target=run, args=(r,)) for r in ("A", "B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    monkeypatch.undo()
    assert not errors, errors
    assert results["B"].busy is None and results["B"].rows_written == len(batches[1]) - 2
    assert (results["A"].rows_written, results["A"].parse_errors) == (0, 0)
    curate_topic(catalog, tables, schema, pii_key=KEY, lease_ttl_s=None)
    assert _contents(catalog, tables) == _reference(tmp_path, batches)
    assert_balanced(catalog, tables)


# --- kills at each commit boundary -----------------------------------------------------------
KILL_POINTS = [
    ("standardized", "record_error_rows"),
    ("standardized", "append_rows"),
    ("curated", "record_error_rows"),
    ("curated", "merge_lifo"),
]


def _layer_run(layer, catalog, tables, schema, ttl):
    if layer == "standardized":
        return standardize_topic(catalog, tables, schema, lease_ttl_s=ttl)
    return curate_topic(catalog, tables, schema, pii_key=KEY, lease_ttl_s=ttl)


def _run_then_die_after(settings, layer, point, tables, schema, ttl) -> None:
    """In a child process: the layer run, killed (no cleanup, no release) right after
    ``point`` returned."""
    module = standardize_module if layer == "standardized" else curate_module
    original = getattr(module, point)

    def then_die(*args, **kwargs):
        out = original(*args, **kwargs)
        os._exit(9)
        return out

    setattr(module, point, then_die)
    _layer_run(layer, open_catalog(settings), tables, schema, ttl)
    os._exit(0)  # the kill point was never reached


@pytest.mark.parametrize(("layer", "point"), KILL_POINTS)
def test_a_run_killed_at_a_commit_boundary_blocks_until_its_lease_expires_then_is_exact(
    layer, point, backend, tmp_path
):
    catalog = open_catalog(backend)
    schema = _schema(tmp_path)
    tables = TopicTables("events", backend.namespace_prefix)
    ttl = 1.5
    batches = [_batch("a"), _batch("b")]
    _append(catalog, tables, batches[0])
    _layer_run("standardized", catalog, tables, schema, None)
    _layer_run("curated", catalog, tables, schema, None)
    _append(catalog, tables, batches[1])
    if layer == "curated":
        _layer_run("standardized", catalog, tables, schema, None)

    child = multiprocessing.get_context("fork").Process(
        target=_run_then_die_after, args=(backend, layer, point, tables, schema, ttl)
    )
    child.start()
    child.join(120)
    assert child.exitcode == 9  # killed where scripted

    killed_at = time.monotonic()
    busy = _layer_run(layer, open_catalog(backend), tables, schema, ttl)
    if time.monotonic() - killed_at < ttl:  # the dead holder's lease is still live
        assert busy.busy is not None and "in progress" in busy.busy
    time.sleep(ttl + 0.2)
    after = _layer_run(layer, open_catalog(backend), tables, schema, ttl)
    assert after.busy is None and after.balanced
    _layer_run("standardized", catalog, tables, schema, None)
    _layer_run("curated", catalog, tables, schema, None)
    assert _contents(catalog, tables) == _reference(tmp_path, batches)
    assert_balanced(catalog, tables)


# --- leanops report --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["parse_errors", "errors", "drift_log", "dlq_errors"])
def test_a_topic_named_like_a_shared_table_is_refused(name, settings, catalog, registry):
    """A name of a table every topic shares (``standardized.parse_errors``, ``curated.errors``,
    ``curated.drift_log``, ``raw.dlq_errors``) is no topic: its layer table would be the shared
    table, and its report would count the shared table's rows as its own."""
    registry.deploy("events")
    schema = registry.load("events")
    tables = TopicTables("events")
    append_raw(catalog, _batch("a"))
    standardize_topic(catalog, tables, schema)
    curate_topic(catalog, tables, schema, pii_key=KEY)
    ensure_table(catalog, tables.drift_log, DRIFT_LOG_SCHEMA, DRIFT_LOG_PARTITION_SPEC)
    with pytest.raises(InvalidTopicError, match="reserved"):
        TopicTables(name)
    for command in (["report", "--topic", name], ["run", "--topic", name]):
        refused = CliRunner().invoke(main, command)
        assert refused.exit_code == 2, refused.output
        assert "names a table all topics share" in refused.output


# --- fresh PostgreSQL catalog and fresh home -------------------------------------------------
@pytest.fixture
def fresh_postgres_database():
    """A PostgreSQL database of its own (no catalog tables yet); dropped afterwards."""
    import sqlalchemy

    server = "postgresql+psycopg2://postgres@127.0.0.1:5432"
    try:
        admin = sqlalchemy.create_engine(f"{server}/test", isolation_level="AUTOCOMMIT")
        name = f"review_{uuid.uuid4().hex[:10]}"
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    except Exception as exc:  # not reachable, or no right to create a database
        pytest.skip(f"no fresh PostgreSQL database: {exc}")
    yield f"{server}/{name}"
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


def test_catalogs_opened_together_on_a_fresh_postgres_database_all_open(
    fresh_postgres_database, tmp_path
):
    """Every process opening a new SQL catalog creates its tables: the losers must retry."""
    settings = get_settings(home=tmp_path / "home", catalog_uri=fresh_postgres_database)
    barrier = threading.Barrier(6)
    opened, errors = [], []

    def open_one():
        try:
            barrier.wait(BARRIER_TIMEOUT_S)
            catalog = open_catalog(settings)
            ensure_namespace(catalog, settings.standardized_namespace)
            opened.append(catalog.namespace_exists(settings.standardized_namespace))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert opened == [True] * 6


def test_concurrent_first_runs_on_a_fresh_home_and_postgres_catalog(
    fresh_postgres_database, tmp_path
):
    """N `leanops run` on a fresh home (no Dagster instance) whose catalog is PostgreSQL and
    has no Standardized/Curated tables: every run exits 0, every row is stored once."""
    settings = get_settings(home=tmp_path / "home", catalog_uri=fresh_postgres_database)
    registry = SchemaRegistry.from_settings(settings)
    registry.deploy("events")
    catalog = open_catalog(settings)
    rows = [raw_row(f"m{i}", event(f"k{i % 150}", minutes=i % 40)) for i in range(200)]
    rows.append(raw_row("bad", "{oops"))
    append_raw(catalog, rows)
    env = {**os.environ, "LEANOPS_HOME": str(settings.home),
           "LEANOPS_CATALOG_URI": fresh_postgres_database}
    leanops = [str(Path(sys.executable).with_name("leanops"))]
    runs = [
        subprocess.Popen([*leanops, "run", "--topic", "events"], env=env, cwd=REPO_ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(4)
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0] * 4, "\n".join(outputs)
    tables = TopicTables("events")
    standardized = catalog.load_table(tables.standardized).scan().to_arrow()
    assert sorted(standardized["message_id"].to_pylist()) == sorted(f"m{i}" for i in range(200))
    curated = catalog.load_table(tables.curated).scan().to_arrow()
    assert sorted(curated["idempotency_key"].to_pylist()) == sorted(f"k{i}" for i in range(150))
    assert catalog.load_table(tables.parse_errors).scan().to_arrow()[
        "message_id"].to_pylist() == ["bad"]
    assert_balanced(catalog, tables)


# --- many topics at once on the shared tables ------------------------------------------------
def _drifting_batch(topic: str) -> list[dict]:
    """Valid events (some with a column the schema does not know: drift), a network
    duplicate, a bad JSON body and a CDE failure, all of ``topic``."""
    rows = [raw_row(f"{topic}-{i}", event(f"{topic}k{i}", minutes=i,
                                          extra={"surprise": i} if i % 2 else None),
                    minutes=i, topic=topic) for i in range(12)]
    rows.append(raw_row(f"{topic}-0", event(f"{topic}k0"), ingested=5, topic=topic))
    rows.append(raw_row(f"{topic}-bad", "{not json", topic=topic))
    rows.append(raw_row(f"{topic}-cde", event(f"{topic}kc", user=""), topic=topic))
    return rows


def _shared_contents(catalog, topics: list[str]) -> dict:
    volatile = ("recorded_ts", "raw_snapshot_id", "standardized_snapshot_id")
    out = {}
    for identifier in (TopicTables("x").parse_errors, TopicTables("x").curated_errors,
                       TopicTables("x").drift_log,
                       *(TopicTables(t).curated for t in topics)):
        rows = catalog.load_table(identifier).scan().to_arrow()
        rows = rows.drop_columns([c for c in volatile if c in rows.column_names])
        out[identifier] = sorted(map(str, rows.to_pylist()))
    return out


def test_many_topics_racing_on_the_shared_error_and_drift_tables_all_finish_exact(
    settings, catalog, registry, tmp_path
):
    """Six topics run both layers at the same moment: every run commits to the shared
    ``parse_errors``, ``curated.errors`` and ``drift_log`` (and the lease tables), so most
    commits conflict with another topic's. Every run must retry to success, exactly once."""
    registry.deploy("events")
    schema = registry.load("events")
    topics = [f"topic{i}" for i in range(6)]
    for topic in topics:
        append_raw(catalog, _drifting_batch(topic), topic=topic)
    barrier = threading.Barrier(len(topics))
    results, errors = [], []

    def both_layers(topic):
        try:
            cat = open_catalog(settings)
            tables = TopicTables(topic)
            barrier.wait(BARRIER_TIMEOUT_S)
            std = standardize_topic(cat, tables, schema)
            cur = curate_topic(cat, tables, schema, pii_key=KEY)
            results.append((std, cur))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=both_layers, args=(t,)) for t in topics]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, "".join(traceback.format_exception(errors[0]))
    assert all(s.busy is None and c.busy is None and s.balanced and c.balanced
               for s, c in results)

    reference = open_catalog(get_settings(home=tmp_path / "reference"))
    for topic in topics:
        append_raw(reference, _drifting_batch(topic), topic=topic)
        standardize_topic(reference, TopicTables(topic), schema, lease_ttl_s=None)
        curate_topic(reference, TopicTables(topic), schema, pii_key=KEY, lease_ttl_s=None)
    assert _shared_contents(catalog, topics) == _shared_contents(reference, topics)
    for topic in topics:
        assert_balanced(catalog, TopicTables(topic))


def test_an_error_table_commit_outrun_by_other_topics_retries_on_its_own(
    settings, catalog, registry, monkeypatch
):
    """Seven other topics commit to the shared ``parse_errors`` table, one just before each
    of this run's attempts to append there (more than the step's retry attempts). Those
    conflicts say nothing about this topic's increment: the append retries against the fresh
    table (its own watermark unchanged) instead of rerunning, and finally failing, the step."""
    registry.deploy("events")
    schema = registry.load("events")
    tables = TopicTables("events")
    append_raw(catalog, _batch("a"))
    interlopers = iter(range(7))
    original_append = increments.append_with_state  # the error table's append (with state)
    inside = threading.local()
    flattened = []
    original_flatten = flatten.flatten_raw
    monkeypatch.setattr(flatten, "flatten_raw",
                        lambda *a, **k: flattened.append(1) or original_flatten(*a, **k))

    def append_after_another_topic(self, df, *args, **kwargs):
        if self.name() == tables.parse_errors and not getattr(inside, "yes", False):
            i = next(interlopers, None)
            if i is not None:
                inside.yes = True
                try:
                    other = open_catalog(settings).load_table(tables.parse_errors)
                    other.append(other.schema().as_arrow().empty_table(), snapshot_properties={
                        f"leanops.watermark.parse_errors.other{i}.raw_snapshot_id": "1"})
                finally:
                    inside.yes = False
        return original_append(self, df, *args, **kwargs)

    monkeypatch.setattr(increments, "append_with_state", append_after_another_topic)
    result = standardize_topic(catalog, tables, schema)
    monkeypatch.undo()
    assert next(interlopers, None) is None  # all seven got in first
    assert result.balanced and result.rows_written == len(_batch("a")) - 2
    assert len(flattened) == 1  # the increment was read and transformed once
    held = catalog.load_table(tables.parse_errors).scan().to_arrow()
    assert held.column("message_id").to_pylist() == ["abad"]
    assert_balanced(catalog, tables)


# --- the safety net and commit conflicts -----------------------------------------------------
@pytest.mark.parametrize("conflicts", [1, 99])
def test_commit_conflicts_during_a_quarantine_rerun_never_quarantine_rows(
    conflicts, catalog, registry, monkeypatch
):
    """Round 1 of the safety net quarantines the poison row; the rerun's Standardized commit
    then conflicts (once: retried; always: the run fails). A ``CommitFailedException`` is
    not a row fault: no other row is ever quarantined."""
    registry.deploy("events")
    schema = registry.load("events")
    tables = TopicTables("events")
    original_flatten = flatten.flatten_raw

    def poisoned(raw, *args, **kwargs):
        if any("POISON" in p for p in raw.column("json_payload").to_pylist()):
            raise ValueError("injected: a payload no rule foresaw")
        return original_flatten(raw, *args, **kwargs)

    monkeypatch.setattr(flatten, "flatten_raw", poisoned)
    good = [raw_row(f"m{i}", event(f"k{i}"), minutes=i) for i in range(6)]
    append_raw(catalog, [*good, raw_row("p1", event("kp1", verb="POISON"))])
    original_append = standardize_module.append_rows
    failed = []

    def conflicting_append(*args, **kwargs):
        if len(failed) < conflicts:
            failed.append(1)
            raise CommitFailedException("main moved (another writer)")
        return original_append(*args, **kwargs)

    monkeypatch.setattr(standardize_module, "append_rows", conflicting_append)
    monkeypatch.setattr("leanops_dagster.iceberg.commit.time.sleep", lambda s: None)
    if conflicts == 1:
        result = standardize_topic(catalog, tables, schema)
        assert (result.rows_written, result.quarantined) == (6, 1) and result.balanced
    else:
        with pytest.raises(CommitFailedException):
            standardize_topic(catalog, tables, schema)
    held = catalog.load_table(tables.parse_errors).scan().to_arrow().to_pylist()
    assert [(r["message_id"], r["error_reason"]) for r in held] == [
        ("p1", "internal:ValueError")]


def test_a_drift_log_commit_outrun_by_other_topics_retries_on_its_own(
    settings, catalog, registry, monkeypatch
):
    """As for the error tables: seven other topics' drift records land on the shared drift
    log, one just before each of this run's appends there; the run still logs its drift once
    and finishes, without rerunning its step for each of them."""
    registry.deploy("events")
    schema = registry.load("events")
    tables = TopicTables("events")
    append_raw(catalog, _drifting_batch("events"))
    standardize_topic(catalog, tables, schema)
    interlopers = iter(range(7))
    original_append = Table.append
    inside = threading.local()
    validated = []
    original_validate = curate_module.validate.validate_and_cast
    monkeypatch.setattr(curate_module.validate, "validate_and_cast",
                        lambda *a, **k: validated.append(1) or original_validate(*a, **k))

    def append_after_another_topic(self, df, *args, **kwargs):
        if self.name() == tables.drift_log and not getattr(inside, "yes", False):
            i = next(interlopers, None)
            if i is not None:
                inside.yes = True
                try:
                    other = open_catalog(settings).load_table(tables.drift_log)
                    row = df.slice(0, 1).to_pylist()[0] | {"topic_name": f"other{i}"}
                    other.append(pa.Table.from_pylist([row], schema=df.schema))
                finally:
                    inside.yes = False
        return original_append(self, df, *args, **kwargs)

    monkeypatch.setattr(Table, "append", append_after_another_topic)
    result = curate_topic(catalog, tables, schema, pii_key=KEY)
    monkeypatch.undo()
    assert next(interlopers, None) is None  # all seven got in first
    assert result.balanced and result.drift_columns
    assert len(validated) == 1  # the increment was read and validated once
    logged = catalog.load_table(tables.drift_log).scan().to_arrow().to_pylist()
    mine = [r["column_name"] for r in logged if r["topic_name"] == "events"]
    assert sorted(mine) == sorted(set(mine)) and mine
    assert_balanced(catalog, tables)


def test_a_lease_outrun_by_many_other_topics_leases_is_still_taken(settings, monkeypatch):
    """Thirty topics started together (a backfill over every topic) all take their lease in
    the one register of their zone: a contender can lose more than twenty CAS rounds in a
    row to other topics' leases. Each loss is a retry, never a failed run nor a busy one."""
    catalog = open_catalog(settings)
    namespace = settings.standardized_namespace
    ensure_namespace(catalog, namespace)
    leases = TableLeases(catalog, namespace)
    leases.release(leases.acquire("warmup.standardized", "w"))
    interlopers = iter(range(29))
    original_append = Table.append
    inside = threading.local()

    def append_after_another_topic(self, df, *args, **kwargs):
        if self.name()[1] == "_run_leases" and not getattr(inside, "yes", False):
            i = next(interlopers, None)
            if i is not None:
                inside.yes = True
                try:
                    TableLeases(open_catalog(settings), namespace).acquire(
                        lease_name(f"other{i}", "standardized"), f"other{i}")
                finally:
                    inside.yes = False
        return original_append(self, df, *args, **kwargs)

    monkeypatch.setattr(Table, "append", append_after_another_topic)
    monkeypatch.setattr("leanops_dagster.iceberg.lease.time.sleep", lambda s: None)
    mine = leases.acquire(lease_name("events", "standardized"), "me")
    monkeypatch.undo()
    assert next(interlopers, None) is None  # all 29 got in first
    assert mine.holder == "me"
    assert leases.current(lease_name("events", "standardized")).holder == "me"
    assert leases.current(lease_name("other28", "standardized")).holder == "other28"
