"""Column names from JSON key paths: joined by ``_``, lower-cased, sanitised deterministically.

Rule (a pure function of the key path, so a key lands in the same column in every increment):

1. The path's keys are joined with ``_`` and lower-cased: ``event.userId`` -> ``event_userid``.
2. The name is kept as is when the keys are ASCII, it matches ``[a-z_][a-z0-9_]*``, is at
   most 128 characters and is not reserved (a RAW, metadata or lineage column, a metadata
   column of the schema, or a name Iceberg reserves for its metadata columns: ``_file``,
   ``_pos``, ... ``constants.ICEBERG_METADATA_COLUMNS``).
3. Otherwise every character outside ``[a-z0-9_]`` becomes ``_``, a leading digit (or an
   empty name) gets a ``_`` prefix, the result is cut to 119 characters and
   ``_<8 hex digits>`` is appended: the start of the SHA-256 of the key path as compact JSON
   (``["event","user-Id"]``). ``user-Id`` -> ``user_id_1b2c3d4e``; ``message_id`` (reserved)
   -> ``message_id_5f6a7b8c``. Distinct paths therefore never merge silently.
4. Two paths of the same payload that still give the same name (``userId`` and ``userid``,
   ``a.b`` and ``a_b``): the path that sorts first (as a tuple of the original keys) keeps the
   name, each other path gets the suffix of rule 3.

Names are only ever used as Arrow/Iceberg field names (never interpolated into SQL).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable

from leanops_dagster.schemas.models import MAX_NAME_LENGTH, RESERVED_COLUMNS, SAFE_NAME

_UNSAFE = re.compile(r"[^a-z0-9_]")
_SUFFIX_LENGTH = 9  # "_" + 8 hex digits


def path_digest(path: tuple[str, ...]) -> str:
    text = json.dumps(list(path), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def suffixed_name(path: tuple[str, ...]) -> str:
    """Rule 3: sanitised base + ``_`` + 8 hex digits of the path's digest."""
    base = _UNSAFE.sub("_", "_".join(path).lower())
    if not base or base[0].isdigit():
        base = f"_{base}"
    return f"{base[: MAX_NAME_LENGTH - _SUFFIX_LENGTH]}_{path_digest(path)}"


class ColumnNamer:
    """Caches path -> column name for one schema's reserved names."""

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self.reserved = frozenset(RESERVED_COLUMNS) | frozenset(reserved)
        self.cache: dict[tuple[str, ...], str] = {}

    def __call__(self, path: tuple[str, ...]) -> str:
        name = self.cache.get(path)
        if name is None:
            name = self.cache[path] = self._name(path)
        return name

    def _name(self, path: tuple[str, ...]) -> str:
        original = "_".join(path)
        joined = original.lower()
        if (
            original.isascii()
            and SAFE_NAME.fullmatch(joined)
            and len(joined) <= MAX_NAME_LENGTH
            and joined not in self.reserved
        ):
            return joined
        return suffixed_name(path)
