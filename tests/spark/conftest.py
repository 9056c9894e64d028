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

from leanops_dagster.engines.spark.session import DRIVER_JAVA_OPTIONS
from leanops_dagster.settings import REPO_ROOT, get_settings
from tests.safety_net.faults import poisoned_flatten, poisoned_validate  # noqa: F401 (fixtures)

#: the cache ``make setup`` fills (settings' default for a home at the repository root)
JARS_CACHE = REPO_ROOT / ".leanops" / "spark-jars"

#: Spark settings of every test session, in-process or a subprocess's (``LEANOPS_SPARK_CONF``):
#: the tests' data is small and their JVMs short-lived, so they trade peak speed for less CPU
#: (the suite runs three JVMs on two cores): C1 JIT only and the serial GC, one partition per
#: shuffle, no adaptive re-planning, and interpreted expressions instead of Janino compiling
#: generated code for every new plan (Spark's own suites run both modes; results do not depend
#: on it). ``production_codegen`` gives a test the engine's real code generation.
TEST_SPARK_CONF = {
    DRIVER_JAVA_OPTIONS: "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    "spark.sql.shuffle.partitions": "1",
    "spark.default.parallelism": "1",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}
#: what ``production_codegen`` restores for its test (Spark's defaults, as the engine runs)
PRODUCTION_CODEGEN = {"spark.sql.codegen.wholeStage": "true",
                      "spark.sql.codegen.factoryMode": "FALLBACK",
                      "spark.sql.adaptive.enabled": "true"}
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
                     spark_conf=TEST_SPARK_CONF)
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def production_codegen(spark):
    """The test runs with the engine's own code generation (whole-stage and expression
    codegen, adaptive execution), as a real session does; the session's test settings after."""
    for key, value in PRODUCTION_CODEGEN.items():
        spark.conf.set(key, value)
    yield
    for key in PRODUCTION_CODEGEN:
        spark.conf.set(key, TEST_SPARK_CONF[key])


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
