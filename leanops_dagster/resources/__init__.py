"""Dagster resources: thin wrappers that open the catalog, the schema registry and settings."""
