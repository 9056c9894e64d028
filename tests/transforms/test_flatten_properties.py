"""Property tests: flattening is total and the vectorised and per-row paths agree.

Arbitrary JSON objects (deep nesting, huge and tiny numbers written in any valid form,
reserved, colliding, empty and non-ASCII keys, every Unicode plane, escapes) are serialised
in several styles and flattened twice (shape path on and off): no exception, every RAW row is
either a Standardized row or a parse error, both paths give identical tables, and every value
is the text docs/schemas.md prescribes (an oracle here: strings as they are, integers as
written, other numbers by the shortest-form rule, arrays as compact JSON).
"""

from __future__ import annotations

import json
import math
import re

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from leanops_dagster.schemas.models import StandardizedSchema
from leanops_dagster.transforms import flatten
from leanops_dagster.transforms.flatten.naming import ColumnNamer
from tests.transforms.conftest import BOUNDED, raw_rows

SCHEMA = StandardizedSchema()
META_COLUMNS = {
    "message_id",
    "idempotency_key",
    "topic_name",
    "publish_time",
    "ingestion_ts",
    "raw_snapshot_id",
}


class Number(str):
    """A JSON number as written in the payload."""


def to_json(value: object, style: tuple[str, str, bool]) -> str:
    """JSON text with ``Number``s written as given; ``style``: item and key separators and
    whether non-ASCII is escaped."""
    item, key_sep, ascii_only = style
    if isinstance(value, Number):
        return str.__str__(value)
    if isinstance(value, dict):
        return (
            "{"
            + item.join(
                json.dumps(k, ensure_ascii=ascii_only) + key_sep + to_json(v, style)
                for k, v in value.items()
            )
            + "}"
        )
    if isinstance(value, list):
        return "[" + item.join(to_json(v, style) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


#: numbers a double holds exactly enough (they keep the row on the vectorised/plan paths)
short_numbers = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.builds(
        "{}{}e{}{}".format,
        st.integers(1, 99),
        st.sampled_from(["", ".5", ".25"]),
        st.sampled_from(["", "+", "-"]),
        st.integers(0, 30),
    ),
    st.floats(-1e6, 1e6).map(lambda x: repr(round(x, 3))),
    st.sampled_from(["1e-7", "1.5e-5", "0.00001", "2E-6", "1.50", "2E3", "0.1", "-0"]),
)
number_texts = st.one_of(
    short_numbers,
    short_numbers,
    st.from_regex(r"\A-?(0|[1-9][0-9]{0,40})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,4})?\Z"),
    st.integers().map(str),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(
        [
            "-0",
            "-0.0",
            "0e0",
            "1e400",
            "-1e400",
            "1e-400",
            "2.5e15",
            "1E5",
            "1.50",
            "5e-324",
            "1.7976931348623157e308",
            "18446744073709551616",
            "-9223372036854775809",
            "0.30000000000000004",
            "1e16",
            "1e-7",
        ]
    ),
).map(Number)
KEYS = [
    "a",
    "b",
    "A",
    "userId",
    "userid",
    "a_b",
    "a.b",
    "x y",
    "",
    " ",
    "message_id",
    "idempotency_key",
    "_metadata",
    "1st",
    "caf\u00e9",
    "\u65e5\u672c",
    "\U0001f680",
    "DROP TABLE x;--",
    "k" * 130,
    "\u202e",
    "e\u0301",
    "\x00",
]
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=6))
strings = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "null",
            "1.50",
            "{}",
            "[1]",
            'q"uote',
            "back\\slash",
            "\x00",
            "\t\n",
            "\u2028",
            "\U0010fffd",
            "\U000e0001",
            "\u0645\u0631",
            "e\u0301\u0301",
            "\ufeff",
        ]
    ),
)
leaves = st.one_of(st.none(), st.booleans(), number_texts, strings)
json_values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)
styles = st.tuples(st.sampled_from([",", ", "]), st.sampled_from([":", ": "]), st.booleans())


def depth_of(value: object) -> int:
    """Levels of objects and arrays (the payload itself is level 1)."""
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


