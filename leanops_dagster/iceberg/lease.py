"""One writer per topic and layer: leases kept in an Iceberg table of the catalog itself.

A lease is a compare-and-swap register in the snapshot summary of one small table per zone,
``<zone>._run_leases`` (the leading underscore keeps it apart from every topic name). Its
current snapshot's summary holds every live lease as
``leanops.lease.<topic>.<layer> = {"holder": ..., "expires_at_ms": ...}``; taking, renewing or
releasing a lease commits an empty snapshot whose summary is the new state. pyiceberg asserts
that main is still at the snapshot the decision was read from, so of two writers deciding on
the same state exactly one commits; the other re-reads and sees the lease taken. This works on
every catalog pyiceberg commits to (SQLite, PostgreSQL, Glue, REST): no new service, no table of
our own in the catalog's database.

A lease expires after its TTL, so a killed holder never blocks for ever; a live holder renews
it from a heartbeat thread. The lease is an economy, not the guarantee: every commit of a layer
run also asserts the snapshot it read (``iceberg.commit.ensure_unchanged``), so even a writer
that took over an expired lease from a holder that was only slow cannot double-count.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.schema import Schema
from pyiceberg.table import Table, TableProperties
from pyiceberg.types import NestedField, StringType

from leanops_dagster.constants import LEASE_PROPERTY_PREFIX, LEASE_TABLE
from leanops_dagster.iceberg.catalog import ensure_table

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 600.0
_LEASE_TABLE_SCHEMA = Schema(NestedField(1, "note", StringType(), required=False))
_LEASE_TABLE_PROPERTIES = {
    # Every lease change is a snapshot: keep the table's metadata small.
    TableProperties.METADATA_DELETE_AFTER_COMMIT_ENABLED: "true",
    TableProperties.METADATA_PREVIOUS_VERSIONS_MAX: "20",
}
_KEEP_SNAPSHOTS = 20
#: how long a lease change keeps retrying CAS conflicts (other topics' lease changes)
_CAS_DEADLINE_S = 60.0


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    expires_at_ms: int

    def expired(self, now_ms: int) -> bool:
        return self.expires_at_ms <= now_ms


class LeaseHeld(Exception):
    """Another holder's unexpired lease: the caller has nothing to do."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        left = max(0, lease.expires_at_ms - _now_ms()) // 1000
        super().__init__(f"held by {lease.holder} (expires in {left} s)")


def _now_ms() -> int:
    return int(time.time() * 1000)


