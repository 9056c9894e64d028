"""Fixtures of the Iceberg tests: a SQLite SQL catalog with a ``curated`` namespace."""

from __future__ import annotations

import pytest
from pyiceberg.catalog.sql import SqlCatalog


@pytest.fixture
def catalog(tmp_path) -> SqlCatalog:
    catalog = SqlCatalog(
        "test", uri=f"sqlite:///{tmp_path / 'catalog.db'}",
        warehouse=(tmp_path / "warehouse").as_uri(),
    )
    catalog.create_namespace("curated")
    return catalog
