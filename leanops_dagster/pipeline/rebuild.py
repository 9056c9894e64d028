"""Deploying a topic schema: compatible changes evolve Curated, breaking ones need a rebuild.

``deploy_schema`` classifies the change (``schemas.compatibility``); a compatible change evolves
``curated.<topic>`` in one schema commit (``pipeline.evolve``) and then publishes the document;
a breaking change is refused (``BreakingChangeError``) unless ``rebuild=True``, which rebuilds
the topic from its history under the new schema and then publishes. A rebuild with no schema
change restates the tables under the current code (the way to recover from a bug fixed in a
rule).

**Rebuild** (``rebuild_topic``), each step resumable: killed anywhere, the same call continues
where the committed state says it stopped and ends with the same tables.

1. *Stage*: the ordinary layer runs (``standardize_topic``, ``curate_topic``) write into
   staging tables (``StagingTables``: ``<zone>.<topic>__rebuild_<version>_<started>`` and their
   own error and drift tables) from the whole upstream history, in chunks of
   ``snapshots_per_chunk`` upstream snapshots. The history read is a *replay* (``_replay``):
   a table holding the live upstream's current data files, appended again one snapshot per
   original append, sharing the files; the upstream's own snapshots would not do, since table
   maintenance expires them after its retention while the rows stay in the current files.
   Each chunk is a normal layer commit carrying its watermark, so a rerun continues after the
   last committed chunk (progress is reported per chunk). Curated is staged from the live
   Standardized history; after a breaking change of the Standardized schema (or
   ``from_raw``) Standardized is first staged from the whole RAW history and Curated from that
   staged Standardized. The staged tables are exactly what a
   fresh pipeline under the new schema builds: the same code over the same rows.
2. *Check*: each staged table's accountability equation over the whole history
   (``accountability``) must balance, else nothing is swapped.
3. *Swap*, atomically, per table (Standardized first when rebuilt, then Curated): ONE commit on
   the live table holds the schema change (columns added, dropped, retyped under a new field
   id, reordered to the staged schema), an ``overwrite`` snapshot that removes every live data
   file and adds the staged rows (written for the live table's field ids, with a full key
   index), and the staged watermark and running totals in its summary. A reader loads the
   table's metadata pointer from the catalog, which one commit moves from the old metadata to
   the new (SQL: one conditional UPDATE; Glue and REST: one conditional commit), so it reads
   the old table or the new one, never a mix or nothing. Not ``catalog.rename_table``: old ->
   dated, new -> live are two catalog operations (a reader between them finds no table, a
   crash between them leaves none) and Glue has no rename. The commit also lists the replaced
   schema version in the table property ``leanops.schema.superseded-versions``, so a layer run
   still on it (in flight, or started before the new version is published) is refused instead
   of writing old semantics. Watermarks and error rows of the staged tables name replay or
   staging snapshots, which do not survive the rebuild: the swaps rewrite them to the live
   upstream snapshot they stand for (the one the replay copied, or the Standardized swap).
4. *Swap error rows*: one commit per shared error table (``parse_errors``, ``curated.errors``)
   deletes the topic's rows and appends the staged ones with the staged errors watermark.
   Another table, so another commit: a Curated run between the two commits is harmless (it
   reads from the older of its two watermarks, and the swap replaces all of the topic's rows),
   and once a table is swapped no run of the replaced version writes to it.
5. The tables as they were stay readable under dated names,
   ``<zone>.<topic>__replaced_<version>_<started>``, registered on a copy of the pre-swap
   metadata with a location of its own (no data copied; maintenance of the copy cannot touch
   the live table's files); the table maintenance job drops such copies after its snapshot retention
   (``drop_replaced_copies``). The pre-swap snapshot also stays in the live table's history
   until maintenance expires it.

Then ``deploy_schema`` publishes the schema and drops the staging tables; the next runs
continue incrementally from the rebuilt tables' watermarks. ``deploy_schema`` holds the topic's
Curated lease (and Standardized lease, from RAW) for the whole rebuild, so the topic's regular
runs are no-ops meanwhile (``pipeline.exclusive``) and their input waits upstream; the staging
runs take no lease. The superseded versions guard the runs that outlive a lease (an expired
one taken over).

Memory: a swap reads the staged table into memory once to write it for the live table, so a
rebuild needs memory for the topic's largest rebuilt table.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError, TableAlreadyExistsError
from pyiceberg.expressions import EqualTo
from pyiceberg.manifest import DataFile, ManifestContent
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC
from pyiceberg.schema import Schema
from pyiceberg.serializers import FromInputFile, ToOutputFile
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot, ancestors_of

from leanops_dagster import accountability, constants
from leanops_dagster.constants import (
    IDEMPOTENCY_KEY,
    MESSAGE_ID,
    METADATA_COLUMNS,
    RAW_SNAPSHOT_ID,
    RAW_WATERMARK,
    REBUILD_ID_PROPERTY,
    REPLACED_METADATA_PROPERTY,
    REPLACED_SNAPSHOT_PROPERTY,
    REPLACED_VERSION_PROPERTY,
    REPLAY_OF_PROPERTY,
    SCHEMA_VERSION_PROPERTY,
    STANDARDIZED_SNAPSHOT_ID,
    STD_WATERMARK,
    SUPERSEDED_VERSIONS_PROPERTY,
    TOPIC_NAME,
    TOTAL_PROPERTY_PREFIX,
    curated_partition_spec,
    errors_rebuild_property,
    errors_watermark_name,
    parse_errors_rebuild_property,
    parse_errors_watermark_name,
    watermark_key,
)
from leanops_dagster.iceberg.catalog import ensure_table, schema_from_arrow
from leanops_dagster.iceberg.commit import retry_commit
from leanops_dagster.iceberg.datafiles import write_data_files
from leanops_dagster.iceberg.key_index import KeyIndex, unreferenced_segments, updated_index
from leanops_dagster.iceberg.lease import (
    DEFAULT_TTL_S,
    LeaseHeld,
    TableLeases,
    keep_alive,
    lease_name,
    new_holder_id,
)
from leanops_dagster.iceberg.reads import cast_to
from leanops_dagster.iceberg.state import read_state, stage_state
from leanops_dagster.iceberg.tables import (
    CURATED_ERRORS_PARTITION_SPEC,
    CURATED_ERRORS_SCHEMA,
    DRIFT_LOG_PARTITION_SPEC,
    DRIFT_LOG_SCHEMA,
    PARSE_ERRORS_PARTITION_SPEC,
    PARSE_ERRORS_SCHEMA,
)
from leanops_dagster.iceberg.watermarks import (
    read_summary_value,
    read_watermark,
    snapshot_position,
)
from leanops_dagster.pipeline import curate, standardize
from leanops_dagster.pipeline.evolve import (
    EvolveResult,
    evolve_curated,
    is_promotion,
    superseded_versions,
)
from leanops_dagster.pipeline.layout import Identifier, TopicTables
from leanops_dagster.schemas.compatibility import (
    BreakingChangeError,
    Change,
    affects_standardized,
    breaking_changes,
)
from leanops_dagster.schemas.models import TopicSchema
from leanops_dagster.schemas.registry import DeployResult, SchemaRegistry

REBUILD_MARK = "__rebuild_"
REPLACED_MARK = "__replaced_"
FROM_RAW_SUFFIX = "r"  # ends the id of a rebuild that starts from RAW
DEFAULT_SNAPSHOTS_PER_CHUNK = 50
DEFAULT_LEASE_WAIT_S = 600.0
_STAMP = "%Y%m%d%H%M%S"

Progress = Callable[[str], None]


class RebuildError(RuntimeError):
    """A rebuilt table failed its check; the live tables were not touched."""


@dataclass(frozen=True)
class StagingTables(TopicTables):
    """The tables a rebuild builds: the layer runs write here instead of the live tables.
    The upstream of the first rebuilt layer is a *replay* of the live upstream's current data
    files (``_replay``); ``standardized`` and ``parse_errors`` are staged too when the rebuild
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
        """From RAW: the replay of RAW's current files (``_replay``); else the live RAW."""
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


