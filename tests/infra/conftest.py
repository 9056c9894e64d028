"""Fixtures of the infra tests (defined in infra_support.py)."""

from infra_support import dev_vars, root_context  # noqa: F401
