"""Launch the Spark job (``engines.spark.job``) from an asset, with Dagster Pipes.

``LEANOPS_SPARK_LAUNCHER`` chooses how a Spark-engine run starts:

- ``session`` (default): in the asset's own process, on its SparkSession (``local[*]``, or a
  cluster's session when the Dagster process runs on one);
- ``pipes_subprocess``: ``python -m leanops_dagster.engines.spark.job`` as a Pipes
  subprocess (``dg.PipesSubprocessClient``) with the Dagster process's environment: its own
  JVM and session, the materialization metadata and check results reported back over Pipes.
  Cancelling the Dagster run terminates the subprocess, and with it the Spark job.

The AWS launchers (``PipesGlueClient``, ``PipesEMRServerlessClient``) would run the same
entry point; they are not wired yet.
"""

from __future__ import annotations

import sys

import dagster as dg

LAUNCHERS = ("session", "pipes_subprocess")
JOB_MODULE = "leanops_dagster.engines.spark.job"


def launch_spark_job(
    context: dg.AssetExecutionContext, topic: str, layer: str
) -> dg.MaterializeResult:
    """Run ``layer`` of ``topic`` as a Pipes subprocess; its reported materialization."""
    return dg.PipesSubprocessClient().run(
        context=context,
        command=[sys.executable, "-m", JOB_MODULE],
        extras={"topic": topic, "layer": layer},
    ).get_materialize_result()