@dataclass
class RebuildResult:
    topic: str
    rebuild_id: str
    schema_version: str
    replaced_version: str | None
    from_raw: bool = False
    #: Standardized rows the rebuilt table accounts for (its whole history up to the watermark)
    rows_read: int = 0
    curated_rows: int = 0
    updates: int = 0
    superseded: int = 0
    cde_error_rows: int = 0
    #: rows the safety net quarantined (``internal:<Exception>`` error rows), Curated
    quarantined: int = 0
    #: from RAW only: RAW rows the rebuilt Standardized accounts for, its rows, parse errors
    raw_rows_read: int = 0
    standardized_rows: int = 0
    parse_errors: int = 0
    duplicates: int = 0
    watermark: int | None = None
    #: chunks committed by this call (0 when a rerun found the staging tables complete)
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
    catalog: Catalog, tables: TopicTables, version: str, now: dt.datetime, *,
    from_raw: bool = False,
) -> tuple[StagingTables, bool]:
    """The unfinished rebuild of ``version`` (same mode) to resume, found by its staging
    Curated table, else a new one stamped ``now``; True when resuming."""
    suffix = FROM_RAW_SUFFIX if from_raw else ""
    prefix = f"{tables.topic}{REBUILD_MARK}{version}_"
    pattern = re.compile(rf"^{re.escape(prefix)}(\d{{14}}){suffix}$")
    names = _list(catalog, tables.curated[0])
    started = sorted(m[1] for name in names if (m := pattern.match(name)))
    stamp = started[-1] if started else now.astimezone(dt.UTC).strftime(_STAMP)
    staging = StagingTables(tables.topic, tables.namespace_prefix, f"{version}_{stamp}{suffix}")
    return staging, bool(started)