@st.composite
def payloads(draw) -> tuple[str, dict]:
    body = draw(st.dictionaries(keys, json_values, max_size=5))
    levels = draw(st.integers(1, 140)) if draw(st.integers(0, 7)) == 0 else 0
    if levels:  # now and then a value deep down, near and beyond the depth limit
        deep = draw(leaves)
        for _ in range(levels):
            deep = draw(st.sampled_from([[deep], {"d": deep}, [1, {"": deep}]]))
        body["deep"] = deep
    key = draw(st.one_of(st.text(min_size=1, max_size=4), st.just(""), number_texts))
    body["_metadata"] = {"idempotencyKeyResource": key}
    return to_json(body, draw(styles)), body


def paths_of(value: object, prefix: tuple = ()) -> list[tuple[tuple, object]]:
    """The payload's leaves as flatten sees them (null = absent, arrays are leaves)."""
    if isinstance(value, dict):
        if not value and prefix:
            return [(prefix, {})]
        return [leaf for k, v in value.items() for leaf in paths_of(v, (*prefix, k))]
    return [] if value is None else [(prefix, value)]


def both_paths(raw: pa.Table) -> flatten.FlattenResult:
    """The fast implementation and the reference give the same result."""
    fast = flatten.flatten_raw(raw, SCHEMA)
    slow = flatten.flatten_raw(raw, SCHEMA, reference=True)
    assert fast.rows.equals(slow.rows)
    assert fast.errors.equals(slow.errors)
    assert (fast.columns, fast.sanitised) == (slow.columns, slow.sanitised)
    return fast


def number_text(text: str) -> str:
    """docs/schemas.md: integers as written (``-0`` as ``0``); other numbers the shortest text
    of the same double (``repr``) when it has at most 15 significant digits, else as written."""
    if re.fullmatch(r"-?[0-9]+", text):
        return "0" if text == "-0" else text
    value = float(text)
    if math.isinf(value):
        return text
    shortest = repr(value)
    digits = re.split("[eE]", shortest)[0].lstrip("-").replace(".", "").strip("0")
    return shortest if len(digits) <= 15 else text


def array_text(value: object) -> str:
    """docs/schemas.md: compact JSON, strings escaped where JSON requires, numbers as scalars."""
    if isinstance(value, Number):
        return number_text(str.__str__(value))
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(
                json.dumps(k, ensure_ascii=False) + ":" + array_text(v) for k, v in value.items()
            )
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(array_text(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


@BOUNDED
@given(cases=st.lists(payloads(), min_size=1, max_size=8), repeat=st.integers(1, 3))
def test_property_flatten_is_total_paths_agree_and_values_keep_their_meaning(cases, repeat):
    texts = [text for text, _ in cases] * repeat  # repeats: shapes seeded by earlier rows
    result = both_paths(raw_rows(texts))
    assert result.rows.num_rows + result.errors.num_rows == len(texts)

    kept = dict.fromkeys(result.rows.column("message_id").to_pylist())
    rows = {row["message_id"]: row for row in result.rows.to_pylist()}
    errors = {e["message_id"]: e for e in result.errors.to_pylist()}
    namer = ColumnNamer(SCHEMA.metadata_targets)
    for i, (_, body) in enumerate(cases * repeat):
        message_id = f"m{i}"
        if depth_of(body) > flatten.MAX_DEPTH:
            assert errors[message_id]["error_reason"] == "too_deep"
            continue
        if message_id not in kept:
            assert errors[message_id]["error_reason"].startswith("missing_required_metadata")
            assert body["_metadata"]["idempotencyKeyResource"] == ""
            continue
        row = rows[message_id]
        leaves = paths_of({k: v for k, v in body.items() if k != "_metadata"})
        names = [namer(path) for path, _ in leaves]
        for (_, value), name in zip(leaves, names, strict=True):
            if names.count(name) > 1 or name not in row:
                continue  # a collision: the suffixed name (test_flatten covers the rule)
            written = row[name]
            if isinstance(value, Number):
                assert written == number_text(str.__str__(value))
            elif isinstance(value, bool):
                assert written == ("true" if value else "false")
            elif isinstance(value, str):
                assert written == value
            elif isinstance(value, dict):
                assert written == "{}"
            else:
                assert written == array_text(value)
        assert set(row) - META_COLUMNS >= {n for n in names if names.count(n) == 1}
