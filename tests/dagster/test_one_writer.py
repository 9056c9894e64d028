"""One writer per topic and layer (brief rule 8), proven without luck.

Barriers make two writers read the same watermark before either commits, at each commit point
of a layer run, on SQLite and on PostgreSQL; the lease tests check the register itself.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid

import pyarrow as pa
import pytest
from pyiceberg.exceptions import CommitFailedException

from leanops_dagster.iceberg.catalog import ensure_namespace, ensure_table, open_catalog
from leanops_dagster.iceberg.lease import LeaseHeld, TableLeases, keep_alive, lease_name
from leanops_dagster.iceberg.tables import (
    PARSE_ERRORS_PARTITION_SPEC,
    PARSE_ERRORS_SCHEMA,
    RAW_STAGING_PARTITION_SPEC,
    RAW_STAGING_SCHEMA,
)
from leanops_dagster.pipeline import curate as curate_module
from leanops_dagster.pipeline import layer_run
from leanops_dagster.pipeline import standardize as standardize_module
from leanops_dagster.pipeline.curate import curate_topic
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.standardize import standardize_topic
from leanops_dagster.schemas.registry import SchemaRegistry
from leanops_dagster.settings import get_settings
from tests.dagster.conftest import append_raw, event, raw_row
from tests.dagster.test_rules import KEY, _postgres_uri, assert_balanced

BARRIER_TIMEOUT_S = 30


def _batch(prefix: str, n: int = 20) -> list[dict]:
    """Valid events, a network duplicate, a bad JSON body and a CDE failure."""
    rows = [raw_row(f"{prefix}{i}", event(f"{prefix}k{i}", minutes=i)) for i in range(n)]
    rows.append(raw_row(f"{prefix}0", event(f"{prefix}k0"), ingested=5))  # duplicate
    rows.append(raw_row(f"{prefix}bad", "{not json"))
    rows.append(raw_row(f"{prefix}cde", event(f"{prefix}kc", user="")))  # not_null user
    return rows


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    """Settings of a fresh catalog on SQLite or on the local PostgreSQL."""
    if request.param == "sqlite":
        return get_settings(home=tmp_path / "home")
    uri = _postgres_uri()
    if uri is None:
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432 (database test)")
    prefix = f"w{uuid.uuid4().hex[:8]}_"
    return get_settings(
        home=tmp_path / "home", catalog_uri=uri, catalog_name=f"pg{prefix}",
        namespace_prefix=prefix,
    )


class Interleaving:
    """Two writers of one layer, scripted: the *follower* reads its watermarks at a chosen
    point of the *leader*'s run (``after``: right after the leader's read, i.e. both read the
    same state before either commits, or right after one of the leader's commits), then waits
    until the leader has finished, then commits from what it read. Every commit the follower
    then makes is against a state it did not read: it must be a no-op or a conflict that
    re-reads, never a second copy of the leader's rows."""

    def __init__(self, monkeypatch, module, after: str) -> None:
        self.roles = threading.local()
        self.follower_may_read = threading.Event()
        self.follower_has_read = threading.Event()
        self.leader_done = threading.Event()
        read = layer_run.read_unconsumed  # the skeleton's read, for either layer

        def read_unconsumed(*args, **kwargs):
            role = getattr(self.roles, "name", None)
            if role == "follower" and not self.follower_has_read.is_set():
                unconsumed = read(*args, **kwargs)
                self.follower_has_read.set()
                assert self.leader_done.wait(BARRIER_TIMEOUT_S)
                return unconsumed
            unconsumed = read(*args, **kwargs)
            if role == "leader" and after == "read":
                self._let_follower_read()
            return unconsumed

        monkeypatch.setattr(layer_run, "read_unconsumed", read_unconsumed)
        if after != "read":
            commit = getattr(module, after)

            def leader_commit(*args, **kwargs):
                out = commit(*args, **kwargs)
                if getattr(self.roles, "name", None) == "leader":
                    self._let_follower_read()
                return out

            monkeypatch.setattr(module, after, leader_commit)

    def _let_follower_read(self) -> None:
        if not self.follower_may_read.is_set():
            self.follower_may_read.set()
            assert self.follower_has_read.wait(BARRIER_TIMEOUT_S)

    def run(self, settings, layer_run) -> list:
        """Leader and follower threads, each with its own catalog; returns both results."""
        results, errors = {}, []

        def writer(role: str) -> None:
            self.roles.name = role
            if role == "follower":  # it loads its tables and reads only now
                assert self.follower_may_read.wait(BARRIER_TIMEOUT_S)
            try:
                results[role] = layer_run(open_catalog(settings))
            except BaseException as exc:  # surfaced by the assertion below
                errors.append(exc)
            finally:
                if role == "leader":
                    self.follower_may_read.set()  # never leave the follower hanging
                    self.leader_done.set()

        threads = [threading.Thread(target=writer, args=(r,)) for r in ("leader", "follower")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, "".join(traceback.format_exception(errors[0]))
        assert self.follower_has_read.is_set()  # the script ran as written
        return [results["leader"], results["follower"]]


def _race(settings, layer_run, writers: int = 2) -> list:
    """Run ``layer_run(catalog)`` in ``writers`` threads, each with its own catalog."""
    results, errors = [], []

    def writer():
        try:
            results.append(layer_run(open_catalog(settings)))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, "".join(traceback.format_exception(errors[0]))
    return results


def _contents(catalog, tables: TopicTables) -> dict:
    out = {}
    for identifier in (tables.standardized, tables.parse_errors, tables.curated,
                       tables.curated_errors):
        rows = catalog.load_table(identifier).scan().to_arrow()
        volatile = ("recorded_ts", "raw_snapshot_id", "standardized_snapshot_id")
        rows = rows.drop_columns([c for c in volatile if c in rows.column_names])
        out[identifier[1]] = sorted(map(str, rows.to_pylist()))
    return out


def _reference(tmp_path, batches: list[list[dict]]) -> dict:
    """The same batches through one writer on a fresh SQLite home."""
    settings = get_settings(home=tmp_path / "reference")
    catalog = open_catalog(settings)
    registry = SchemaRegistry.from_settings(settings)
    registry.deploy("events")
    schema = registry.load("events")
    tables = TopicTables("events")
    for batch in batches:
        append_raw(catalog, batch)
        standardize_topic(catalog, tables, schema, lease_ttl_s=None)
        curate_topic(catalog, tables, schema, pii_key=KEY, lease_ttl_s=None)
    return _contents(catalog, tables)


# Where the follower reads: with the leader (both read the same watermarks, the follower's
# first commit is stale), or between the leader's error-table commit and its layer commit (the
# follower finds the error rows recorded and the layer table absent or older: its layer commit,
# the first commit of a new table on a first run, the append or the MERGE, is the stale one).
FOLLOWER_READS_AFTER = ["read", "record_error_rows"]


@pytest.mark.parametrize("history", ["first_run", "tables_exist"])
@pytest.mark.parametrize("after", FOLLOWER_READS_AFTER)
@pytest.mark.parametrize("layer", ["standardized", "curated"])
def test_a_writer_that_lost_the_race_is_a_no_op(
    layer, after, history, backend, tmp_path, monkeypatch
):
    batches = [_batch("a"), _batch("b")] if history == "tables_exist" else [_batch("a")]
    catalog = open_catalog(backend)
    registry = SchemaRegistry.from_settings(get_settings(home=tmp_path / "schemas-home"))
    registry.deploy("events")
    schema = registry.load("events")
    tables = TopicTables("events", backend.namespace_prefix)

    def standardize(cat):
        return standardize_topic(cat, tables, schema, lease_ttl_s=None)

    def curate(cat):
        return curate_topic(cat, tables, schema, pii_key=KEY, lease_ttl_s=None)

    for batch in batches[:-1]:
        _append(catalog, tables, batch)
        standardize(catalog)
        curate(catalog)
    _append(catalog, tables, batches[-1])

    if layer == "standardized":
        leader, follower = Interleaving(monkeypatch, standardize_module, after).run(
            backend, standardize
        )
        monkeypatch.undo()
        curate(catalog)
        assert leader.rows_written == len(batches[-1]) - 2  # not the duplicate nor the bad body
        assert (follower.rows_written, follower.parse_errors) == (0, 0)
    else:
        standardize(catalog)
        leader, follower = Interleaving(monkeypatch, curate_module, after).run(backend, curate)
        monkeypatch.undo()
        assert leader.inserted == len(batches[-1]) - 3  # nor the CDE failure
        assert (follower.inserted, follower.updated, follower.superseded) == (0, 0, 0)
    assert follower.balanced and follower.busy is None

    assert _contents(catalog, tables) == _reference(tmp_path, batches)
    assert_balanced(catalog, tables)


def _append(catalog, tables: TopicTables, rows: list[dict]) -> None:
    raw = ensure_table(catalog, tables.raw, RAW_STAGING_SCHEMA, RAW_STAGING_PARTITION_SPEC)
    raw.append(pa.Table.from_pylist(rows, schema=RAW_STAGING_SCHEMA.as_arrow()))


def test_creation_races_on_namespaces_and_tables_are_idempotent(backend, monkeypatch):
    """Both writers try to create the same namespace and table at the same moment."""
    namespace = f"{backend.namespace_prefix}race_ns"
    barrier = threading.Barrier(2)
    tables_seen = []

    def create_both(catalog):
        originals = catalog.create_namespace, catalog.create_table, catalog.namespace_exists
        asked: list[object] = []

        def namespace_exists(ns):  # both writers saw no namespace at first
            asked.append(ns)
            return False if len(asked) == 1 else originals[2](ns)

        def create_namespace(*args, **kwargs):
            barrier.wait(BARRIER_TIMEOUT_S)
            return originals[0](*args, **kwargs)

        def create_table(*args, **kwargs):
            barrier.wait(BARRIER_TIMEOUT_S)
            return originals[1](*args, **kwargs)

        catalog.namespace_exists = namespace_exists
        catalog.create_namespace, catalog.create_table = create_namespace, create_table
        ensure_namespace(catalog, namespace)
        table = ensure_table(catalog, (namespace, "t"), PARSE_ERRORS_SCHEMA,
                             PARSE_ERRORS_PARTITION_SPEC)
        tables_seen.append(table.metadata.table_uuid)
        return table

    _race(backend, create_both)
    assert len(set(tables_seen)) == 1  # both writers hold the one table that exists


# --- the lease -----------------------------------------------------------------------------
@pytest.fixture
def leases(backend):
    catalog = open_catalog(backend)
    namespace = backend.standardized_namespace
    ensure_namespace(catalog, namespace)
    return TableLeases(catalog, namespace)


def test_lease_is_exclusive_until_released(leases):
    name = lease_name("events", "standardized")
    mine = leases.acquire(name, "me")
    with pytest.raises(LeaseHeld, match="held by me"):
        leases.acquire(name, "other")
    assert leases.acquire(name, "me").holder == "me"  # renewal by the holder
    other_topic = leases.acquire(lease_name("orders", "standardized"), "other")
    assert other_topic.holder == "other"  # leases of other topics are independent
    leases.release(mine)
    assert leases.current(name) is None
    assert leases.acquire(name, "other").holder == "other"
    assert leases.current(lease_name("orders", "standardized")).holder == "other"


def test_expired_lease_of_a_killed_holder_is_taken_over(leases):
    name = lease_name("events", "curated")
    leases.acquire(name, "killed", ttl_s=0.5)
    with pytest.raises(LeaseHeld):
        leases.acquire(name, "next")
    time.sleep(0.7)
    assert leases.acquire(name, "next").holder == "next"
    leases.release(leases.current(name))


def test_simultaneous_acquisitions_have_exactly_one_winner(backend, leases):
    name = lease_name("events", "standardized")
    for attempt in range(3):
        barrier = threading.Barrier(3)
        won, lost = [], []

        def contender(i, attempt=attempt, barrier=barrier, won=won, lost=lost):
            mine = TableLeases(open_catalog(backend), backend.standardized_namespace)
            barrier.wait(BARRIER_TIMEOUT_S)
            try:
                won.append(mine.acquire(name, f"w{attempt}-{i}"))
            except LeaseHeld:
                lost.append(i)

        threads = [threading.Thread(target=contender, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert (len(won), len(lost)) == (1, 2)
        assert leases.current(name).holder == won[0].holder
        leases.release(won[0])


def test_heartbeat_keeps_a_long_run_exclusive_and_release_frees_it(leases):
    name = lease_name("events", "standardized")
    # a TTL of 3 s renewed every 1 s: a renewal may take a second on a loaded machine (a
    # commit to the lease table) and the lease still holds, so this asserts no timing
    lease = leases.acquire(name, "long-run", ttl_s=3.0)
    with keep_alive(leases, lease, ttl_s=3.0):
        for _ in range(4):  # 8 s: well past the TTL
            time.sleep(2.0)
            with pytest.raises(LeaseHeld):
                leases.acquire(name, "intruder")
    assert leases.current(name) is None


def test_lease_table_keeps_its_history_short(leases):
    name = lease_name("events", "standardized")
    for i in range(60):
        leases.release(leases.acquire(name, f"h{i}"))
    table = leases._table()
    assert len(table.metadata.snapshots) <= 41
    assert leases.current(name) is None


def test_second_trigger_is_a_no_op_that_says_why(settings, catalog, registry):
    registry.deploy("events")
    schema = registry.load("events")
    tables = TopicTables("events")
    append_raw(catalog, _batch("a"))
    other = TableLeases(catalog, settings.standardized_namespace)
    held = other.acquire(lease_name("events", "standardized"), "host:1:other")

    busy = standardize_topic(catalog, tables, schema)
    assert busy.busy is not None and "another run of events standardized" in busy.busy
    assert "host:1:other" in busy.busy
    assert (busy.rows_read, busy.rows_written) == (0, 0)
    assert not catalog.table_exists(tables.standardized)

    other.release(held)
    done = standardize_topic(catalog, tables, schema)
    assert done.busy is None and done.rows_written == len(_batch("a")) - 2
    # the run released its lease: a curate and a new standardize both proceed
    assert curate_topic(catalog, tables, schema, pii_key=KEY).busy is None
    assert standardize_topic(catalog, tables, schema).busy is None
    assert_balanced(catalog, tables)


def test_a_conflicting_lease_commit_is_retried_not_raised(leases, monkeypatch):
    """A lease commit that loses to another zone writer re-reads and tries again."""
    name = lease_name("events", "standardized")
    calls = {"n": 0}
    original = type(leases._table()).append

    def flaky_append(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise CommitFailedException("main moved")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(leases._table()), "append", flaky_append)
    assert leases.acquire(name, "me").holder == "me"
    assert calls["n"] == 2