# --- 1. stage ---------------------------------------------------------------------------------
def _as_of(table: Table, snapshot_id: int) -> Table:
    """``table`` as if ``snapshot_id`` were its current snapshot (a read-only view)."""
    metadata = table.metadata.model_copy(update={"current_snapshot_id": snapshot_id})
    return Table(table.name(), metadata, table.metadata_location, table.io, table.catalog,
                 table.config)


class _UpstreamUpTo:
    """A catalog whose table ``identifier`` stops at one snapshot, so one layer run consumes
    one chunk of its history; everything else is the real catalog."""

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


@dataclass(frozen=True)
class _Layer:
    """One layer as the staging loop sees it: its upstream table, its staged table and error
    table with their watermarks, and one run of it on a catalog."""

    name: str
    upstream: Identifier
    table: Identifier
    watermark: str
    errors: Identifier
    errors_watermark: str
    run: Callable[[Catalog], Any]
    describe: Callable[[Any], str]


def _replay(catalog: Catalog, source_id: Identifier, replay_id: Identifier) -> int | None:
    """A table holding exactly ``source_id``'s current data files, appended again one snapshot
    per original data sequence number (oldest first), sharing the files: no data is copied.
    Returns the source snapshot replayed (None: no source data); built once, reused on resume.

    Why not the source's own snapshots: table maintenance expires snapshots older than its
    retention, so a table's append history stops being complete after a week, while its data
    files (compacted or not) still hold every row. The replay restores a complete, ordered
    history for the staging runs to read in chunks."""
    if not catalog.table_exists(source_id):
        return None
    source = catalog.load_table(source_id)
    if catalog.table_exists(replay_id):
        replay = catalog.load_table(replay_id)
        at = int(replay.properties[REPLAY_OF_PROPERTY])
    else:
        current = source.current_snapshot()
        if current is None:
            return None
        at = current.snapshot_id
        ensure_table(catalog, replay_id, source.schema(), source.spec(),
                     properties={REPLAY_OF_PROPERTY: str(at)})
        replay = catalog.load_table(replay_id)
        if int(replay.properties[REPLAY_OF_PROPERTY]) != at:  # lost a creation race
            at = int(replay.properties[REPLAY_OF_PROPERTY])
    if replay.current_snapshot() is not None:
        return at

    def ids(table: Table) -> list[tuple[int, str, str]]:
        return [(f.field_id, f.name, str(f.field_type)) for f in table.schema().fields]

    if ids(replay) != ids(source):
        raise RebuildError(
            f"cannot replay {'.'.join(source_id)}: its field ids are not in column order"
        )
    groups: dict[int, list[DataFile]] = {}
    for manifest in source.snapshot_by_id(at).manifests(source.io):  # type: ignore[union-attr]
        if manifest.content != ManifestContent.DATA:
            raise RebuildError(f"cannot replay {'.'.join(source_id)}: it has delete files")
        for entry in manifest.fetch_manifest_entry(source.io, discard_deleted=True):
            if entry.data_file.spec_id != replay.spec().spec_id:
                raise RebuildError(
                    f"cannot replay {'.'.join(source_id)}: a file of partition spec "
                    f"{entry.data_file.spec_id}"
                )
            groups.setdefault(entry.sequence_number or 0, []).append(entry.data_file)
    with replay.transaction() as tx:  # one commit: the replay exists whole or not at all
        for sequence in sorted(groups):
            with tx.update_snapshot().fast_append() as append:
                for data_file in sorted(groups[sequence], key=lambda f: f.file_path):
                    append.append_data_file(data_file)
    return at


def _replayed(catalog: Catalog, replay_id: Identifier) -> int | None:
    if not catalog.table_exists(replay_id):
        return None
    value = catalog.load_table(replay_id).properties.get(REPLAY_OF_PROPERTY)
    return int(value) if value else None


def _stage(catalog: Catalog, layer: _Layer, *, snapshots_per_chunk: int,
           progress: Progress) -> int:
    """Run ``layer`` into its staging tables over the whole upstream history, one chunk of
    upstream snapshots per commit; returns the chunks committed by this call."""
    if not catalog.table_exists(layer.upstream):
        return 0
    upstream = catalog.load_table(layer.upstream)
    ids = [sid for sid, _ in sorted(snapshot_position(upstream).items(), key=lambda i: i[1])]
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
        result = layer.run(_UpstreamUpTo(catalog, layer.upstream, end))  # type: ignore[arg-type]
        chunks += 1
        progress(
            f"rebuild {layer.name} chunk {chunks}: upstream snapshots {positions[end] + 1}/"
            f"{len(ids)}, {layer.describe(result)}"
        )


