"""The local jar set: found in installed packages, Jackson relocated once, missing pieces named."""

from __future__ import annotations

import zipfile

import pytest
from click.testing import CliRunner

from leanops_dagster.cli import main
from leanops_dagster.engines.spark import jars


def test_missing_debian_package_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(jars, "JARJAR_JAR", tmp_path / "jarjar.jar")
    monkeypatch.setitem(jars.DEBIAN_PACKAGES, tmp_path / "jarjar.jar", "libjarjar-java")
    with pytest.raises(jars.SparkJarsMissing, match="libjarjar-java"):
        jars.relocated_jackson_jar(tmp_path / "cache")
    # the CLI (make setup) reports the missing package and exits 1 instead of a traceback
    monkeypatch.setenv("LEANOPS_SPARK_JARS_DIR", str(tmp_path / "empty-cache"))
    done = CliRunner().invoke(main, ["spark-jars"])
    assert done.exit_code == 1
    assert "apt-get install -y --no-install-recommends libjarjar-java" in done.stderr


def test_relocated_jackson_holds_only_shaded_classes(spark):
    from tests.spark.conftest import JARS_CACHE

    jar = jars.relocated_jackson_jar(JARS_CACHE)
    assert jars.relocated_jackson_jar(JARS_CACHE) == jar  # cached, not rebuilt
    with zipfile.ZipFile(jar) as built:
        classes = [n for n in built.namelist() if n.endswith(".class")]
    assert "org/apache/iceberg/shaded/com/fasterxml/jackson/databind/ObjectMapper.class" in classes
    assert not [n for n in classes if n.startswith("com/fasterxml/")]
    runtime = jars.iceberg_runtime_jar()
    assert runtime.name == jars.ICEBERG_RUNTIME_JAR
