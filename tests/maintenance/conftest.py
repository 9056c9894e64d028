"""Fixtures of the foreign-writer tests: the shared SparkSession (``tests/spark/conftest.py``:
one JVM per test session), a fresh home per test with its catalog registered on it, the foreign
writer on that catalog, and the Arrow engine's uninterrupted run of the dataset (the twin every
scenario, on either engine, is compared with)."""

from __future__ import annotations

import itertools

import pytest

from leanops_dagster.settings import get_settings
from tests.maintenance.foreign import ForeignWriter
from tests.maintenance.scenario import BATCHES, TopicRun
from tests.spark import conftest as spark_fixtures
from tests.spark.conftest import JARS_CACHE

# the session's one SparkSession (and its skip when Spark is missing), shared with tests/spark
spark_installed = spark_fixtures.spark_installed
spark = spark_fixtures.spark

_catalog_numbers = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "spark: needs a local Spark with the Iceberg runtime")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/maintenance/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.spark)


def _settings(home, catalog_name: str):
    return get_settings(home=home, spark_jars_dir=JARS_CACHE, catalog_name=catalog_name)


@pytest.fixture
def maint_settings(spark, tmp_path, monkeypatch):
    """A fresh LEANOPS_HOME with a catalog name of its own (Spark keeps a catalog per name for
    the session's life), registered on the shared session; the environment names the same
    home, catalog and jars, so a command run in the test (``leanops recover``) opens them."""
    from leanops_dagster.engines.spark.session import register_catalog

    home = tmp_path / "home"
    name = f"leanops_m{next(_catalog_numbers)}"
    monkeypatch.setenv("LEANOPS_HOME", str(home))
    monkeypatch.setenv("LEANOPS_CATALOG_NAME", name)
    monkeypatch.setenv("LEANOPS_SPARK_JARS_DIR", str(JARS_CACHE))
    settings = _settings(home, name)
    register_catalog(spark, settings)
    return settings


@pytest.fixture
def foreign(spark, maint_settings):
    """The foreign writer on the test's catalog (orphan clean-up only under its home)."""
    from leanops_dagster.iceberg.catalog import open_catalog

    return ForeignWriter(spark, open_catalog(maint_settings), maint_settings.home)


@pytest.fixture(scope="session")
def uninterrupted(tmp_path_factory) -> tuple[list, dict]:
    """(per-run figures, final state) of the whole dataset on the Arrow engine, one run after
    each batch, no maintenance, in a catalog of its own: what every scenario must end with,
    on either engine (the engines give the same tables and figures, ``tests/spark``), so a
    Spark scenario is checked against the reference engine too."""
    home = tmp_path_factory.mktemp("uninterrupted")
    settings = _settings(home, "leanops_twin")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEANOPS_HOME", str(home))
        patch.setenv("LEANOPS_CATALOG_NAME", settings.catalog_name)
        run = TopicRun(settings, "arrow")
        for number in range(BATCHES):
            run.inject(number)
            run.run()
    return run.figures, run.state()