def _standardized_layer(
    catalog: Catalog, tables: TopicTables, staging: StagingTables, schema: TopicSchema,
    now: dt.datetime,
) -> _Layer:
    return _Layer(
        name="Standardized", upstream=staging.raw, table=staging.standardized,
        watermark=RAW_WATERMARK, errors=staging.parse_errors,
        errors_watermark=parse_errors_watermark_name(tables.topic),
        # no lease: the rebuild itself holds the topic's leases (``deploy_schema``)
        run=lambda view: standardize.standardize_topic(
            view, staging, schema, now=now, lease_ttl_s=None),
        describe=lambda r: (f"RAW rows read {r.rows_read}, written {r.rows_written}, parse "
                            f"errors {r.parse_errors}, duplicates {r.duplicates}"),
    )


def _curated_layer(
    catalog: Catalog, tables: TopicTables, staging: StagingTables, schema: TopicSchema,
    pii_key: bytes, now: dt.datetime,
) -> _Layer:
    return _Layer(
        name="Curated", upstream=staging.standardized, table=staging.curated,
        watermark=STD_WATERMARK, errors=staging.curated_errors,
        errors_watermark=errors_watermark_name(tables.topic),
        run=lambda view: curate.curate_topic(
            view, staging, schema, pii_key=pii_key, now=now, lease_ttl_s=None),
        describe=lambda r: (f"Standardized rows read {r.rows_read}, inserted {r.inserted}, "
                            f"updated {r.updated}, CDE error rows {r.cde_error_rows}"),
    )


def _check(equation: accountability.Equation, what: str) -> None:
    if not equation.balanced:
        raise RebuildError(
            f"the rebuilt {what} does not balance over its history ({equation.as_dict()}); "
            "the live tables are unchanged"
        )


# --- 3. swap a table --------------------------------------------------------------------------
def _reshape_schema(update: Any, current: Schema, target: Schema) -> None:
    """Make the table's columns exactly ``target``'s (order: the next step)."""
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


def _order_columns(update: Any, names: list[str]) -> None:
    """``names``' order (a second schema update of the same transaction: pyiceberg cannot
    move a column re-added under a deleted one's name in the update that added it)."""
    update.move_first(names[0])
    for before, name in itertools.pairwise(names):
        update.move_after(name, before)


def _swap_table(
    catalog: Catalog, live_id: Identifier, rows: pa.Table, target: Schema, *,
    key_column: str, properties: dict[str, str], new_spec: Callable[[Schema], Any],
    supersede: str | None,
) -> Table:
    """ONE commit on ``live_id``: its schema becomes ``target``, every data file is replaced
    by ``rows`` (with a full key index of ``key_column``), ``properties`` ride on the
    snapshot, and ``supersede`` (a schema version) joins the superseded versions."""
    if not catalog.table_exists(live_id):
        ensure_table(catalog, live_id, target, new_spec(target))

    def once() -> Table:
        live = catalog.load_table(live_id)
        if _swap_snapshot(live, properties[REBUILD_ID_PROPERTY]) is not None:
            return live  # a concurrent run of the same rebuild swapped it first
        replaced = live.current_snapshot()
        old_files = [task.file for task in live.scan().plan_files()] if replaced else []
        commit_uuid = uuid.uuid4()
        with live.transaction() as tx:
            with tx.update_schema() as update:
                _reshape_schema(update, tx.table_metadata.schema(), target)
            with tx.update_schema() as update:
                _order_columns(update, target.column_names)
            metadata = tx.table_metadata
            written = write_data_files(
                metadata, live.io, cast_to(rows, metadata.schema().as_arrow()),
                write_uuid=commit_uuid, index_column=key_column,
            )
            index = updated_index(live, key_column, None, [], written.entries)
            summary = {
                **properties,
                REPLACED_SNAPSHOT_PROPERTY: str(replaced.snapshot_id) if replaced else "",
                REPLACED_METADATA_PROPERTY: live.metadata_location if replaced else "",
                **index.property(),
            }
            snapshot = tx.update_snapshot(snapshot_properties=summary)
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
            stage_state(tx, summary, restate=True)
            if supersede:
                versions = sorted(superseded_versions(live) | {supersede})
                tx.set_properties({SUPERSEDED_VERSIONS_PROPERTY: ",".join(versions)})
        return catalog.load_table(live_id)

    return retry_commit(once)


def _carried(staged: Table, watermark: str) -> dict[str, str]:
    """The staged table's watermark and every running total (``leanops.total.*``, newest
    value of each), for the live table's swap."""
    keys = {watermark_key(watermark)}
    keys |= {k for k in staged.properties if k.startswith(TOTAL_PROPERTY_PREFIX)}
    for snapshot in ancestors_of(staged.current_snapshot(), staged.metadata):
        if snapshot.summary is not None:
            keys |= {k for k in snapshot.summary.additional_properties
                     if k.startswith(TOTAL_PROPERTY_PREFIX)}
    return {key: value for key in sorted(keys)
            if (value := read_state(staged, key)) is not None}


