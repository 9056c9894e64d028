"""Snapshot summary properties on Spark commits: the watermark rides on the data's snapshot.

DataFrame writes take ``snapshot-property.<key>`` options; SQL statements (``MERGE INTO``) run
inside Iceberg's ``CommitMetadata.withCommitProperties``, which adds the properties to every
commit the statement makes on this thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, ClassVar, TypeVar

from leanops_dagster.engines.spark._pyspark_internals import jvm as spark_jvm

if TYPE_CHECKING:
    from pyspark.sql import DataFrameWriterV2, SparkSession

T = TypeVar("T")


def snapshot_options(properties: Mapping[str, str]) -> dict[str, str]:
    """Write options that put ``properties`` in the snapshot summary of a DataFrame write."""
    return {f"snapshot-property.{key}": value for key, value in properties.items()}


def append_with_properties(writer: DataFrameWriterV2, properties: Mapping[str, str]) -> None:
    """``writer.append()`` with ``properties`` in the new snapshot's summary."""
    for key, value in snapshot_options(properties).items():
        writer = writer.option(key, value)
    writer.append()


class _Callable:
    """A Python function as a ``java.util.concurrent.Callable`` (py4j callback)."""

    def __init__(self, function: Callable[[], object]) -> None:
        self._function = function
        self.error: BaseException | None = None
        self.result: object = None

    def call(self) -> None:
        try:
            self.result = self._function()
        except BaseException as error:  # re-raised on the Python side, with its traceback
            self.error = error
            raise
        return None

    class Java:
        implements: ClassVar[list[str]] = ["java.util.concurrent.Callable"]


def with_commit_properties(
    spark: SparkSession, properties: Mapping[str, str], statement: Callable[[], T]
) -> T:
    """Run ``statement`` (e.g. a ``spark.sql("MERGE INTO ...")``) so that its Iceberg commit
    carries ``properties`` in its snapshot summary."""
    jvm = spark_jvm(spark)
    java_properties = jvm.java.util.HashMap()
    for key, value in properties.items():
        java_properties.put(key, value)
    callable_ = _Callable(statement)
    try:
        jvm.org.apache.iceberg.spark.CommitMetadata.withCommitProperties(
            java_properties, callable_, jvm.java.lang.RuntimeException().getClass()
        )
    except Exception:
        if callable_.error is not None:
            raise callable_.error from None
        raise
    return callable_.result  # type: ignore[return-value]
