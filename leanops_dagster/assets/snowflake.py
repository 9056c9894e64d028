"""Snowflake (optional): the analysts' Iceberg table, refreshed after each Curated commit.

Defined only when Settings configure Snowflake (``LEANOPS_SNOWFLAKE_*``); it is downstream of
Curated, so ``topic_pipeline`` runs it right after the MERGE and not when a blocking check
stopped Curated.
"""

import dagster as dg

from leanops_dagster.assets.keys import CURATED, SNOWFLAKE_CURATED
from leanops_dagster.partitions import topic_partitions
from leanops_dagster.resources.snowflake import SnowflakeResource


@dg.asset(
    key=SNOWFLAKE_CURATED,
    deps=[CURATED],
    partitions_def=topic_partitions,
    group_name="serving",
    kinds={"snowflake", "iceberg"},
    owners=["team:data-platform"],
    description=(
        "The topic's Curated table as a Snowflake Iceberg table (Glue catalog integration): "
        "`ALTER ICEBERG TABLE <db>.<schema>.<topic> REFRESH` through the SQL API, so "
        "Snowflake reads the snapshot Curated just committed."
    ),
)
def snowflake_curated_refresh(
    context: dg.AssetExecutionContext, snowflake: SnowflakeResource
) -> dg.MaterializeResult:
    result = snowflake.refresh(context.partition_key)
    context.log.info(f"{result.table}: {result.message} ({result.seconds} s)")
    return dg.MaterializeResult(
        metadata={
            "dagster/table_name": dg.MetadataValue.text(result.table),
            "statement": dg.MetadataValue.text(result.statement),
            "statement_handle": dg.MetadataValue.text(result.statement_handle),
            "message": dg.MetadataValue.text(result.message),
            "seconds": result.seconds,
        }
    )