def _swap_snapshot(table: Table, rebuild_id: str) -> Snapshot | None:
    """The snapshot of ``table`` a rebuild's swap committed (None: not swapped yet)."""
    for snapshot in ancestors_of(table.current_snapshot(), table.metadata):
        if (snapshot.summary is not None
                and snapshot.summary.additional_properties.get(REBUILD_ID_PROPERTY) == rebuild_id):
            return snapshot
    return None


def _swapped(catalog: Catalog, live_id: Identifier, rebuild_id: str) -> Snapshot | None:
    if not catalog.table_exists(live_id):
        return None
    return _swap_snapshot(catalog.load_table(live_id), rebuild_id)


def _supersede(schema: TopicSchema, replaced_version: str | None) -> str | None:
    return replaced_version if replaced_version and replaced_version != schema.version else None


def _swap_standardized(
    catalog: Catalog, tables: TopicTables, staging: StagingTables, schema: TopicSchema,
    replaced_version: str | None,
) -> Table:
    if catalog.table_exists(staging.standardized):
        staged = catalog.load_table(staging.standardized)
        rows, target, spec = staged.scan().to_arrow(), staged.schema(), staged.spec()
        carried = _carried(staged, RAW_WATERMARK)
        raw_at = _replayed(catalog, staging.raw)
        if raw_at is not None:  # the staged watermark names a replay snapshot: the live one
            carried[watermark_key(RAW_WATERMARK)] = str(raw_at)
    else:  # no RAW yet: an empty table of the metadata columns
        arrow = schema.curated.arrow_schema().empty_table().select(list(METADATA_COLUMNS))
        target = schema_from_arrow(arrow.schema)
        rows, spec, carried = arrow, UNPARTITIONED_PARTITION_SPEC, {}
    return _swap_table(
        catalog, tables.standardized, rows, target, key_column=MESSAGE_ID,
        properties={**carried, SCHEMA_VERSION_PROPERTY: str(schema.version),
                    REBUILD_ID_PROPERTY: staging.rebuild_id,
                    REPLACED_VERSION_PROPERTY: replaced_version or ""},
        new_spec=lambda _schema: spec, supersede=_supersede(schema, replaced_version),
    )


def _swap_curated(
    catalog: Catalog, tables: TopicTables, staging: StagingTables, schema: TopicSchema,
    replaced_version: str | None, standardized_at: int | None = None,
) -> Table:
    """``standardized_at``: the live Standardized snapshot the Curated watermark must name
    (``_standardized_at``)."""
    staged = catalog.load_table(staging.curated)
    carried = _carried(staged, STD_WATERMARK)
    if standardized_at is not None:
        carried[watermark_key(STD_WATERMARK)] = str(standardized_at)
    return _swap_table(
        catalog, tables.curated, staged.scan().to_arrow(),
        schema_from_arrow(schema.curated.arrow_schema()), key_column=IDEMPOTENCY_KEY,
        properties={**carried, SCHEMA_VERSION_PROPERTY: str(schema.version),
                    REBUILD_ID_PROPERTY: staging.rebuild_id,
                    REPLACED_VERSION_PROPERTY: replaced_version or ""},
        new_spec=curated_partition_spec, supersede=_supersede(schema, replaced_version),
    )


# --- 4. swap error rows -----------------------------------------------------------------------
def _swap_error_rows(
    catalog: Catalog, topic: str, live_id: Identifier, staged_id: Identifier, *,
    table_schema: Schema, spec: Any, watermark_name: str, marker: str, rebuild_id: str,
    remap: tuple[str, int] | None = None,
) -> None:
    """One commit on the shared error table: delete ``topic``'s rows, append the staged ones
    with the staged watermark. ``remap``: (column, snapshot id) written into every staged
    row's upstream snapshot column and the watermark (a rebuild from RAW)."""
    arrow = table_schema.as_arrow()
    if catalog.table_exists(staged_id):
        staged = catalog.load_table(staged_id)
        rows = staged.scan(row_filter=EqualTo(TOPIC_NAME, topic)).to_arrow()
        watermark = read_watermark(staged, watermark_name)
    else:
        rows, watermark = arrow.empty_table(), None
    if remap is not None:
        column, snapshot_id = remap
        rows = rows.set_column(rows.column_names.index(column), column,
                               pa.array([snapshot_id] * rows.num_rows, pa.int64()))
        watermark = snapshot_id
    ensure_table(catalog, live_id, table_schema, spec)
    properties = {marker: rebuild_id}
    if watermark is not None:
        properties[watermark_key(watermark_name)] = str(watermark)

    def once() -> None:
        errors = catalog.load_table(live_id)
        if read_summary_value(errors, marker) == rebuild_id:
            return  # a concurrent run of the same rebuild swapped them first
        with errors.transaction() as tx:
            mine = EqualTo(TOPIC_NAME, topic)
            if any(True for _ in errors.scan(row_filter=mine).plan_files()):
                tx.delete(mine)
            target = tx.table_metadata.schema().as_arrow()
            tx.append(rows.select(target.names).cast(target), snapshot_properties=properties)
            stage_state(tx, properties)

    retry_commit(once)