def new_holder_id() -> str:
    """Host, process and a random part: unique per run, readable in a message."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_name(topic: str, layer: str) -> str:
    return f"{topic}.{layer}"


class TableLeases:
    """The leases of one zone, in ``(<namespace>, _run_leases)``."""

    def __init__(self, catalog: Catalog, namespace: str) -> None:
        self._catalog = catalog
        self._identifier = (namespace, LEASE_TABLE)

    def _table(self) -> Table:
        return ensure_table(
            self._catalog, self._identifier, _LEASE_TABLE_SCHEMA,
            properties=_LEASE_TABLE_PROPERTIES,
        )

    @staticmethod
    def _state(table: Table) -> dict[str, Lease]:
        snapshot = table.current_snapshot()
        if snapshot is None or snapshot.summary is None:
            return {}
        leases = {}
        for key, value in snapshot.summary.additional_properties.items():
            if key.startswith(LEASE_PROPERTY_PREFIX) and value:
                record = json.loads(value)
                name = key.removeprefix(LEASE_PROPERTY_PREFIX)
                leases[name] = Lease(name, record["holder"], int(record["expires_at_ms"]))
        return leases

    def current(self, name: str) -> Lease | None:
        """The unexpired lease ``name``, if any."""
        lease = self._state(self._table()).get(name)
        return lease if lease is not None and not lease.expired(_now_ms()) else None

    def _swap(self, name: str, holder: str, ttl_s: float | None) -> Lease | None:
        """Compare-and-swap lease ``name``: take or renew it for ``holder`` (``ttl_s``) or,
        with ``ttl_s=None``, release it. Raises ``LeaseHeld`` if another holder has it."""
        deadline = time.monotonic() + _CAS_DEADLINE_S
        for attempt in itertools.count():
            table = self._table()
            now = _now_ms()
            state = {n: lease for n, lease in self._state(table).items() if not lease.expired(now)}
            other = state.get(name)
            if other is not None and other.holder != holder:
                if ttl_s is None:
                    return None  # someone else's now: nothing of ours to release
                raise LeaseHeld(other)
            if ttl_s is None:
                state.pop(name, None)
                taken = None
            else:
                taken = state[name] = Lease(name, holder, now + int(ttl_s * 1000))
            properties = {
                f"{LEASE_PROPERTY_PREFIX}{n}": json.dumps(
                    {"holder": lease.holder, "expires_at_ms": lease.expires_at_ms}
                )
                for n, lease in state.items()
            }
            try:
                # An empty append: its only content is the summary, its commit asserts that
                # main is still the snapshot ``state`` was read from.
                table.append(
                    _LEASE_TABLE_SCHEMA.as_arrow().empty_table(), snapshot_properties=properties
                )
            except CommitFailedException:
                # Every topic of the zone shares this register: with many topics starting
                # together a contender may lose many rounds, each to another topic (someone
                # always wins a round). Retry until the deadline, jittered so contenders
                # that lost together do not retry in lockstep.
                if time.monotonic() >= deadline:
                    raise CommitFailedException(
                        f"lease {name}: {attempt + 1} conflicting attempts in "
                        f"{_CAS_DEADLINE_S:.0f} s"
                    ) from None
                time.sleep(min(0.02 * 2 ** min(attempt, 6), 1.0) * (0.5 + random.random()))
                continue
            self._trim(table)
            return taken
        raise AssertionError("unreachable")

    def acquire(self, name: str, holder: str, ttl_s: float = DEFAULT_TTL_S) -> Lease:
        """Take lease ``name`` for ``holder``, or raise ``LeaseHeld``."""
        lease = self._swap(name, holder, ttl_s)
        if lease is None:  # only a release swaps in nothing
            raise RuntimeError(f"lease {name}: acquire returned no lease")
        return lease

    def renew(self, lease: Lease, ttl_s: float = DEFAULT_TTL_S) -> Lease:
        return self.acquire(lease.name, lease.holder, ttl_s)

    def release(self, lease: Lease) -> None:
        self._swap(lease.name, lease.holder, None)

    @staticmethod
    def _trim(table: Table) -> None:
        """Expire all but the newest snapshots (the state is only ever the current one), and
        delete the manifest lists of the expired ones: pyiceberg's expiry leaves every file
        on disk, and each lease change writes one (the empty appends write no manifest)."""
        snapshots = sorted(table.metadata.snapshots, key=lambda s: s.timestamp_ms)
        if len(snapshots) <= 2 * _KEEP_SNAPSHOTS:
            return
        cutoff = snapshots[-_KEEP_SNAPSHOTS].timestamp_ms
        try:
            table.maintenance.expire_snapshots().older_than(
                dt.datetime.fromtimestamp(cutoff / 1000, dt.UTC)
            ).commit()
        except CommitFailedException:  # another writer trims as well
            return
        kept = {s.manifest_list for s in table.metadata.snapshots}
        for snapshot in snapshots:
            if snapshot.manifest_list not in kept:
                with contextlib.suppress(OSError):  # already deleted by a concurrent trim
                    table.io.delete(snapshot.manifest_list)


@contextlib.contextmanager
def keep_alive(leases: TableLeases, lease: Lease, ttl_s: float = DEFAULT_TTL_S) -> Iterator[None]:
    """While the block runs, renew ``lease`` every third of its TTL; release it at the end,
    also on an exception (a killed process's lease simply expires)."""
    stop = threading.Event()

    def heartbeat() -> None:
        current = lease
        while not stop.wait(ttl_s / 3):
            try:
                current = leases.renew(current, ttl_s)
            except LeaseHeld as exc:  # expired while this process stalled; commits stay safe
                log.warning("lease %s lost (%s); finishing on snapshot checks", lease.name, exc)
                return
            except Exception as exc:  # the run goes on; its commits assert their snapshots
                log.warning("lease %s: renewal failed (%s)", lease.name, exc)

    thread = threading.Thread(target=heartbeat, name=f"lease-{lease.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        try:
            leases.release(lease)
        except Exception as exc:  # it expires on its own
            log.warning("lease %s: release failed (%s); it expires by itself", lease.name, exc)
