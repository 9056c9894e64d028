"""Arrow out of Spark DataFrames (pyspark 3.5 has no public ``toArrow``; Arrow in is the public
``DataFrame.mapInArrow``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def collect_arrow(frame: DataFrame) -> pa.Table:
    """The rows of ``frame`` as one Arrow table on the driver (small results only)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    batches = frame._collect_as_arrow()  # the path toPandas takes with Arrow enabled
    schema = to_arrow_schema(frame.schema)
    return pa.Table.from_batches(batches, schema=schema) if batches else schema.empty_table()
