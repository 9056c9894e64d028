"""The Spark engine: the Standardized and Curated runs on Apache Spark + Iceberg.

The same tables, watermarks, error tables and rules as the Arrow engine (``pipeline/``): the
row-wise rules of ``transforms/`` run inside Spark through ``mapInArrow``; what is set-based
(FIFO/LIFO window dedup, the LIFO ``MERGE INTO``) is Spark's own SQL.
"""
