"""Every use of PySpark beyond its public API, in one place.

An upgrade of PySpark starts here: re-check each use below against the new version, then add it
to ``CHECKED_VERSIONS`` (``tests/test_library_internals.py`` fails, naming this file, while the
installed version is not listed). No other module reaches a private PySpark name.

Each use, why, and the version it was checked against (3.5.7):

- ``collect_arrow`` calls ``DataFrame._collect_as_arrow``, the path ``toPandas`` takes with
  Arrow enabled: PySpark 3.5 has no public ``toArrow`` (4.0 has: use it once on 4.x). Arrow in
  is the public ``DataFrame.mapInArrow``.
- ``jvm`` returns ``SparkContext._jvm``, the py4j gateway's view of the JVM: Iceberg's
  ``CommitMetadata.withCommitProperties`` (snapshot properties on a SQL ``MERGE``) has no
  Python API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: the PySpark versions every use below was checked against
CHECKED_VERSIONS = ("3.5.7",)


def collect_arrow(frame: DataFrame) -> pa.Table:
    """The rows of ``frame`` as one Arrow table on the driver (small results only)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    batches = frame._collect_as_arrow()
    schema = to_arrow_schema(frame.schema)
    return pa.Table.from_batches(batches, schema=schema) if batches else schema.empty_table()


def jvm(spark: SparkSession) -> Any:
    """The JVM of ``spark``'s driver, through py4j (``jvm.java.util.HashMap()``, ...)."""
    return spark.sparkContext._jvm  # type: ignore[attr-defined]
