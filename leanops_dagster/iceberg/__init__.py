"""Iceberg I/O: catalog access, table definitions, watermarks and commits (no Dagster here)."""
