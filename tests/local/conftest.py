"""Fixtures for the local-stack tests: one stack per test session, one topic set per test.

Starting moto, the pollers and the catalog costs seconds, so tests share a stack and keep
apart by topic: every test uses topics no other test uses, and asserts per topic.
"""

from __future__ import annotations

import pytest

from leanops_dagster.iceberg.catalog import open_catalog
from leanops_dagster.local.stack import LocalStack
from leanops_dagster.settings import Settings


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory) -> Settings:
    return Settings(home=tmp_path_factory.mktemp("leanops-home"))


# Module scope: the stack's moto runs in this process, and tests elsewhere that use moto's
# `mock_aws` reset its state; the stack must be stopped before they run (a package scope
# without __init__.py files is the session).
@pytest.fixture(scope="module")
def stack(stack_settings):
    with LocalStack(stack_settings, topics=()) as running:
        yield running


@pytest.fixture(scope="module")
def catalog(stack_settings, stack):
    return open_catalog(stack_settings)


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Settings with a fresh, empty home (no stack)."""
    return Settings(home=tmp_path / "home")
