"""The staging half of a rebuild: the staging tables' names, and the ordinary layer runs
writing into them over the whole upstream history, one chunk of upstream snapshots per
commit (step 1 of ``pipeline.rebuild``), then their balance check (step 2)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError

from leanops_dagster import constants
from leanops_dagster.constants import (
    RAW_WATERMARK,
    STD_WATERMARK,
    errors_watermark_name,
    parse_errors_watermark_name,
)
from leanops_dagster.iceberg.history import snapshot_order
from leanops_dagster.iceberg.watermarks import read_watermark
from leanops_dagster.pipeline import accountability, curate, standardize
from leanops_dagster.pipeline.layout import Identifier, TopicTables
from leanops_dagster.schemas.models import TopicSchema

REBUILD_MARK = "__rebuild_"

REPLACED_MARK = "__replaced_"

FROM_RAW_SUFFIX = "r"  # ends the id of a rebuild that starts from RAW

DEFAULT_SNAPSHOTS_PER_CHUNK = 50

STAMP = "%Y%m%d%H%M%S"

Progress = Callable[[str], None]



class RebuildError(RuntimeError):
    """A rebuilt table failed its check; the live tables were not touched."""



@dataclass(frozen=True)
class StagingTables(TopicTables):
    """The tables a rebuild builds: the layer runs write here instead of the live tables.
    The upstream of the first rebuilt layer is a *replay* of the live upstream's current data
    files (``replay``); ``standardized`` and ``parse_errors`` are staged too when the rebuild
    starts from RAW (the rebuild id ends with ``r``)."""

    rebuild_id: str = ""

    @property
    def from_raw(self) -> bool:
        return self.rebuild_id.endswith(FROM_RAW_SUFFIX)

    @property
    def _base(self) -> str:
        return f"{self.topic}{REBUILD_MARK}{self.rebuild_id}"

    @property
    def raw(self) -> Identifier:
        """From RAW: the replay of RAW's current files (``replay``); else the live RAW."""
        if not self.from_raw:
            return super().raw
        return (self._ns(constants.RAW_ZONE), f"{self._base}__replay")

    @property
    def standardized(self) -> Identifier:
        """From RAW: the staged Standardized; else the replay of Standardized's files."""
        if not self.from_raw:
            return (self._ns(constants.STANDARDIZED_ZONE), f"{self._base}__replay")
        return (self._ns(constants.STANDARDIZED_ZONE), self._base)

    @property
    def parse_errors(self) -> Identifier:
        if not self.from_raw:
            return super().parse_errors
        return (self._ns(constants.STANDARDIZED_ZONE), f"{self._base}__parse_errors")

    @property
    def curated(self) -> Identifier:
        return (self._ns(constants.CURATED_ZONE), self._base)

    @property
    def curated_errors(self) -> Identifier:
        return (self._ns(constants.CURATED_ZONE), f"{self._base}__errors")

    @property
    def drift_log(self) -> Identifier:
        return (self._ns(constants.CURATED_ZONE), f"{self._base}__drift")

    def replaced_copy(self, zone: str) -> Identifier:
        """The dated name the pre-swap live table of ``zone`` stays readable under."""
        return (self._ns(zone), f"{self.topic}{REPLACED_MARK}{self.rebuild_id}")

    def all(self) -> tuple[Identifier, ...]:
        """The tables whose files are the rebuild's own (purged at the end)."""
        staged = (self.curated, self.curated_errors, self.drift_log)
        return (self.standardized, self.parse_errors, *staged) if self.from_raw else staged

    def replays(self) -> tuple[Identifier, ...]:
        """The replay tables: they share the live upstream's files (dropped, never purged)."""
        return (self.raw,) if self.from_raw else (self.standardized,)



def list_table_names(catalog: Catalog, namespace: str) -> list[str]:
    try:
        return [identifier[-1] for identifier in catalog.list_tables(namespace)]
    except NoSuchNamespaceError:
        return []



def staging_for(
    catalog: Catalog, tables: TopicTables, version: str, now: dt.datetime, *,
    from_raw: bool = False,
) -> tuple[StagingTables, bool]:
    """The unfinished rebuild of ``version`` (same mode) to resume, found by its staging
    Curated table, else a new one stamped ``now``; True when resuming."""
    suffix = FROM_RAW_SUFFIX if from_raw else ""
    prefix = f"{tables.topic}{REBUILD_MARK}{version}_"
    pattern = re.compile(rf"^{re.escape(prefix)}(\d{{14}}){suffix}$")
    names = list_table_names(catalog, tables.curated[0])
    started = sorted(m[1] for name in names if (m := pattern.match(name)))
    stamp = started[-1] if started else now.astimezone(dt.UTC).strftime(STAMP)
    staging = StagingTables(tables.topic, tables.namespace_prefix, f"{version}_{stamp}{suffix}")
    return staging, bool(started)



