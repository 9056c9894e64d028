"""Catalog access: one function opens the catalog named by settings (SQL, Glue or REST)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchTableError,
)
from pyiceberg.io.pyarrow import pyarrow_to_schema
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table, TableProperties
from pyiceberg.table.name_mapping import MappedField, NameMapping
from sqlalchemy.exc import DBAPIError

from leanops_dagster.constants import (
    DEFAULT_MAX_SNAPSHOT_AGE_MS,
    EXPIRE_MAX_SNAPSHOT_AGE_PROPERTY,
)
from leanops_dagster.settings import Settings


def open_catalog(settings: Settings) -> Catalog:
    """Open the catalog named by settings."""
    return load_catalog_from_properties(settings.catalog_name, settings.catalog_config)


def load_catalog_from_properties(name: str, properties: Mapping[str, str]) -> Catalog:
    """Open a pyiceberg catalog; for an embedded SQLite catalog, create its folders first."""
    for key in ("uri", "warehouse"):
        for prefix in ("sqlite:///", "file://"):
            value = properties.get(key, "")
            if value.startswith(prefix):
                folder = Path(value.removeprefix(prefix))
                (folder.parent if key == "uri" else folder).mkdir(parents=True, exist_ok=True)
    attempts = 3
    for attempt in range(1, attempts + 1):
        try:
            return load_catalog(name, **properties)
        except DBAPIError:
            # Two processes opening a new SQL catalog both create its tables; the loser's
            # CREATE TABLE fails ("already exists", a unique violation on PostgreSQL). The
            # next attempt finds the tables and skips creating them.
            if properties.get("type") != "sql" or attempt == attempts:
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def schema_from_arrow(arrow_schema: pa.Schema) -> Schema:
    """An Iceberg schema for a new table, field ids assigned in column order."""
    mapping = NameMapping(
        [MappedField(field_id=i + 1, names=[f.name]) for i, f in enumerate(arrow_schema)]
    )
    return pyarrow_to_schema(arrow_schema, name_mapping=mapping)


def ensure_namespace(catalog: Catalog, namespace: str) -> None:
    """Create ``namespace`` unless it exists. Safe under races on every catalog: a writer
    that lost the race sees a different error per catalog (``NamespaceAlreadyExistsError``, a
    PostgreSQL ``UniqueViolation`` on the namespace properties, Glue's
    ``AlreadyExistsException``), so whatever was raised, a namespace that now exists is success."""
    if catalog.namespace_exists(namespace):
        return
    try:
        catalog.create_namespace(namespace)
    except NamespaceAlreadyExistsError:
        return
    except Exception:
        if not catalog.namespace_exists(namespace):
            raise


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

    A writer that lost a creation race gets the winner's table, which may already hold the
    winner's first commit: callers that read the table as absent must check, before they
    commit, that it is still empty (``iceberg.commit.ensure_unchanged``).
    """
    try:
        return failing_fast(catalog, catalog.load_table(identifier))
    except NoSuchTableError:
        pass
    ensure_namespace(catalog, identifier[0])
    try:
        return catalog.create_table(
            identifier, schema=schema, partition_spec=partition_spec,
            properties={
                TableProperties.FORMAT_VERSION: "2", TableProperties.COMMIT_NUM_RETRIES: "0",
                # what default snapshot expiry keeps (Spark's expire_snapshots, the Glue
                # retention optimizer): the window a lagging consumer reads the fast way in
                EXPIRE_MAX_SNAPSHOT_AGE_PROPERTY: str(DEFAULT_MAX_SNAPSHOT_AGE_MS),
                **(properties or {}),
            },
        )
    except Exception:
        # Lost the race (TableAlreadyExistsError, or the catalog's own unique-key error).
        with contextlib.suppress(NoSuchTableError):
            return failing_fast(catalog, catalog.load_table(identifier))
        raise


def load_layer_table(catalog: Catalog, identifier: tuple[str, str]) -> Table | None:
    """A layer table a run is about to read its watermark from and commit to (``None``: not
    created yet), its commits made fail fast (``failing_fast``). Every engine's layer run
    opens its Standardized or Curated table here, so none of them can meet a table whose
    commits pyiceberg or Iceberg's Java client would blindly rebase."""
    if not catalog.table_exists(identifier):
        return None
    return failing_fast(catalog, catalog.load_table(identifier))


def failing_fast(catalog: Catalog, table: Table) -> Table:
    """``table``, its commits made fail fast (``commit.retry.num-retries=0``, see
    ``ensure_table``) if an older version created it without: pyiceberg's default retry
    would rebuild a stale writer's append on top of the winner's snapshot, a second copy of
    its rows. Call it before reading a watermark from ``table``: the property commit may bring
    in a snapshot committed meanwhile."""
    if table.metadata.properties.get(TableProperties.COMMIT_NUM_RETRIES) == "0":
        return table
    try:
        with table.transaction() as tx:
            tx.set_properties({TableProperties.COMMIT_NUM_RETRIES: "0"})
    except CommitFailedException:  # another writer set it (or committed) first
        table = catalog.load_table(table.name())
    if table.metadata.properties.get(TableProperties.COMMIT_NUM_RETRIES) != "0":
        raise CommitFailedException(f"{'.'.join(table.name())}: fail-fast commits not set")
    return table


def metadata_locations(catalog: Catalog, namespace: str) -> dict[str, str] | None:
    """Table name -> current metadata file location of every table of ``namespace``, read
    from the catalog alone: no metadata file is opened. One SQL query on a SQL catalog, one
    paginated ``GetTables`` on Glue. ``None`` where the catalog has no such listing (REST):
    the caller then loads each table (``Table.metadata_location``).

    A table's metadata location changes with every commit (data or not) and only then, so a
    sensor that keeps it in its cursor knows without reading anything that a table did not
    change."""
    from pyiceberg.catalog.sql import IcebergTables, SqlCatalog

    if isinstance(catalog, SqlCatalog):
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        query = select(IcebergTables.table_name, IcebergTables.metadata_location).where(
            IcebergTables.catalog_name == catalog.name,
            IcebergTables.table_namespace == namespace,
        )
        with Session(catalog.engine) as session:
            return {name: location for name, location in session.execute(query) if location}
    glue = getattr(catalog, "glue", None)
    if glue is not None and type(catalog).__name__ == "GlueCatalog":
        out: dict[str, str] = {}
        for page in glue.get_paginator("get_tables").paginate(DatabaseName=namespace):
            for table in page.get("TableList", []):
                location = (table.get("Parameters") or {}).get("metadata_location")
                if location:
                    out[table["Name"]] = location
        return out
    return None
