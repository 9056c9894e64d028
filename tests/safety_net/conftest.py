"""The pipeline fixtures (a fresh LEANOPS_HOME, its SQLite catalog, the schema registry) and the
faults injected into the rules (``faults``)."""

from tests.dagster.conftest import catalog, registry, settings  # noqa: F401 (fixtures)
from tests.safety_net.faults import poisoned_flatten, poisoned_validate  # noqa: F401 (fixtures)
