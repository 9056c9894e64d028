"""Arrow in and out of Spark DataFrames (pyspark 3.5 has no public ``toArrow``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType


def collect_arrow(frame: DataFrame) -> pa.Table:
    """The rows of ``frame`` as one Arrow table on the driver (small results only)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    batches = frame._collect_as_arrow()  # the path toPandas takes with Arrow enabled
    schema = to_arrow_schema(frame.schema)
    return pa.Table.from_batches(batches, schema=schema) if batches else schema.empty_table()


def map_in_arrow(
    frame: DataFrame,
    function: Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]],
    schema: StructType,
) -> DataFrame:
    """``frame.mapInArrow(function, schema)``, also without pandas installed.

    pyspark 3.5's ``mapInArrow`` goes through ``pandas_udf``, which refuses to start without
    pandas although the Arrow map never converts to pandas (the worker reads and writes Arrow
    batches only). Without pandas the same UDF (eval type ``SQL_MAP_ARROW_ITER_UDF``) is built
    directly and handed to the same JVM method ``mapInArrow`` calls.
    """
    try:
        import pandas  # noqa: F401
    except ImportError:
        from pyspark.rdd import PythonEvalType
        from pyspark.sql import DataFrame as SparkDataFrame
        from pyspark.sql.udf import UserDefinedFunction

        udf = UserDefinedFunction(
            function, returnType=schema, evalType=PythonEvalType.SQL_MAP_ARROW_ITER_UDF
        )
        column = udf(*[frame[name] for name in frame.columns])
        jdf = frame._jdf.pythonMapInArrow(column._jc.expr(), False)
        return SparkDataFrame(jdf, frame.sparkSession)
    return frame.mapInArrow(function, schema)