def _error_rows_swapped(catalog: Catalog, live_id: Identifier, marker: str,
                        rebuild_id: str) -> bool:
    return catalog.table_exists(live_id) and read_summary_value(
        catalog.load_table(live_id), marker) == rebuild_id


# --- 5. the dated copies ----------------------------------------------------------------------
def _register_replaced_copy(
    catalog: Catalog, live: Table, swap: Snapshot, copy: Identifier
) -> str | None:
    """Register ``copy`` on the pre-swap metadata of ``live``, rewritten with a location of
    its own: the copy reads the old snapshots and data files, while table maintenance of the
    copy (orphan key index segments are found by listing ``<location>/metadata``) can never
    delete the live table's files."""
    location = (swap.summary.additional_properties.get(REPLACED_METADATA_PROPERTY)
                if swap.summary else None)
    if not location or catalog.table_exists(copy):
        return ".".join(copy) if location else None
    old = FromInputFile.table_metadata(live.io.new_input(location))
    own = f"{live.location().rstrip('/')}{REPLACED_MARK}{copy[-1].rsplit(REPLACED_MARK, 1)[1]}"
    path = f"{own}/metadata/00000-{uuid.uuid4()}.metadata.json"
    ToOutputFile.table_metadata(old.model_copy(update={"location": own}), live.io.new_output(path))
    with contextlib.suppress(TableAlreadyExistsError):  # a concurrent rerun was first
        catalog.register_table(copy, path)
    return ".".join(copy)


def drop_replaced_copies(
    catalog: Catalog, namespace: str, *, older_than: dt.timedelta,
    now: dt.datetime | None = None,
) -> list[str]:
    """Drop the dated pre-rebuild copies older than ``older_than`` (catalog entries only: their
    files belong to the live table's history, which snapshot expiry manages)."""
    cutoff = (now or dt.datetime.now(dt.UTC)) - older_than
    pattern = re.compile(
        rf"^[a-z0-9_]+?{REPLACED_MARK}[0-9a-f]+_(\d{{14}}){FROM_RAW_SUFFIX}?$"
    )
    dropped = []
    for name in _list(catalog, namespace):
        match = pattern.match(name)
        if match and dt.datetime.strptime(match[1], _STAMP).replace(tzinfo=dt.UTC) < cutoff:
            with contextlib.suppress(NoSuchTableError):
                catalog.drop_table((namespace, name))
                dropped.append(f"{namespace}.{name}")
    return dropped


