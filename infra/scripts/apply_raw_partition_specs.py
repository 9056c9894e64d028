"""Give the RAW tables Terraform created the partition specs of ``iceberg/tables.py``.

Glue's CreateTable (``aws_glue_catalog_table`` with ``open_table_format_input``) cannot set an
Iceberg partition spec (hashicorp/terraform-provider-aws#36531), so Terraform creates
``<topic>_staging`` and ``dlq_errors`` unpartitioned. Run this once after each ``terraform apply``
that adds a topic; it is idempotent (a table that already has its spec is left alone) and uses
Iceberg partition evolution, so data written before it stays readable::

    LEANOPS_ENVIRONMENT=dev LEANOPS_CATALOG_TYPE=glue LEANOPS_NAMESPACE_PREFIX=lean_ops_dev_ \\
    LEANOPS_WAREHOUSE=s3://lean-ops-dev-warehouse \\
        uv run python infra/scripts/apply_raw_partition_specs.py events sensor_readings

(``terraform output dagster_settings_environment`` prints those LEANOPS_* values.)
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from pyiceberg.catalog import Catalog
from pyiceberg.partitioning import PartitionSpec
from pyiceberg.table import Table

from leanops_dagster import constants
from leanops_dagster.iceberg.catalog import open_catalog
from leanops_dagster.iceberg.tables import (
    DLQ_ERRORS_PARTITION_SPEC,
    DLQ_ERRORS_SCHEMA,
    RAW_STAGING_PARTITION_SPEC,
    RAW_STAGING_SCHEMA,
)
from leanops_dagster.settings import Settings, get_settings


def _signature(table: Table, spec: PartitionSpec) -> list[tuple[str, str, str]]:
    schema = table.schema()
    return [(schema.find_field(f.source_id).name, str(f.transform), f.name) for f in spec.fields]


def apply_spec(table: Table, wanted: PartitionSpec, wanted_schema_names: dict[int, str]) -> bool:
    """Evolve ``table`` to ``wanted`` (matched by source column name); False if already there."""
    target = [(wanted_schema_names[f.source_id], str(f.transform), f.name) for f in wanted.fields]
    if _signature(table, table.spec()) == target:
        return False
    if table.spec().fields:
        raise RuntimeError(
            f"{table.name()} already has another partition spec "
            f"{_signature(table, table.spec())}; not changing it"
        )
    with table.update_spec() as update:
        for field in wanted.fields:
            update.add_field(wanted_schema_names[field.source_id], field.transform, field.name)
    return True


def apply_raw_partition_specs(
    catalog: Catalog, settings: Settings, topics: Iterable[str]
) -> dict[str, bool]:
    """Table identifier -> whether its spec was changed."""
    staging_names = {f.field_id: f.name for f in RAW_STAGING_SCHEMA.fields}
    dlq_names = {f.field_id: f.name for f in DLQ_ERRORS_SCHEMA.fields}
    namespace = settings.raw_namespace
    targets = [
        ((namespace, constants.raw_table_name(t)), RAW_STAGING_PARTITION_SPEC, staging_names)
        for t in topics
    ]
    targets.append(((namespace, constants.DLQ_ERRORS_TABLE), DLQ_ERRORS_PARTITION_SPEC, dlq_names))
    changed = {}
    for identifier, spec, names in targets:
        table = catalog.load_table(identifier)
        changed[".".join(identifier)] = apply_spec(table, spec, names)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("topics", nargs="+", help="the topics of `topics` in your tfvars")
    args = parser.parse_args(argv)
    settings = get_settings()
    result = apply_raw_partition_specs(open_catalog(settings), settings, args.topics)
    for identifier, was_changed in result.items():
        print(f"{identifier}: {'partition spec applied' if was_changed else 'already partitioned'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
