"""The Spark job entry point: one layer run of one topic, reported to Dagster through Pipes.

Runs wherever Spark runs the project's wheel, with the same code and the same result:

    spark-submit leanops_dagster/engines/spark/job.py      # a cluster, or local[*]
    python -m leanops_dagster.engines.spark.job             # a Pipes subprocess (local)

Dagster's Pipes client (``dg.PipesSubprocessClient`` here; ``PipesGlueClient`` or
``PipesEMRServerlessClient`` in AWS) passes the run's context and these extras:
``topic``, ``layer`` (``standardized`` or ``curated``); everything else is the job's own
Settings (``LEANOPS_*`` in its environment: catalog, schema registry, PII key). The job runs
the Spark engine's layer run, then reports the same materialization metadata and per-run
check results the in-process asset returns (``assets.standardized`` / ``assets.curated``
build them; ``pipes_metadata`` converts them), with ``report_asset_materialization`` and
``report_asset_check``. A check's explanation travels as its ``description`` metadata entry
(Pipes check reports carry no description field).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LAYERS = ("standardized", "curated")


def pipes_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Dagster metadata (raw values or ``MetadataValue``s) as Pipes metadata values."""
    import dagster as dg

    kinds = {
        dg.TextMetadataValue: "text", dg.JsonMetadataValue: "json",
        dg.MarkdownMetadataValue: "md", dg.IntMetadataValue: "int",
        dg.FloatMetadataValue: "float", dg.BoolMetadataValue: "bool",
    }
    out: dict[str, Any] = {}
    for name, value in metadata.items():
        kind = kinds.get(type(value))
        if isinstance(value, dg.TableSchemaMetadataValue):
            value = value.schema
        if isinstance(value, dg.TableSchema):  # dagster/column_schema
            out[name] = {"raw_value": {"columns": [_pipes_column(c) for c in value.columns]},
                         "type": "table_schema"}
        elif kind is not None:
            out[name] = {"raw_value": value.value, "type": kind}
        elif isinstance(value, dg.MetadataValue):
            raise TypeError(f"metadata {name!r}: no Pipes type for {type(value).__name__}")
        else:
            out[name] = value
    return out


def _pipes_column(column) -> dict[str, Any]:
    constraints = column.constraints
    return {
        "name": column.name, "type": column.type, "description": column.description,
        "tags": dict(column.tags),
        "constraints": {"nullable": constraints.nullable, "unique": constraints.unique,
                        "other": list(constraints.other)},
    }


def report(pipes, materialization) -> None:
    """Report a ``dg.MaterializeResult`` (metadata and check results) through ``pipes``."""
    pipes.report_asset_materialization(metadata=pipes_metadata(materialization.metadata or {}))
    for check in materialization.check_results or ():
        metadata = dict(check.metadata or {})
        if check.description:
            metadata["description"] = check.description
        pipes.report_asset_check(
            check_name=check.check_name, passed=check.passed,
            severity=check.severity.value, metadata=pipes_metadata(metadata),
        )


def run_layer(topic: str, layer: str):
    """Run ``layer`` of ``topic`` on Spark; the asset's ``dg.MaterializeResult`` of it."""
    from leanops_dagster.assets.curated import curated_materialization
    from leanops_dagster.assets.standardized import standardized_materialization
    from leanops_dagster.checks.drift import known_drift
    from leanops_dagster.engines.spark.session import spark_session
    from leanops_dagster.iceberg.catalog import open_catalog
    from leanops_dagster.pipeline.layout import TopicTables
    from leanops_dagster.schemas.registry import SchemaRegistry
    from leanops_dagster.settings import get_settings

    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; expected one of {LAYERS}")
    settings = get_settings()
    spark = spark_session(settings)  # on Glue / EMR: the job's own session, catalog added
    catalog = open_catalog(settings)
    schema = SchemaRegistry.from_settings(settings).load(topic)
    tables = TopicTables(topic, settings.namespace_prefix)
    if layer == "standardized":
        from leanops_dagster.engines.spark.standardize import standardize_topic_spark

        return standardized_materialization(
            standardize_topic_spark(spark, catalog, tables, schema), tables, catalog
        )
    from leanops_dagster.engines.spark.curate import curate_topic_spark

    result = curate_topic_spark(
        spark, catalog, tables, schema, pii_key=settings.pii_hash_key.get_secret_value().encode()
    )
    return curated_materialization(
        result, tables, schema, known_drift(catalog, tables, schema.curated), catalog
    )


def main() -> None:
    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        topic, layer = pipes.get_extra("topic"), pipes.get_extra("layer")
        pipes.log.info(f"Spark engine: {layer} of {topic}")
        report(pipes, run_layer(topic, layer))


if __name__ == "__main__":
    main()
