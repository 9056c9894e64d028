"""infra/scripts/apply_raw_partition_specs.py on tables created unpartitioned, as Glue does."""

from __future__ import annotations

import importlib.util

import pytest
from infra_support import REPO_ROOT
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC

from leanops_dagster.iceberg.catalog import ensure_table, open_catalog
from leanops_dagster.iceberg.tables import (
    DLQ_ERRORS_PARTITION_SPEC,
    DLQ_ERRORS_SCHEMA,
    RAW_STAGING_PARTITION_SPEC,
    RAW_STAGING_SCHEMA,
)
from leanops_dagster.settings import Settings

SCRIPT = REPO_ROOT / "infra" / "scripts" / "apply_raw_partition_specs.py"


@pytest.fixture
def script():
    spec = importlib.util.spec_from_file_location("apply_raw_partition_specs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_unpartitioned_raw_tables_get_the_specs_of_tables_py(tmp_path, script):
    settings = Settings(home=tmp_path, environment="dev", namespace_prefix="lean_ops_dev_")
    catalog = open_catalog(settings)
    ns = settings.raw_namespace
    for identifier, schema in (
        ((ns, "events_staging"), RAW_STAGING_SCHEMA),
        ((ns, "dlq_errors"), DLQ_ERRORS_SCHEMA),
    ):
        ensure_table(catalog, identifier, schema, UNPARTITIONED_PARTITION_SPEC)

    changed = script.apply_raw_partition_specs(catalog, settings, ["events"])
    assert changed == {f"{ns}.events_staging": True, f"{ns}.dlq_errors": True}

    for name, expected in (
        ("events_staging", RAW_STAGING_PARTITION_SPEC),
        ("dlq_errors", DLQ_ERRORS_PARTITION_SPEC),
    ):
        spec = catalog.load_table((ns, name)).spec()
        assert [(f.source_id, str(f.transform), f.name) for f in spec.fields] == [
            (f.source_id, str(f.transform), f.name) for f in expected.fields
        ]

    # Idempotent: a second run changes nothing.
    again = script.apply_raw_partition_specs(catalog, settings, ["events"])
    assert again == {f"{ns}.events_staging": False, f"{ns}.dlq_errors": False}
