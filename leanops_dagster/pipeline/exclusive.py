"""One writer per topic and layer: the one lease API.

- ``run``: a layer run holds the lease of its topic and layer; a second trigger is a no-op.
- ``hold``: a rebuild holds the leases of the layers it rebuilds for its whole duration,
  waiting for a run in progress to finish (``Busy`` when it does not in time).

Both keep the lease alive with a heartbeat and release it at the end (``iceberg.lease``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from pyiceberg.catalog import Catalog

from leanops_dagster.iceberg.lease import (
    DEFAULT_TTL_S,
    LeaseHeld,
    TableLeases,
    keep_alive,
    lease_name,
    new_holder_id,
)

R = TypeVar("R")


class Busy(RuntimeError):
    """Another run held a lease for longer than ``hold`` would wait."""


def _busy_message(topic: str, layer: str, held: LeaseHeld) -> str:
    return f"another run of {topic} {layer} is in progress ({held})"


def run(
    catalog: Catalog,
    namespace: str,
    topic: str,
    layer: str,
    step: Callable[[], R],
    busy: Callable[[str], R],
    *,
    ttl_s: float | None = DEFAULT_TTL_S,
) -> R:
    """Run ``step`` holding the lease of ``topic``/``layer`` (kept in ``namespace``); if another
    run holds it, return ``busy(message)`` instead (the CLI prints it and exits 0).
    ``ttl_s=None`` runs without a lease (the commits still assert their snapshots)."""
    if ttl_s is None:
        return step()
    leases = TableLeases(catalog, namespace)
    try:
        lease = leases.acquire(lease_name(topic, layer), new_holder_id(), ttl_s)
    except LeaseHeld as held:
        return busy(f"{_busy_message(topic, layer, held)}; nothing to do")
    with keep_alive(leases, lease, ttl_s):
        return step()


@contextlib.contextmanager
def hold(
    catalog: Catalog,
    leases: Sequence[tuple[str, str, str]],
    *,
    wait_s: float,
    ttl_s: float = DEFAULT_TTL_S,
) -> Iterator[None]:
    """Hold each lease of ``leases`` (namespace, topic, layer), renewed by a heartbeat and
    released at the end, waiting up to ``wait_s`` for a run holding one to finish (else
    ``Busy``)."""
    holder = new_holder_id()
    with contextlib.ExitStack() as stack:
        for namespace, topic, layer in leases:
            table_leases = TableLeases(catalog, namespace)
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    lease = table_leases.acquire(lease_name(topic, layer), holder, ttl_s)
                    break
                except LeaseHeld as held:
                    if time.monotonic() >= deadline:
                        raise Busy(_busy_message(topic, layer, held)) from None
                    time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
            stack.enter_context(keep_alive(table_leases, lease, ttl_s))
        yield