def rebuild_topic(
    catalog: Catalog,
    tables: TopicTables,
    schema: TopicSchema,
    *,
    pii_key: bytes,
    from_raw: bool = False,
    replaced_version: str | None = None,
    now: dt.datetime | None = None,
    snapshots_per_chunk: int = DEFAULT_SNAPSHOTS_PER_CHUNK,
    progress: Progress | None = None,
) -> RebuildResult:
    """Rebuild ``curated.<topic>`` and the topic's Curated errors from the whole Standardized
    history under ``schema`` (which must carry its ``version``), or, ``from_raw``, first
    ``standardized.<topic>`` and its parse errors from the whole RAW history; then swap them
    in (module docstring). Resumable. Does not publish the schema: ``deploy_schema`` does."""
    if not schema.version:
        raise ValueError("the rebuild schema needs its content version (registry)")
    if snapshots_per_chunk < 1:
        raise ValueError("snapshots_per_chunk must be at least 1")
    report = progress or (lambda _message: None)
    now = now or dt.datetime.now(dt.UTC)
    staging, resumed = staging_for(catalog, tables, schema.version, now, from_raw=from_raw)
    if resumed and _finished(catalog, tables, staging):
        # killed after its swaps (before its staging was dropped): this call is a new
        # rebuild, e.g. a restatement after a rule fix, so it must not skip the swaps
        drop_staging(catalog, staging)
        staging, resumed = staging_for(catalog, tables, schema.version, now, from_raw=from_raw)
    curated_schema = schema_from_arrow(schema.curated.arrow_schema())
    # the staging Curated table exists from the start: it is how a rerun finds this rebuild
    ensure_table(catalog, staging.curated, curated_schema, curated_partition_spec(curated_schema))
    result = RebuildResult(tables.topic, staging.rebuild_id, schema.version, replaced_version,
                           from_raw=from_raw, resumed=resumed)
    chunk = {"snapshots_per_chunk": snapshots_per_chunk, "progress": report}

    std_swap = _swapped(catalog, tables.standardized, staging.rebuild_id) if from_raw else None
    if _swapped(catalog, tables.curated, staging.rebuild_id) is None:
        if not from_raw:
            _replay(catalog, tables.standardized, staging.standardized)
        if from_raw and std_swap is None:
            _replay(catalog, tables.raw, staging.raw)
            layer = _standardized_layer(catalog, tables, staging, schema, now)
            result.chunks += _stage(catalog, layer, **chunk)
            _check(accountability.post_raw_equation(catalog, staging), "Standardized table")
        result.chunks += _stage(
            catalog, _curated_layer(catalog, tables, staging, schema, pii_key, now), **chunk
        )
        _check(accountability.curated_equation(catalog, staging), "Curated table")
        result.steps.append(f"staged {'.'.join(staging.curated)} ({result.chunks} chunk(s))")
        if from_raw and std_swap is None:
            live_std = _swap_standardized(catalog, tables, staging, schema, replaced_version)
            std_swap = _swap_snapshot(live_std, staging.rebuild_id)
            result.steps.append(f"swapped {'.'.join(tables.standardized)}")
            report(f"{tables.topic}: swapped the rebuilt table into "
                   f"{'.'.join(tables.standardized)}")
        if from_raw:
            _swap_parse_errors(catalog, tables, staging)
        _swap_curated(catalog, tables, staging, schema, replaced_version,
                      _standardized_at(catalog, staging, std_swap))
        result.steps.append(f"swapped {'.'.join(tables.curated)}")
        report(f"{tables.topic}: swapped the rebuilt table into {'.'.join(tables.curated)}")
    if from_raw:
        _swap_parse_errors(catalog, tables, staging)
    if not _error_rows_swapped(catalog, tables.curated_errors,
                               errors_rebuild_property(tables.topic), staging.rebuild_id):
        _swap_error_rows(
            catalog, tables.topic, tables.curated_errors, staging.curated_errors,
            table_schema=CURATED_ERRORS_SCHEMA, spec=CURATED_ERRORS_PARTITION_SPEC,
            watermark_name=errors_watermark_name(tables.topic),
            marker=errors_rebuild_property(tables.topic), rebuild_id=staging.rebuild_id,
            remap=(STANDARDIZED_SNAPSHOT_ID, std_at)
            if (std_at := _standardized_at(catalog, staging, std_swap)) is not None else None,
        )
        result.steps.append(f"swapped the {tables.topic} rows of "
                            f"{'.'.join(tables.curated_errors)}")
    _carry_new_drift(catalog, tables, staging, _standardized_at(catalog, staging, std_swap))

    live = catalog.load_table(tables.curated)
    swap = _swap_snapshot(live, staging.rebuild_id)
    assert swap is not None and swap.summary is not None
    result.replaced_copy = _register_replaced_copy(
        catalog, live, swap, staging.replaced_copy(constants.CURATED_ZONE))
    if std_swap is not None:
        _register_replaced_copy(
            catalog, catalog.load_table(tables.standardized), std_swap,
            staging.replaced_copy(constants.STANDARDIZED_ZONE))
    result.swap_snapshot_id = swap.snapshot_id
    replaced = swap.summary.additional_properties.get(REPLACED_SNAPSHOT_PROPERTY)
    result.replaced_snapshot_id = int(replaced) if replaced else None
    equation = accountability.curated_equation(catalog, tables)
    result.rows_read = equation.left
    result.curated_rows = equation.right["curated"]
    result.updates = equation.right["updates"]
    result.superseded = equation.right["superseded"]
    result.cde_error_rows = equation.right["cde_error_rows"]
    result.quarantined = equation.right.get("quarantined", 0)
    result.watermark = read_watermark(live, STD_WATERMARK)
    result.balanced = equation.balanced
    if from_raw:
        post_raw = accountability.post_raw_equation(catalog, tables)
        result.raw_rows_read = post_raw.left
        result.standardized_rows = post_raw.right["standardized"]
        result.parse_errors = post_raw.right["parse_errors"]
        result.duplicates = post_raw.right["duplicates"]
        result.balanced = result.balanced and post_raw.balanced
    return result


def _carry_new_drift(
    catalog: Catalog, tables: TopicTables, staging: StagingTables, std_at: int | None
) -> None:
    """The drift the rebuilt history shows that the live drift log has not recorded (e.g.
    in rows a recovery read for the first time), appended as the layer logs drift: once per
    column and topic. Resumable: a rerun finds those columns logged."""
    if not catalog.table_exists(staging.drift_log):
        return
    staged = catalog.load_table(staging.drift_log).scan(
        row_filter=EqualTo(TOPIC_NAME, tables.topic)).to_arrow()
    if staged.num_rows == 0:
        return
    log = ensure_table(catalog, tables.drift_log, DRIFT_LOG_SCHEMA, DRIFT_LOG_PARTITION_SPEC)

    def once() -> None:
        live = catalog.load_table(tables.drift_log)
        known = set() if live.current_snapshot() is None else set(live.scan(
            row_filter=EqualTo(TOPIC_NAME, tables.topic), selected_fields=("column_name",),
        ).to_arrow().column("column_name").to_pylist())
        new = staged.filter(pc.invert(pc.is_in(
            staged["column_name"], pa.array(sorted(known), pa.string()))))
        if new.num_rows:
            if std_at is not None:  # staging snapshots do not survive the rebuild
                new = new.set_column(
                    new.column_names.index(STANDARDIZED_SNAPSHOT_ID), STANDARDIZED_SNAPSHOT_ID,
                    pa.array([std_at] * new.num_rows, pa.int64()))
            target = log.schema().as_arrow()
            live.append(new.select(target.names).cast(target))

    retry_commit(once)


