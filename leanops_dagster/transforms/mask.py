"""PII masking: HMAC-SHA256 (hex, 64 characters) of the value's text under a secret key.

Deterministic for a given key (joins on a masked column still work), irreversible without
the key, different under another key. Null stays null. A typed value is hashed as its Arrow
string form (``cast(value, string)``). Each distinct value is hashed once (dictionary encode).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from leanops_dagster.schemas.models import CuratedSchema


def hmac_hex(values: pa.Array | pa.ChunkedArray, key: bytes) -> pa.Array:
    """HMAC-SHA256 hex of each value's UTF-8 text; null stays null."""
    if not key:
        raise ValueError("the PII masking key is empty")
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    encoded = pc.dictionary_encode(values)
    template = hmac.new(key, digestmod=hashlib.sha256)
    digests = []
    for text in encoded.dictionary.to_pylist():
        mac = template.copy()
        mac.update(text.encode("utf-8"))
        digests.append(mac.hexdigest())
    return pc.take(pa.array(digests, pa.string()), encoded.indices)


def mask_pii(
    table: pa.Table, schema: CuratedSchema | Iterable[str], key: bytes
) -> pa.Table:
    """Replace each PII column (per ``schema``, or the given names) with its keyed hash."""
    names = schema.pii_columns if isinstance(schema, CuratedSchema) else list(schema)
    for name in names:
        if name not in table.column_names:
            continue
        index = table.column_names.index(name)
        table = table.set_column(
            index, pa.field(name, pa.string()), hmac_hex(table.column(name), key)
        )
    return table
