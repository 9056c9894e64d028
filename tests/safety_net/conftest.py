"""The pipeline fixtures (a fresh LEANOPS_HOME, its SQLite catalog, the schema registry)."""

from tests.dagster.conftest import catalog, registry, settings  # noqa: F401 (fixtures)
