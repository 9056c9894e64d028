"""One rebuild of a topic, its steps in order (``pipeline.rebuild``): stage, check, swap the
tables, swap the error rows, register the dated copies; resumable from the committed state."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pyiceberg.catalog import Catalog

from leanops_dagster import constants
from leanops_dagster.constants import (
    REPLACED_SNAPSHOT_PROPERTY,
    STANDARDIZED_SNAPSHOT_ID,
    STD_WATERMARK,
    curated_partition_spec,
    errors_rebuild_property,
    errors_watermark_name,
)
from leanops_dagster.iceberg.catalog import ensure_table, schema_from_arrow
from leanops_dagster.iceberg.tables import (
    CURATED_ERRORS_PARTITION_SPEC,
    CURATED_ERRORS_SCHEMA,
)
from leanops_dagster.iceberg.watermarks import (
    read_watermark,
)
from leanops_dagster.pipeline import accountability
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.rebuild.cleanup import drop_staging, register_replaced_copy
from leanops_dagster.pipeline.rebuild.replay import replay
from leanops_dagster.pipeline.rebuild.staging import (
    DEFAULT_SNAPSHOTS_PER_CHUNK,
    Progress,
    check_balanced,
    curated_layer,
    stage,
    staging_for,
    standardized_layer,
)
from leanops_dagster.pipeline.rebuild.swap import (
    carry_new_drift,
    error_rows_swapped,
    finished,
    standardized_at,
    swap_curated,
    swap_error_rows,
    swap_parse_errors,
    swap_snapshot,
    swap_standardized,
    swapped,
)
from leanops_dagster.schemas.models import TopicSchema


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
    if resumed and finished(catalog, tables, staging):
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

    std_swap = swapped(catalog, tables.standardized, staging.rebuild_id) if from_raw else None
    if swapped(catalog, tables.curated, staging.rebuild_id) is None:
        if not from_raw:
            replay(catalog, tables.standardized, staging.standardized)
        if from_raw and std_swap is None:
            replay(catalog, tables.raw, staging.raw)
            layer = standardized_layer(catalog, tables, staging, schema, now)
            result.chunks += stage(catalog, layer, **chunk)
            check_balanced(accountability.post_raw_equation(catalog, staging), "Standardized table")
        result.chunks += stage(
            catalog, curated_layer(catalog, tables, staging, schema, pii_key, now), **chunk
        )
        check_balanced(accountability.curated_equation(catalog, staging), "Curated table")
        result.steps.append(f"staged {'.'.join(staging.curated)} ({result.chunks} chunk(s))")
        if from_raw and std_swap is None:
            live_std = swap_standardized(catalog, tables, staging, schema, replaced_version)
            std_swap = swap_snapshot(live_std, staging.rebuild_id)
            result.steps.append(f"swapped {'.'.join(tables.standardized)}")
            report(f"{tables.topic}: swapped the rebuilt table into "
                   f"{'.'.join(tables.standardized)}")
        if from_raw:
            swap_parse_errors(catalog, tables, staging)
        swap_curated(catalog, tables, staging, schema, replaced_version,
                      standardized_at(catalog, staging, std_swap))
        result.steps.append(f"swapped {'.'.join(tables.curated)}")
        report(f"{tables.topic}: swapped the rebuilt table into {'.'.join(tables.curated)}")
    if from_raw:
        swap_parse_errors(catalog, tables, staging)
    if not error_rows_swapped(catalog, tables.curated_errors,
                               errors_rebuild_property(tables.topic), staging.rebuild_id):
        swap_error_rows(
            catalog, tables.topic, tables.curated_errors, staging.curated_errors,
            table_schema=CURATED_ERRORS_SCHEMA, spec=CURATED_ERRORS_PARTITION_SPEC,
            watermark_name=errors_watermark_name(tables.topic),
            marker=errors_rebuild_property(tables.topic), rebuild_id=staging.rebuild_id,
            remap=(STANDARDIZED_SNAPSHOT_ID, std_at)
            if (std_at := standardized_at(catalog, staging, std_swap)) is not None else None,
        )
        result.steps.append(f"swapped the {tables.topic} rows of "
                            f"{'.'.join(tables.curated_errors)}")
    carry_new_drift(catalog, tables, staging, standardized_at(catalog, staging, std_swap))

    live = catalog.load_table(tables.curated)
    swap = swap_snapshot(live, staging.rebuild_id)
    assert swap is not None and swap.summary is not None
    result.replaced_copy = register_replaced_copy(
        catalog, live, swap, staging.replaced_copy(constants.CURATED_ZONE))
    if std_swap is not None:
        register_replaced_copy(
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
