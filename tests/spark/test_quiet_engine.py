"""A Spark run of `leanops run` prints what an Arrow run prints: the layer table, the checks,
one line per failure. Spark's and the JVM's own output (start-up warnings, progress bars,
log4j2 lines) goes to ``$LEANOPS_HOME/logs/spark.log``, which `--verbose` names and shows.

Both engines run as a user runs them, in their own process (the JVM writes to the process's
file descriptors, which only a separate process shows as a terminal would see them)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from leanops_dagster.iceberg.catalog import open_catalog
from leanops_dagster.schemas.registry import SchemaRegistry
from leanops_dagster.settings import REPO_ROOT, get_settings
from tests.dagster.conftest import append_raw, event, raw_row
from tests.spark.conftest import JARS_CACHE, TEST_SPARK_CONF

#: two of five keys fail a CDE (user "nobody": 40 % > 5 %), a network duplicate, a bad body
ROWS = [
    *(raw_row(f"m{i}", event(f"k{i}", user="nobody" if i < 2 else f"user-00000{i}"), minutes=i)
      for i in range(5)),
    raw_row("m4", event("k4", user="user-000004"), minutes=4),
    raw_row("x", "not json"),
]
LEANOPS = str(Path(sys.executable).with_name("leanops"))  # the installed command
FAILURE = ("cde_error_rate 40.0 % > 5 % threshold: 2 of 5 rows; rows are committed; "
           "see curated.errors")


def _home(tmp_path, name: str):
    home = tmp_path / name
    settings = get_settings(home=home)
    SchemaRegistry.from_settings(settings).deploy("events")
    append_raw(open_catalog(settings), ROWS)
    return settings


def _leanops_run(settings, engine: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LEANOPS_", "DAGSTER_", "PYSPARK_", "SPARK_"))}
    env.update({
        "LEANOPS_HOME": str(settings.home), "LEANOPS_ENGINE": engine,
        "LEANOPS_SPARK_JARS_DIR": str(JARS_CACHE),
        "LEANOPS_SPARK_CONF": json.dumps(TEST_SPARK_CONF),
    })
    return subprocess.run(  # nosec B603: fixed argv
        [LEANOPS, "run", "--topic", "events", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900,
    )


def _same_run(output: str) -> str:
    return re.sub(r"\(run [0-9a-f-]{36}\)", "(run <id>)", output)


def test_a_spark_run_prints_what_an_arrow_run_prints_and_logs_the_jvm_to_a_file(
    spark_installed, tmp_path
):
    arrow_settings, spark_settings = _home(tmp_path, "arrow"), _home(tmp_path, "spark")
    arrow = _leanops_run(arrow_settings, "arrow")
    spark = _leanops_run(spark_settings, "spark")

    assert (arrow.returncode, arrow.stderr) == (1, FAILURE + "\n"), arrow.stderr
    assert spark.returncode == 1
    assert spark.stderr == arrow.stderr  # one line per failure, nothing of Spark or the JVM
    assert _same_run(spark.stdout) == _same_run(arrow.stdout)  # same tables, same figures
    assert "standardized" in spark.stdout and "cde_error_rate" in spark.stdout

    log = spark_settings.spark_log_file
    assert log == spark_settings.home / "logs" / "spark.log"
    text = log.read_text()
    assert "INFO SparkContext: Running Spark version" in text  # the JVM's log4j2 lines
    assert "[Stage " not in text  # no console progress bars, not even in the file
    assert not arrow_settings.spark_log_file.exists()  # the Arrow engine starts no JVM

    # --verbose: the log's path, then what this run's JVM wrote (after Dagster's event log);
    # a run with nothing new to read starts its session all the same
    verbose = _leanops_run(spark_settings, "spark", "--verbose")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    marker = f"Spark/JVM log: {log}\n"
    assert marker in verbose.stderr
    shown = verbose.stderr.split(marker, 1)[1].rstrip("\n")
    assert "INFO SparkContext: Running Spark version" in shown
    # this run's lines (its JVM's shutdown lines land after the command has printed them)
    assert shown in log.read_text()[len(text):]
    assert text.splitlines()[0] not in shown  # the earlier run's lines are not repeated