def _standardized_at(
    catalog: Catalog, staging: StagingTables, std_swap: Snapshot | None
) -> int | None:
    """The live Standardized snapshot the rebuilt Curated consumed up to: the Standardized
    swap (from RAW) or the snapshot the replay copied; the staged watermark and error rows
    name staging snapshots, which do not survive the rebuild."""
    if std_swap is not None:
        return std_swap.snapshot_id
    return None if staging.from_raw else _replayed(catalog, staging.standardized)


def _finished(catalog: Catalog, tables: TopicTables, staging: StagingTables) -> bool:
    """Every swap of ``staging``'s rebuild is committed."""
    done = _swapped(catalog, tables.curated, staging.rebuild_id) is not None and (
        _error_rows_swapped(catalog, tables.curated_errors,
                            errors_rebuild_property(tables.topic), staging.rebuild_id))
    if staging.from_raw:
        done = done and _error_rows_swapped(
            catalog, tables.parse_errors, parse_errors_rebuild_property(tables.topic),
            staging.rebuild_id)
    return done


def _swap_parse_errors(catalog: Catalog, tables: TopicTables, staging: StagingTables) -> None:
    marker = parse_errors_rebuild_property(tables.topic)
    if _error_rows_swapped(catalog, tables.parse_errors, marker, staging.rebuild_id):
        return
    _swap_error_rows(
        catalog, tables.topic, tables.parse_errors, staging.parse_errors,
        table_schema=PARSE_ERRORS_SCHEMA, spec=PARSE_ERRORS_PARTITION_SPEC,
        watermark_name=parse_errors_watermark_name(tables.topic), marker=marker,
        rebuild_id=staging.rebuild_id,
        remap=(RAW_SNAPSHOT_ID, raw_at)
        if (raw_at := _replayed(catalog, staging.raw)) is not None else None,
    )


def drop_staging(catalog: Catalog, staging: StagingTables) -> None:
    """Remove a finished rebuild's staging tables and their files (the live tables hold
    copies of their rows), key index segments included."""
    for identifier in staging.all():
        if not catalog.table_exists(identifier):
            continue
        table = catalog.load_table(identifier)
        segments = [s for column in (IDEMPOTENCY_KEY, MESSAGE_ID)
                    if (index := KeyIndex.of(table, column)) for s in index.segments]
        for location in [*segments, *unreferenced_segments(table)]:
            with contextlib.suppress(OSError):
                table.io.delete(location)
        catalog.purge_table(identifier)
    for identifier in staging.replays():  # their files are the live upstream's: never purge
        with contextlib.suppress(NoSuchTableError):
            catalog.drop_table(identifier)


# --- leases -----------------------------------------------------------------------------------
@contextlib.contextmanager
def hold_topic(
    catalog: Catalog, tables: TopicTables, zones: tuple[str, ...], *, wait_s: float,
    ttl_s: float = DEFAULT_TTL_S,
) -> Iterator[None]:
    """Hold the topic's lease of each zone (renewed by a heartbeat, released at the end),
    waiting up to ``wait_s`` for a run holding one to finish."""
    holder = new_holder_id()
    with contextlib.ExitStack() as stack:
        for zone in zones:
            namespace = tables.standardized[0] if zone == constants.STANDARDIZED_ZONE else (
                tables.curated[0])
            leases = TableLeases(catalog, namespace)
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    lease = leases.acquire(lease_name(tables.topic, zone), holder, ttl_s)
                    break
                except LeaseHeld as held:
                    if time.monotonic() >= deadline:
                        raise RebuildError(
                            f"another run of {tables.topic} {zone} is in progress ({held}); "
                            "rerun the rebuild when it has finished"
                        ) from None
                    time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
            stack.enter_context(keep_alive(leases, lease, ttl_s))
        yield


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
    with hold_topic(catalog, tables, zones, wait_s=lease_wait_s):
        rebuilt = rebuild_topic(
            catalog, tables, source, pii_key=pii_key, from_raw=from_raw,
            replaced_version=deployed.version if deployed else None, now=now,
            snapshots_per_chunk=snapshots_per_chunk, progress=progress,
        )
        result = registry.deploy(topic, now=now, allow_breaking=True)
    drop_staging(catalog, StagingTables(topic, tables.namespace_prefix, rebuilt.rebuild_id))
    return DeployOutcome(topic, result, changes, rebuild=rebuilt)
