"""Deploying a topic schema: compatible changes evolve Curated, breaking ones need a rebuild.

``deploy_schema`` classifies the change (``schemas.compatibility``); a compatible change evolves
``curated.<topic>`` in one schema commit (``pipeline.evolve``) and then publishes the document;
a breaking change is refused (``BreakingChangeError``) unless ``rebuild=True``, which rebuilds
the topic's Curated table from its full Standardized history under the new schema and then
publishes. ``--rebuild`` with no schema change restates the table under the current code (the
way to recover from a bug fixed in a rule).

**Rebuild** (``rebuild_curated``), each step resumable: killed anywhere, the same call
continues where the committed state says it stopped and ends with the same tables.

1. *Stage*: ``curated.<topic>__rebuild_<version>_<started>`` (and its own errors and drift
   tables) is built by the ordinary Curated run (``curate_topic``) from the whole
   Standardized history, in chunks of ``snapshots_per_chunk`` Standardized snapshots; each
   chunk is a normal Curated commit carrying its watermark, so a rerun continues after the
   last committed chunk (progress is reported per chunk). It is exactly what a fresh pipeline
   under the new schema builds: the same code, the same rows.
2. *Check*: the staging table's accountability equation over the whole history
   (``accountability.curated_equation``) must balance, else nothing is swapped.
3. *Swap Curated*, atomically: ONE commit on the live table holds the schema change (columns
   added, dropped, retyped, reordered to the new schema), an ``overwrite`` snapshot that removes
   every live data file and adds the rebuilt rows (written for the live table's field ids,
   with a full key index), and the staging table's watermark and running totals in its
   summary. A reader loads the table's metadata pointer from the catalog, which one commit
   moves from the old metadata to the new (SQL: one conditional UPDATE; Glue and REST: one
   conditional commit), so it reads the old table or the new one, never a mix or nothing.
   Not ``catalog.rename_table``: old -> dated, new -> live are two catalog operations (a
   reader between them finds no table, a crash between them leaves none) and Glue has no
   rename. The commit also lists the replaced schema version in the table property
   ``leanops.schema.superseded-versions``, so a run still on it (in flight, or started before
   the new version is published) is refused instead of writing old semantics.
4. *Swap errors*: one commit on ``curated.errors`` deletes the topic's rows and appends the
   staging error rows with the staging errors watermark (another table, so another commit;
   until it lands no Curated run of either version can write: the old one is superseded and
   the new one not published yet).
5. The table as it was before the swap stays readable under a dated name,
   ``curated.<topic>__replaced_<version>_<started>``, registered on the pre-swap metadata (no
   data copied); the table maintenance job drops such copies after its retention
   (``drop_replaced_copies``). The pre-swap snapshot also stays in the live table's history
   until maintenance expires it.

Then ``deploy_schema`` publishes the schema and drops the staging tables; the next run continues
incrementally from the rebuilt table's watermark.

A breaking change of the Standardized schema (metadata mapping, required metadata, dropped
keys) needs Standardized rebuilt from RAW first; that is not implemented yet, so such a
deployment is refused with that reason.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError
from pyiceberg.expressions import EqualTo
from pyiceberg.table import Table
from pyiceberg.table.snapshots import ancestors_of

from leanops_dagster import accountability, constants
from leanops_dagster.iceberg.catalog import ensure_table, schema_from_arrow
from leanops_dagster.iceberg.commit import retry_commit
from leanops_dagster.iceberg.datafiles import write_data_files
from leanops_dagster.iceberg.key_index import KeyIndex, unreferenced_segments, updated_index
from leanops_dagster.iceberg.merge import curated_partition_spec
from leanops_dagster.iceberg.reads import cast_to
from leanops_dagster.iceberg.tables import (
    CURATED_ERRORS_PARTITION_SPEC,
    CURATED_ERRORS_SCHEMA,
)
from leanops_dagster.iceberg.watermarks import (
    read_summary_value,
    read_watermark,
    snapshot_position,
    watermark_key,
)
from leanops_dagster.pipeline import curate
from leanops_dagster.pipeline.evolve import (
    SCHEMA_VERSION_PROPERTY,
    SUPERSEDED_VERSIONS_PROPERTY,
    EvolveResult,
    evolve_curated,
    is_promotion,
    superseded_versions,
)
from leanops_dagster.pipeline.layout import Identifier, TopicTables
from leanops_dagster.schemas.compatibility import (
    STANDARDIZED_KINDS,
    BreakingChangeError,
    Change,
    breaking_changes,
)
from leanops_dagster.schemas.models import IDEMPOTENCY_KEY, TopicSchema
from leanops_dagster.schemas.registry import DeployResult, SchemaRegistry

REBUILD_MARK = "__rebuild_"
REPLACED_MARK = "__replaced_"
#: on the live Curated swap snapshot: which rebuild produced it (the resume marker)
REBUILD_ID_PROPERTY = "leanops.rebuild.id"
REPLACED_SNAPSHOT_PROPERTY = "leanops.rebuild.replaced_snapshot_id"
REPLACED_METADATA_PROPERTY = "leanops.rebuild.replaced_metadata"
REPLACED_VERSION_PROPERTY = "leanops.rebuild.replaced_schema_version"
DEFAULT_SNAPSHOTS_PER_CHUNK = 50
_STAMP = "%Y%m%d%H%M%S"
_TOTALS = ("rows_read", "updated", "superseded", "cde_error_rows")

Progress = Callable[[str], None]


class RebuildError(RuntimeError):
    """The rebuilt table failed its check; the live table was not touched."""


def _errors_watermark(topic: str) -> str:
    """The name of the Curated errors watermark of ``topic`` (the Curated run's own)."""
    return curate._errors_watermark_name(topic)


def errors_rebuild_property(topic: str) -> str:
    return f"leanops.rebuild.errors.{topic}"


@dataclass(frozen=True)
class StagingTables(TopicTables):
    """The tables a rebuild builds: the Curated run writes here instead of the live tables
    (``standardized`` stays the live one: the rebuild reads its whole history)."""

    rebuild_id: str = ""

    @property
    def _base(self) -> str:
        return f"{self.topic}{REBUILD_MARK}{self.rebuild_id}"

    @property
    def curated(self) -> Identifier:
        return (self._ns(constants.CURATED_ZONE), self._base)

    @property
    def curated_errors(self) -> Identifier:
        return (self._ns(constants.CURATED_ZONE), f"{self._base}__errors")

    @property
    def drift_log(self) -> Identifier:
        return (self._ns(constants.CURATED_ZONE), f"{self._base}__drift")

    @property
    def replaced_copy(self) -> Identifier:
        """The dated name the pre-swap live table stays readable under."""
        return (self._ns(constants.CURATED_ZONE), f"{self.topic}{REPLACED_MARK}{self.rebuild_id}")

    def all(self) -> tuple[Identifier, ...]:
        return (self.curated, self.curated_errors, self.drift_log)


@dataclass
class RebuildResult:
    topic: str
    rebuild_id: str
    schema_version: str
    replaced_version: str | None
    #: Standardized rows the rebuilt table accounts for (its whole history up to the watermark)
    rows_read: int = 0
    curated_rows: int = 0
    updates: int = 0
    superseded: int = 0
    cde_error_rows: int = 0
    watermark: int | None = None
    #: chunks committed by this call (0 when a rerun found the staging table complete)
    chunks: int = 0
    resumed: bool = False
    swap_snapshot_id: int | None = None
    replaced_snapshot_id: int | None = None
    replaced_copy: str | None = None
    balanced: bool = False
    steps: list[str] = field(default_factory=list)


def _list(catalog: Catalog, namespace: str) -> list[str]:
    try:
        return [identifier[-1] for identifier in catalog.list_tables(namespace)]
    except NoSuchNamespaceError:
        return []


def staging_for(
    catalog: Catalog, tables: TopicTables, version: str, now: dt.datetime
) -> tuple[StagingTables, bool]:
    """The unfinished rebuild of ``version`` to resume (its staging table exists), else a new
    one stamped ``now``; True when resuming."""
    namespace = tables.curated[0]
    prefix = f"{tables.topic}{REBUILD_MARK}{version}_"
    pattern = re.compile(rf"^{re.escape(prefix)}(\d{{14}})$")
    started = sorted(m[1] for name in _list(catalog, namespace) if (m := pattern.match(name)))
    if started:
        rebuild_id = f"{version}_{started[-1]}"
        return StagingTables(tables.topic, tables.namespace_prefix, rebuild_id), True
    stamp = now.astimezone(dt.UTC).strftime(_STAMP)
    return StagingTables(tables.topic, tables.namespace_prefix, f"{version}_{stamp}"), False


# --- 1. stage ---------------------------------------------------------------------------------
def _as_of(table: Table, snapshot_id: int) -> Table:
    """``table`` as if ``snapshot_id`` were its current snapshot (a read-only view)."""
    metadata = table.metadata.model_copy(update={"current_snapshot_id": snapshot_id})
    return Table(table.name(), metadata, table.metadata_location, table.io, table.catalog,
                 table.config)


class _StandardizedUpTo:
    """A catalog whose Standardized table of the topic stops at one snapshot, so one Curated
    run consumes one chunk of history; everything else is the real catalog."""

    def __init__(self, catalog: Catalog, identifier: Identifier, snapshot_id: int) -> None:
        self._catalog = catalog
        self._identifier = tuple(identifier)
        self._snapshot_id = snapshot_id

    def load_table(self, identifier: Any) -> Table:
        table = self._catalog.load_table(identifier)
        if tuple(identifier) == self._identifier:
            return _as_of(table, self._snapshot_id)
        return table

    def __getattr__(self, name: str) -> Any:
        return getattr(self._catalog, name)


def _stage(
    catalog: Catalog, tables: TopicTables, staging: StagingTables, schema: TopicSchema, *,
    pii_key: bytes, now: dt.datetime | None, snapshots_per_chunk: int, progress: Progress,
) -> int:
    """Run the Curated layer into the staging tables over the whole Standardized history, one
    chunk per commit; returns the chunks committed by this call."""
    arrow = schema.curated.arrow_schema()
    iceberg_schema = schema_from_arrow(arrow)
    ensure_table(catalog, staging.curated, iceberg_schema, curated_partition_spec(iceberg_schema))
    if not catalog.table_exists(tables.standardized):
        return 0
    std = catalog.load_table(tables.standardized)
    order = sorted(snapshot_position(std).items(), key=lambda item: item[1])
    ids = [sid for sid, _ in order]
    chunks = 0
    while True:
        staged = catalog.load_table(staging.curated)
        done_at = read_watermark(staged, curate.STD_WATERMARK)
        if catalog.table_exists(staging.curated_errors):
            errors_at = read_watermark(
                catalog.load_table(staging.curated_errors),
                _errors_watermark(tables.topic),
            )
        else:
            errors_at = None
        # resume after the older of the two watermarks, as the Curated run itself does
        positions = {sid: i for i, sid in enumerate(ids)}
        done = min((positions.get(w, -1) if w is not None else -1) for w in (done_at, errors_at))
        if done >= len(ids) - 1:
            return chunks
        end = ids[min(done + snapshots_per_chunk, len(ids) - 1)]
        result = curate.curate_topic(
            _StandardizedUpTo(catalog, tables.standardized, end),  # type: ignore[arg-type]
            staging, schema, pii_key=pii_key, now=now,
        )
        chunks += 1
        progress(
            f"{tables.topic}: rebuild chunk {chunks}: Standardized snapshots "
            f"{positions[end] + 1}/{len(ids)}, rows read {result.rows_read}, inserted "
            f"{result.inserted}, updated {result.updated}, CDE error rows "
            f"{result.cde_error_rows}"
        )


# --- 3. swap Curated --------------------------------------------------------------------------
def _reshape_schema(update: Any, current: Any, schema: TopicSchema) -> None:
    """Make the table's columns exactly ``schema``'s Curated columns (order: next step)."""
    target = schema_from_arrow(schema.curated.arrow_schema())
    wanted = {f.name: f.field_type for f in target.fields}
    for stored in current.fields:
        kind = wanted.get(stored.name)
        if kind is None:
            update.delete_column(stored.name)
        elif kind == stored.field_type:
            continue
        elif is_promotion(stored.field_type, kind):
            update.update_column(stored.name, field_type=kind)
        else:  # a new column under the old name: a new field id, old values never reused
            update.delete_column(stored.name)
            update.add_column(stored.name, kind)
    present = {f.name for f in current.fields}
    for name, kind in wanted.items():
        if name not in present:
            update.add_column(name, kind)


def _order_columns(update: Any, schema: TopicSchema) -> None:
    """The schema's column order (a second schema update of the same transaction: pyiceberg
    cannot move a column re-added under a deleted one's name in the update that added it)."""
    names = schema.curated.arrow_schema().names
    update.move_first(names[0])
    for before, name in itertools.pairwise(names):
        update.move_after(name, before)


def _swap_curated(
    catalog: Catalog, tables: TopicTables, staging: StagingTables, schema: TopicSchema,
    replaced_version: str | None,
) -> Table:
    staged = catalog.load_table(staging.curated)
    rows = staged.scan().to_arrow()
    carried = {
        key: value
        for key in (watermark_key(curate.STD_WATERMARK), *(f"leanops.total.{n}" for n in _TOTALS))
        if (value := read_summary_value(staged, key)) is not None
    }
    if not catalog.table_exists(tables.curated):
        iceberg_schema = schema_from_arrow(schema.curated.arrow_schema())
        ensure_table(catalog, tables.curated, iceberg_schema,
                     curated_partition_spec(iceberg_schema))

    def once() -> Table:
        live = catalog.load_table(tables.curated)
        replaced = live.current_snapshot()
        old_files = [task.file for task in live.scan().plan_files()] if replaced else []
        commit_uuid = uuid.uuid4()
        with live.transaction() as tx:
            with tx.update_schema() as update:
                _reshape_schema(update, tx.table_metadata.schema(), schema)
            with tx.update_schema() as update:
                _order_columns(update, schema)
            metadata = tx.table_metadata
            target = metadata.schema().as_arrow()
            written = write_data_files(
                metadata, live.io, cast_to(rows, target), write_uuid=commit_uuid,
                index_column=IDEMPOTENCY_KEY,
            )
            index = updated_index(live, IDEMPOTENCY_KEY, None, [], written.entries)
            properties = {
                **carried,
                SCHEMA_VERSION_PROPERTY: str(schema.version),
                REBUILD_ID_PROPERTY: staging.rebuild_id,
                REPLACED_SNAPSHOT_PROPERTY: str(replaced.snapshot_id) if replaced else "",
                REPLACED_METADATA_PROPERTY: live.metadata_location if replaced else "",
                REPLACED_VERSION_PROPERTY: replaced_version or "",
                **index.property(),
            }
            snapshot = tx.update_snapshot(snapshot_properties=properties)
            if old_files:
                with snapshot.overwrite(commit_uuid=commit_uuid) as overwrite:
                    for data_file in old_files:
                        overwrite.delete_data_file(data_file)
                    for data_file in written.files:
                        overwrite.append_data_file(data_file)
            else:
                with snapshot.fast_append() as append:
                    for data_file in written.files:
                        append.append_data_file(data_file)
            if replaced_version and replaced_version != schema.version:
                versions = sorted(superseded_versions(live) | {replaced_version})
                tx.set_properties({SUPERSEDED_VERSIONS_PROPERTY: ",".join(versions)})
        return catalog.load_table(tables.curated)

    return retry_commit(once)


# --- 4. swap errors ---------------------------------------------------------------------------
def _swap_errors(
    catalog: Catalog, tables: TopicTables, staging: StagingTables
) -> None:
    watermark_name = _errors_watermark(tables.topic)
    arrow = CURATED_ERRORS_SCHEMA.as_arrow()
    if catalog.table_exists(staging.curated_errors):
        staged = catalog.load_table(staging.curated_errors)
        rows = staged.scan(row_filter=EqualTo("topic_name", tables.topic)).to_arrow()
        watermark = read_watermark(staged, watermark_name)
    else:
        rows, watermark = arrow.empty_table(), None
    ensure_table(catalog, tables.curated_errors, CURATED_ERRORS_SCHEMA,
                 CURATED_ERRORS_PARTITION_SPEC)
    properties = {errors_rebuild_property(tables.topic): staging.rebuild_id}
    if watermark is not None:
        properties[watermark_key(watermark_name)] = str(watermark)

    def once() -> None:
        errors = catalog.load_table(tables.curated_errors)
        with errors.transaction() as tx:
            if errors.current_snapshot() is not None:
                tx.delete(EqualTo("topic_name", tables.topic))
            target = tx.table_metadata.schema().as_arrow()
            tx.append(rows.select(target.names).cast(target), snapshot_properties=properties)

    retry_commit(once)


# --- 5. the dated copy ------------------------------------------------------------------------
def _register_replaced_copy(catalog: Catalog, live: Table, staging: StagingTables) -> str | None:
    location = read_summary_value(live, REPLACED_METADATA_PROPERTY)
    if not location:
        return None
    if not catalog.table_exists(staging.replaced_copy):
        with contextlib.suppress(Exception):  # a concurrent rerun registered it first
            catalog.register_table(staging.replaced_copy, location)
    return ".".join(staging.replaced_copy)


def drop_replaced_copies(
    catalog: Catalog, namespace: str, *, older_than: dt.timedelta,
    now: dt.datetime | None = None,
) -> list[str]:
    """Drop the dated pre-rebuild copies older than ``older_than`` (catalog entries only: their
    files belong to the live table's history, which snapshot expiry manages)."""
    cutoff = (now or dt.datetime.now(dt.UTC)) - older_than
    pattern = re.compile(rf"^[a-z0-9_]+?{REPLACED_MARK}[0-9a-f]+_(\d{{14}})$")
    dropped = []
    for name in _list(catalog, namespace):
        match = pattern.match(name)
        if match and dt.datetime.strptime(match[1], _STAMP).replace(tzinfo=dt.UTC) < cutoff:
            with contextlib.suppress(NoSuchTableError):
                catalog.drop_table((namespace, name))
                dropped.append(f"{namespace}.{name}")
    return dropped


def rebuild_curated(
    catalog: Catalog,
    tables: TopicTables,
    schema: TopicSchema,
    *,
    pii_key: bytes,
    replaced_version: str | None = None,
    now: dt.datetime | None = None,
    snapshots_per_chunk: int = DEFAULT_SNAPSHOTS_PER_CHUNK,
    progress: Progress | None = None,
) -> RebuildResult:
    """Rebuild ``curated.<topic>`` (and the topic's Curated errors) from the whole Standardized
    history under ``schema`` (which must carry its ``version``) and swap it in (module
    docstring); resumable. Does not publish the schema: ``deploy_schema`` does."""
    if not schema.version:
        raise ValueError("the rebuild schema needs its content version (registry)")
    if snapshots_per_chunk < 1:
        raise ValueError("snapshots_per_chunk must be at least 1")
    report = progress or (lambda _message: None)
    now = now or dt.datetime.now(dt.UTC)
    staging, resumed = staging_for(catalog, tables, schema.version, now)
    result = RebuildResult(tables.topic, staging.rebuild_id, schema.version, replaced_version,
                           resumed=resumed)

    live = catalog.load_table(tables.curated) if catalog.table_exists(tables.curated) else None
    swapped = live is not None and read_summary_value(live, REBUILD_ID_PROPERTY) == (
        staging.rebuild_id
    )
    if not swapped:
        result.chunks = _stage(
            catalog, tables, staging, schema, pii_key=pii_key, now=now,
            snapshots_per_chunk=snapshots_per_chunk, progress=report,
        )
        result.steps.append(f"staged {'.'.join(staging.curated)} ({result.chunks} chunk(s))")
        equation = accountability.curated_equation(catalog, staging)
        if not equation.balanced:
            raise RebuildError(
                f"{tables.topic}: the rebuilt table does not balance over its history "
                f"({equation.as_dict()}); the live table is unchanged"
            )
        live = _swap_curated(catalog, tables, staging, schema, replaced_version)
        result.steps.append(f"swapped {'.'.join(tables.curated)}")
        report(f"{tables.topic}: swapped the rebuilt table into {'.'.join(tables.curated)}")
    assert live is not None
    errors_done = catalog.table_exists(tables.curated_errors) and read_summary_value(
        catalog.load_table(tables.curated_errors), errors_rebuild_property(tables.topic)
    ) == staging.rebuild_id
    if not errors_done:
        _swap_errors(catalog, tables, staging)
        result.steps.append(f"swapped the {tables.topic} rows of {'.'.join(tables.curated_errors)}")
    result.replaced_copy = _register_replaced_copy(catalog, live, staging)

    swap = next(
        s for s in ancestors_of(live.current_snapshot(), live.metadata)
        if s.summary is not None
        and s.summary.additional_properties.get(REBUILD_ID_PROPERTY) == staging.rebuild_id
    )
    result.swap_snapshot_id = swap.snapshot_id
    replaced = swap.summary.additional_properties.get(REPLACED_SNAPSHOT_PROPERTY)  # type: ignore[union-attr]
    result.replaced_snapshot_id = int(replaced) if replaced else None
    equation = accountability.curated_equation(catalog, tables)
    result.rows_read = equation.left
    result.curated_rows = equation.right["curated"]
    result.updates = equation.right["updates"]
    result.superseded = equation.right["superseded"]
    result.cde_error_rows = equation.right["cde_error_rows"]
    result.watermark = read_watermark(live, curate.STD_WATERMARK)
    result.balanced = equation.balanced
    return result


def drop_staging(catalog: Catalog, staging: StagingTables) -> None:
    """Remove a finished rebuild's staging tables and their files (the live table holds
    copies of their rows), key index segments included."""
    for identifier in staging.all():
        if not catalog.table_exists(identifier):
            continue
        table = catalog.load_table(identifier)
        index = KeyIndex.of(table, IDEMPOTENCY_KEY)
        for location in [*(index.segments if index else ()), *unreferenced_segments(table)]:
            with contextlib.suppress(OSError):
                table.io.delete(location)
        catalog.purge_table(identifier)


# --- deploy -----------------------------------------------------------------------------------
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
    pii_key: bytes = b"",
    now: dt.datetime | None = None,
    snapshots_per_chunk: int = DEFAULT_SNAPSHOTS_PER_CHUNK,
    progress: Progress | None = None,
) -> DeployOutcome:
    """Deploy ``tables.topic``'s source schema: classify, then evolve (compatible), refuse
    (breaking without ``rebuild``) or rebuild, and publish last, so no run sees a schema its
    table cannot hold."""
    topic = tables.topic
    source = registry.versioned_source(topic)
    deployed = registry.deployed(topic)
    changes = registry.changes(topic)
    breaking = breaking_changes(changes)
    if breaking and not rebuild:
        raise BreakingChangeError({topic: breaking})
    standardized = [c for c in breaking if c.kind in STANDARDIZED_KINDS]
    if standardized:
        raise BreakingChangeError({topic: [
            Change(c.kind, c.what, c.verdict,
                   c.reason + "; rebuilding Standardized from RAW is not implemented yet, so "
                   "this change cannot be deployed")
            for c in standardized
        ]})
    if not rebuild:
        evolution = evolve_curated(catalog, tables, source)
        result = registry.deploy(topic, now=now)
        return DeployOutcome(topic, result, changes, evolution=evolution)
    rebuilt = rebuild_curated(
        catalog, tables, source, pii_key=pii_key,
        replaced_version=deployed.version if deployed else None, now=now,
        snapshots_per_chunk=snapshots_per_chunk, progress=progress,
    )
    result = registry.deploy(topic, now=now, allow_breaking=True)
    drop_staging(catalog, StagingTables(topic, tables.namespace_prefix, rebuilt.rebuild_id))
    return DeployOutcome(topic, result, changes, rebuild=rebuilt)
