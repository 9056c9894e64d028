"""One writer per topic and layer: a layer run holds its lease, a second trigger is a no-op."""

from __future__ import annotations

from collections.abc import Callable
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


def run_exclusively(
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
        return busy(f"another run of {topic} {layer} is in progress ({held}); nothing to do")
    with keep_alive(leases, lease, ttl_s):
        return step()