@dataclass(frozen=True)
class StagedLayer:
    """One layer as the staging loop sees it: its upstream table, its staged table and error
    table with their watermarks, and one run of it that reads its upstream up to a snapshot."""

    name: str
    upstream: Identifier
    table: Identifier
    watermark: str
    errors: Identifier
    errors_watermark: str
    run: Callable[[int], Any]  # the upstream snapshot a run reads up to
    describe: Callable[[Any], str]



def stage(catalog: Catalog, layer: StagedLayer, *, snapshots_per_chunk: int,
           progress: Progress) -> int:
    """Run ``layer`` into its staging tables over the whole upstream history, one chunk of
    upstream snapshots per commit; returns the chunks committed by this call."""
    if not catalog.table_exists(layer.upstream):
        return 0
    upstream = catalog.load_table(layer.upstream)
    ids = [sid for sid, _ in sorted(snapshot_order(upstream).items(), key=lambda i: i[1])]
    positions = {sid: i for i, sid in enumerate(ids)}

    def watermark(identifier: Identifier, name: str) -> int:
        if not catalog.table_exists(identifier):
            return -1
        at = read_watermark(catalog.load_table(identifier), name)
        return positions.get(at, -1) if at is not None else -1

    chunks = 0
    previous: int | None = None
    result: Any = None
    while True:
        # resume after the older of the two watermarks, as the layer run itself does
        done = min(watermark(layer.table, layer.watermark),
                   watermark(layer.errors, layer.errors_watermark))
        if done >= len(ids) - 1:
            return chunks
        if done == previous:  # the last run committed nothing: never loop on it
            raise RebuildError(
                f"rebuild {layer.name}: a chunk run made no progress at upstream snapshot "
                f"{done + 1}/{len(ids)}: {getattr(result, 'busy', None) or 'nothing committed'}"
            )
        previous = done
        end = ids[min(done + snapshots_per_chunk, len(ids) - 1)]
        result = layer.run(end)
        chunks += 1
        progress(
            f"rebuild {layer.name} chunk {chunks}: upstream snapshots {positions[end] + 1}/"
            f"{len(ids)}, {layer.describe(result)}"
        )



def standardized_layer(
    catalog: Catalog, tables: TopicTables, staging: StagingTables, schema: TopicSchema,
    now: dt.datetime,
) -> StagedLayer:
    return StagedLayer(
        name="Standardized", upstream=staging.raw, table=staging.standardized,
        watermark=RAW_WATERMARK, errors=staging.parse_errors,
        errors_watermark=parse_errors_watermark_name(tables.topic),
        # no lease: the rebuild itself holds the topic's leases (``deploy_schema``)
        run=lambda upstream_at: standardize.standardize_topic(
            catalog, staging, schema, now=now, lease_ttl_s=None, upstream_at=upstream_at),
        describe=lambda r: (f"RAW rows read {r.rows_read}, written {r.rows_written}, parse "
                            f"errors {r.parse_errors}, duplicates {r.duplicates}"),
    )



def curated_layer(
    catalog: Catalog, tables: TopicTables, staging: StagingTables, schema: TopicSchema,
    pii_key: bytes, now: dt.datetime,
) -> StagedLayer:
    return StagedLayer(
        name="Curated", upstream=staging.standardized, table=staging.curated,
        watermark=STD_WATERMARK, errors=staging.curated_errors,
        errors_watermark=errors_watermark_name(tables.topic),
        run=lambda upstream_at: curate.curate_topic(
            catalog, staging, schema, pii_key=pii_key, now=now, lease_ttl_s=None,
            upstream_at=upstream_at),
        describe=lambda r: (f"Standardized rows read {r.rows_read}, inserted {r.inserted}, "
                            f"updated {r.updated}, CDE error rows {r.cde_error_rows}"),
    )



def check_balanced(equation: accountability.Equation, what: str) -> None:
    if not equation.balanced:
        raise RebuildError(
            f"the rebuilt {what} does not balance over its history ({equation.as_dict()}); "
            "the live tables are unchanged"
        )
