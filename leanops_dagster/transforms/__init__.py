"""Pure transformation rules: Arrow tables in, Arrow tables out; no catalog, queue or Dagster.

``flatten`` (RAW -> Standardized + parse errors), ``dedup`` (FIFO on message_id, LIFO on
idempotency_key), ``ordering`` (the order of versions: LIFO in the increment and against the
stored rows), ``validate`` (Standardized -> typed Curated + CDE errors, with the casts of
``schemas.cast``), ``mask`` (keyed PII hashing), ``drift`` (keys the curated schema does not know).
"""
