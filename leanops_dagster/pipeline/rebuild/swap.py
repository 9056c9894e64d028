"""The swaps of a rebuild (``pipeline.rebuild`` steps 3 and 4): ONE commit per live table that
replaces its schema, its data files and its state with the staged ones, and one commit per
shared error table that replaces the topic's error rows."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import EqualTo
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot, ancestors_of

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
    SCHEMA_VERSION_PROPERTY,
    STANDARDIZED_SNAPSHOT_ID,
    STD_WATERMARK,
    SUPERSEDED_VERSIONS_PROPERTY,
    TOPIC_NAME,
    TOTAL_PROPERTY_PREFIX,
    curated_partition_spec,
    errors_rebuild_property,
    parse_errors_rebuild_property,
    parse_errors_watermark_name,
    watermark_key,
)
from leanops_dagster.iceberg.catalog import ensure_table, schema_from_arrow
from leanops_dagster.iceberg.commit import retry_commit
from leanops_dagster.iceberg.datafiles import write_data_files
from leanops_dagster.iceberg.key_index import updated_index
from leanops_dagster.iceberg.reads import cast_to
from leanops_dagster.iceberg.state import read_state, stage_state
from leanops_dagster.iceberg.tables import (
    DRIFT_LOG_PARTITION_SPEC,
    DRIFT_LOG_SCHEMA,
    PARSE_ERRORS_PARTITION_SPEC,
    PARSE_ERRORS_SCHEMA,
)
from leanops_dagster.iceberg.watermarks import (
    read_summary_value,
    read_watermark,
)
from leanops_dagster.pipeline.curated_evolution import (
    is_promotion,
    superseded_versions,
)
from leanops_dagster.pipeline.layout import Identifier, TopicTables
from leanops_dagster.pipeline.rebuild.replay import replayed
from leanops_dagster.pipeline.rebuild.staging import StagingTables
from leanops_dagster.schemas.models import TopicSchema


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



def swap_table(
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
        if swap_snapshot(live, properties[REBUILD_ID_PROPERTY]) is not None:
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



def swap_snapshot(table: Table, rebuild_id: str) -> Snapshot | None:
    """The snapshot of ``table`` a rebuild's swap committed (None: not swapped yet)."""
    for snapshot in ancestors_of(table.current_snapshot(), table.metadata):
        if (snapshot.summary is not None
                and snapshot.summary.additional_properties.get(REBUILD_ID_PROPERTY) == rebuild_id):
            return snapshot
    return None



def swapped(catalog: Catalog, live_id: Identifier, rebuild_id: str) -> Snapshot | None:
    if not catalog.table_exists(live_id):
        return None
    return swap_snapshot(catalog.load_table(live_id), rebuild_id)



def _supersede(schema: TopicSchema, replaced_version: str | None) -> str | None:
    return replaced_version if replaced_version and replaced_version != schema.version else None



def swap_standardized(
    catalog: Catalog, tables: TopicTables, staging: StagingTables, schema: TopicSchema,
    replaced_version: str | None,
) -> Table:
    if catalog.table_exists(staging.standardized):
        staged = catalog.load_table(staging.standardized)
        rows, target, spec = staged.scan().to_arrow(), staged.schema(), staged.spec()
        carried = _carried(staged, RAW_WATERMARK)
        raw_at = replayed(catalog, staging.raw)
        if raw_at is not None:  # the staged watermark names a replay snapshot: the live one
            carried[watermark_key(RAW_WATERMARK)] = str(raw_at)
    else:  # no RAW yet: an empty table of the metadata columns
        arrow = schema.curated.arrow_schema().empty_table().select(list(METADATA_COLUMNS))
        target = schema_from_arrow(arrow.schema)
        rows, spec, carried = arrow, UNPARTITIONED_PARTITION_SPEC, {}
    return swap_table(
        catalog, tables.standardized, rows, target, key_column=MESSAGE_ID,
        properties={**carried, SCHEMA_VERSION_PROPERTY: str(schema.version),
                    REBUILD_ID_PROPERTY: staging.rebuild_id,
                    REPLACED_VERSION_PROPERTY: replaced_version or ""},
        new_spec=lambda _schema: spec, supersede=_supersede(schema, replaced_version),
    )



def swap_curated(
    catalog: Catalog, tables: TopicTables, staging: StagingTables, schema: TopicSchema,
    replaced_version: str | None, standardized_at: int | None = None,
) -> Table:
    """``standardized_at``: the live Standardized snapshot the Curated watermark must name
    (``standardized_at``)."""
    staged = catalog.load_table(staging.curated)
    carried = _carried(staged, STD_WATERMARK)
    if standardized_at is not None:
        carried[watermark_key(STD_WATERMARK)] = str(standardized_at)
    return swap_table(
        catalog, tables.curated, staged.scan().to_arrow(),
        schema_from_arrow(schema.curated.arrow_schema()), key_column=IDEMPOTENCY_KEY,
        properties={**carried, SCHEMA_VERSION_PROPERTY: str(schema.version),
                    REBUILD_ID_PROPERTY: staging.rebuild_id,
                    REPLACED_VERSION_PROPERTY: replaced_version or ""},
        new_spec=curated_partition_spec, supersede=_supersede(schema, replaced_version),
    )



def swap_error_rows(
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



def error_rows_swapped(catalog: Catalog, live_id: Identifier, marker: str,
                        rebuild_id: str) -> bool:
    return catalog.table_exists(live_id) and read_summary_value(
        catalog.load_table(live_id), marker) == rebuild_id



def swap_parse_errors(catalog: Catalog, tables: TopicTables, staging: StagingTables) -> None:
    marker = parse_errors_rebuild_property(tables.topic)
    if error_rows_swapped(catalog, tables.parse_errors, marker, staging.rebuild_id):
        return
    swap_error_rows(
        catalog, tables.topic, tables.parse_errors, staging.parse_errors,
        table_schema=PARSE_ERRORS_SCHEMA, spec=PARSE_ERRORS_PARTITION_SPEC,
        watermark_name=parse_errors_watermark_name(tables.topic), marker=marker,
        rebuild_id=staging.rebuild_id,
        remap=(RAW_SNAPSHOT_ID, raw_at)
        if (raw_at := replayed(catalog, staging.raw)) is not None else None,
    )



def standardized_at(
    catalog: Catalog, staging: StagingTables, std_swap: Snapshot | None
) -> int | None:
    """The live Standardized snapshot the rebuilt Curated consumed up to: the Standardized
    swap (from RAW) or the snapshot the replay copied; the staged watermark and error rows
    name staging snapshots, which do not survive the rebuild."""
    if std_swap is not None:
        return std_swap.snapshot_id
    return None if staging.from_raw else replayed(catalog, staging.standardized)



def finished(catalog: Catalog, tables: TopicTables, staging: StagingTables) -> bool:
    """Every swap of ``staging``'s rebuild is committed."""
    done = swapped(catalog, tables.curated, staging.rebuild_id) is not None and (
        error_rows_swapped(catalog, tables.curated_errors,
                            errors_rebuild_property(tables.topic), staging.rebuild_id))
    if staging.from_raw:
        done = done and error_rows_swapped(
            catalog, tables.parse_errors, parse_errors_rebuild_property(tables.topic),
            staging.rebuild_id)
    return done


def carry_new_drift(
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
