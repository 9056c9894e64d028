"""One SparkSession for the whole test session; each test gets its own catalog on it.

The Spark tests run wherever the pieces are installed (``make setup`` installs them: the spark
extra, and Debian's jarjar and JDBC drivers when run as root). Elsewhere they skip with the
missing piece named; with ``CI`` set in the environment a missing piece fails them instead,
so CI cannot pass by skipping.
"""

from __future__ import annotations

import itertools
import os
import shutil

import pytest

from leanops_dagster.settings import REPO_ROOT, get_settings
from tests.safety_net.faults import poisoned_flatten, poisoned_validate  # noqa: F401 (fixtures)

#: the cache ``make setup`` fills (settings' default for a home at the repository root)
JARS_CACHE = REPO_ROOT / ".leanops" / "spark-jars"
_catalog_numbers = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "spark: needs a local Spark with the Iceberg runtime")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/spark/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.spark)


def _missing_piece() -> str | None:
    try:
        import pyspark  # noqa: F401

        from leanops_dagster.engines.spark import jars
    except ImportError as error:
        return f"the spark extra is not installed ({error}); run make setup"
    if shutil.which("java") is None:
        return "no java on PATH (Spark needs a Java 17 runtime)"
    try:
        jars.local_jars(JARS_CACHE, jdbc=(jars.SQLITE_JDBC_JAR,))
    except jars.SparkJarsMissing as error:
        return str(error)
    return None


@pytest.fixture(scope="session")
def spark_installed() -> None:
    """Skip (fail on CI) unless local Spark can start; starts nothing itself."""
    missing = _missing_piece()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"Spark tests cannot run on CI: {missing}")
        pytest.skip(f"local Spark unavailable: {missing}")


@pytest.fixture(scope="session")
def spark(spark_installed, tmp_path_factory):
    from leanops_dagster.engines.spark.session import spark_session

    home = tmp_path_factory.mktemp("spark-home")
    session = spark_session(
        get_settings(home=home, spark_jars_dir=JARS_CACHE, catalog_name="spark_tests",
                     # small data: fewer tasks per stage, less scheduling per statement
                     spark_conf={"spark.sql.shuffle.partitions": "2",
                                 "spark.default.parallelism": "2"})
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def spark_settings(spark, tmp_path, monkeypatch):
    """Settings of a fresh home with its own catalog name, registered on the shared session."""
    from leanops_dagster.engines.spark.session import register_catalog

    home = tmp_path / "home"
    monkeypatch.setenv("LEANOPS_HOME", str(home))
    settings = get_settings(
        home=home, spark_jars_dir=JARS_CACHE, catalog_name=f"leanops_t{next(_catalog_numbers)}"
    )
    register_catalog(spark, settings)
    return settings
