"""Catalog access: one function opens the catalog named by settings (SQL, Glue or REST)."""

from __future__ import annotations

import contextlib

from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table

from leanops_dagster.settings import Settings


def open_catalog(settings: Settings) -> Catalog:
    """Open the catalog; for the embedded default, create ``LEANOPS_HOME`` first."""
    if settings.catalog_type == "sql" and settings.catalog_config["uri"].startswith("sqlite"):
        (settings.home / "warehouse").mkdir(parents=True, exist_ok=True)
    return load_catalog(settings.catalog_name, **settings.catalog_config)


def ensure_namespace(catalog: Catalog, namespace: str) -> None:
    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace(namespace)


def ensure_table(
    catalog: Catalog,
    identifier: tuple[str, str],
    schema: Schema,
    partition_spec: PartitionSpec = UNPARTITIONED_PARTITION_SPEC,
    properties: dict[str, str] | None = None,
) -> Table:
    """Load a table, creating it (and its namespace) on first use. Safe under races.

    pyiceberg's own commit retry re-applies the same appended files on top of a concurrent
    snapshot; for a commit that carries a watermark that double-counts. Our tables therefore
    fail fast (``commit.retry.num-retries=0``) and ``iceberg.commit.retry_commit`` reruns the
    whole read-transform-commit step, which re-reads the watermark first.
    """
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        ensure_namespace(catalog, identifier[0])
        return catalog.create_table_if_not_exists(
            identifier, schema=schema, partition_spec=partition_spec,
            properties={
                "format-version": "2", "commit.retry.num-retries": "0", **(properties or {})
            },
        )
