"""Deploying a topic schema (``deploy_schema``): a compatible change evolves Curated in one
schema commit, a breaking one is refused unless rebuilt (``pipeline.rebuild.run``) under
the topic's leases; the document is published last."""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass

from pyiceberg.catalog import Catalog

from leanops_dagster import constants
from leanops_dagster.pipeline import exclusive
from leanops_dagster.pipeline.curated_evolution import (
    EvolveResult,
    evolve_curated,
)
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.rebuild.cleanup import drop_staging
from leanops_dagster.pipeline.rebuild.run import RebuildResult, rebuild_topic
from leanops_dagster.pipeline.rebuild.staging import (
    DEFAULT_SNAPSHOTS_PER_CHUNK,
    Progress,
    RebuildError,
    StagingTables,
)
from leanops_dagster.schemas.compatibility import (
    BreakingChangeError,
    Change,
    affects_standardized,
    breaking_changes,
)
from leanops_dagster.schemas.registry import DeployResult, SchemaRegistry

DEFAULT_LEASE_WAIT_S = 600.0



@dataclass(frozen=True)
class DeployOutcome:
    topic: str
    deployed: DeployResult
    changes: list[Change]
    evolution: EvolveResult | None = None
    rebuild: RebuildResult | None = None



def deploy_schema(
    registry: SchemaRegistry,
    catalog: Catalog,
    tables: TopicTables,
    *,
    rebuild: bool = False,
    from_raw: bool = False,
    pii_key: bytes = b"",
    now: dt.datetime | None = None,
    snapshots_per_chunk: int = DEFAULT_SNAPSHOTS_PER_CHUNK,
    progress: Progress | None = None,
    lease_wait_s: float = DEFAULT_LEASE_WAIT_S,
) -> DeployOutcome:
    """Deploy ``tables.topic``'s source schema: classify, then evolve (compatible), refuse
    (breaking without ``rebuild``) or rebuild, and publish last, so no run sees a schema its
    table cannot hold. A breaking change of the Standardized schema rebuilds from RAW;
    ``from_raw`` (implies ``rebuild``) forces that, e.g. after a flattening rule was fixed.

    A rebuild holds the topic's Curated lease (and Standardized lease, from RAW) from start to
    publication, so the topic's regular runs are no-ops meanwhile (one writer per topic and
    layer; their input waits upstream); it waits up to ``lease_wait_s`` for a run in
    progress to finish."""
    topic = tables.topic
    source = registry.versioned_source(topic)
    deployed = registry.deployed(topic)
    changes = registry.changes(topic)
    breaking = breaking_changes(changes)
    rebuild = rebuild or from_raw
    if breaking and not rebuild:
        raise BreakingChangeError({topic: breaking})
    if not rebuild:
        evolution = evolve_curated(catalog, tables, source)
        result = registry.deploy(topic, now=now)
        return DeployOutcome(topic, result, changes, evolution=evolution)
    from_raw = from_raw or affects_standardized(changes)
    zones = (constants.STANDARDIZED_ZONE, constants.CURATED_ZONE) if from_raw else (
        constants.CURATED_ZONE,)
    namespaces = {constants.STANDARDIZED_ZONE: tables.standardized[0],
                  constants.CURATED_ZONE: tables.curated[0]}
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(exclusive.hold(
                catalog, [(namespaces[zone], topic, zone) for zone in zones], wait_s=lease_wait_s))
        except exclusive.Busy as busy:
            raise RebuildError(f"{busy}; rerun the rebuild when it has finished") from None
        rebuilt = rebuild_topic(
            catalog, tables, source, pii_key=pii_key, from_raw=from_raw,
            replaced_version=deployed.version if deployed else None, now=now,
            snapshots_per_chunk=snapshots_per_chunk, progress=progress,
        )
        result = registry.deploy(topic, now=now, allow_breaking=True)
    drop_staging(catalog, StagingTables(topic, tables.namespace_prefix, rebuilt.rebuild_id))
    return DeployOutcome(topic, result, changes, rebuild=rebuilt)
