"""Text that Iceberg/Parquet can store: valid UTF-8 (pure, vectorised).

A Python ``str`` is always valid once in Arrow, but an Arrow STRING array built from bytes (a
Parquet file, a buffer) may hold bytes that are not UTF-8: a lone surrogate encoded as
``ED A0 80`` (CESU-8/WTF-8), a stray ``FF``. Writing such a value fails later (Parquet
statistics are decoded as text), so the transforms find them first and route the row to an
error table, shown with ``\\xNN`` escapes. NUL and every Unicode plane are valid UTF-8: kept.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def invalid_utf8(values: pa.Array) -> pa.BooleanArray | None:
    """Where a STRING array holds bytes that are not UTF-8 (a lone surrogate encoded as
    ``ED A0 80``, a stray ``FF``): None when every value is valid (one vectorised check),
    else the mask, found by checking halves (O(k log n) checks for k bad values)."""
    if _ascii(values):  # the common case: one SIMD pass, about 3x faster than validating
        return None
    try:
        values.validate(full=True)
        return None
    except pa.ArrowInvalid:
        pass
    return _invalid_mask(values)


def _ascii(values: pa.Array) -> bool:
    """Every byte the (string or large string) values use is below 0x80."""
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return False  # another layout: let Arrow validate it
    if len(values) == 0:
        return True
    _, offsets, data = values.buffers()[:3]
    if data is None:
        return True
    kind = np.int64 if pa.types.is_large_string(values.type) else np.int32
    bounds = np.frombuffer(offsets, dtype=kind)[values.offset:values.offset + len(values) + 1]
    start, end = int(bounds[0]), int(bounds[-1])
    if end <= start:
        return True
    return int(np.frombuffer(data, dtype=np.uint8, count=end - start, offset=start).max()) < 0x80


def _invalid_mask(values: pa.Array) -> pa.BooleanArray:
    try:
        values.validate(full=True)
        return pa.repeat(pa.scalar(False), len(values))
    except pa.ArrowInvalid:
        if len(values) == 1:
            return pa.array([True])
    mid = len(values) // 2
    return pa.concat_arrays(
        [_invalid_mask(values.slice(0, mid)), _invalid_mask(values.slice(mid))]
    )


def readable_text(values: pa.Array, invalid: pa.BooleanArray) -> pa.Array:
    """``values`` with each invalid value replaced by its bytes decoded with ``\\xNN``
    escapes for what is not UTF-8 (storable, and shows the bytes)."""
    positions = pc.indices_nonzero(invalid)
    raw = values.view(pa.binary())
    shown = [
        value.decode("utf-8", "backslashreplace").encode("utf-8")
        for value in raw.take(positions).to_pylist()
    ]
    replaced = pc.replace_with_mask(raw, invalid, pa.array(shown, pa.binary()))
    return replaced.cast(pa.string())
