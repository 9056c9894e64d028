"""Flattening at its limits, on both paths: the number and key rules of docs/schemas.md,
nesting depth, payload bytes that are not UTF-8, and cases the property tests found."""

from __future__ import annotations

import pyarrow as pa
import pytest

from leanops_dagster.schemas.models import StandardizedSchema
from leanops_dagster.transforms import flatten
from leanops_dagster.transforms.flatten.naming import path_digest
from tests.transforms.conftest import raw_rows

SCHEMA = StandardizedSchema()
META = '"_metadata":{"idempotencyKeyResource":"k"}'
#: a 17-digit float sends its whole row to the exact (reference) path
EXACT = '"long":0.12345678901234567,'


def run(payloads, fast_path):
    return flatten.flatten_raw(raw_rows(payloads), SCHEMA, reference=not fast_path)


@pytest.mark.parametrize("fast_path", [True, False])
@pytest.mark.parametrize("route", ["", EXACT])
@pytest.mark.parametrize(
    ("literal", "text"),
    [
        ("2.5e15", "2500000000000000.0"),  # 2 significant digits: the shortest form
        ("2.5e14", "250000000000000.0"),
        ("1234567890123456e0", "1234567890123456e0"),  # 16 digits: as written
        ("1e16", "1e+16"),
        ("1E5", "100000.0"),
        ("1.50", "1.5"),
        ("1e-7", "1e-07"),
        ("-0", "0"),  # an integer as written, but -0 is 0
        ("-0.0", "-0.0"),
        ("007", None),  # not JSON
        ("123456789012345678901234567890", "123456789012345678901234567890"),
        ("1e400", "1e400"),  # beyond double range: as written
        ("1.00000000000000000001", "1.0"),  # digits beyond double precision are lost
    ],
)
def test_number_texts(literal, text, route, fast_path):
    result = run([f'{{"n":{literal},{route}{META}}}'], fast_path)
    if text is None:
        assert result.errors.column("error_reason").to_pylist() == ["invalid_json"]
    else:
        assert result.rows.column("n").to_pylist() == [text]


@pytest.mark.parametrize("fast_path", [True, False])
@pytest.mark.parametrize("route", ["", EXACT])
def test_numbers_in_arrays_are_written_like_scalars(route, fast_path):
    array = '[1.50,2E3,1e-7,1.5e-5,-0,2.5e15,{"x":[0.1]},"1.50",1e400]'
    result = run([f'{{"l":{array},{route}{META}}}', f'{{"l":[1e-7],{route}{META}}}'], fast_path)
    assert result.rows.column("l").to_pylist() == [
        '[1.5,2000.0,1e-07,1.5e-05,0,2500000000000000.0,{"x":[0.1]},"1.50",1e400]',
        "[1e-07]",
    ]


@pytest.mark.parametrize("fast_path", [True, False])
def test_an_empty_key_joins_like_any_key(fast_path):
    """At the top the name is empty (unsafe): ``_`` + the suffix; nested it joins as ``a_``,
    and collides with a key ``a_`` like any two paths with one name."""
    result = run(
        [f'{{"":"e","a":{{"":"f"}},{META}}}', f'{{"a":{{"":"g"}},"a_":"h",{META}}}'], fast_path
    )
    empty, suffixed = f"__{path_digest(('',))}", f"a__{path_digest(('a_',))}"
    assert result.rows.select([empty, "a_", suffixed]).to_pylist() == [
        {empty: "e", "a_": "f", suffixed: None},
        {empty: None, "a_": "g", suffixed: "h"},  # ("a", "") sorts before ("a_",)
    ]


def nested(depth: int, kind: str) -> str:
    """A payload whose deepest value sits ``depth`` levels down (the payload is level 1)."""
    inner = "1"
    for _ in range(depth - 1):
        inner = f"[{inner}]" if kind == "array" else f'{{"a":{inner}}}'
    return f'{{"x":{inner},{META}}}'


@pytest.mark.parametrize("fast_path", [True, False])
@pytest.mark.parametrize("kind", ["array", "object"])
def test_nesting_deeper_than_the_limit_is_a_parse_error(kind, fast_path):
    limit = flatten.MAX_DEPTH
    depths = [limit, limit + 1, 255, 256, 600, 990, 1100]
    result = run([nested(d, kind) for d in depths], fast_path)
    assert result.rows.column("message_id").to_pylist() == ["m0"]
    reasons = result.errors.select(["message_id", "error_reason"]).to_pylist()
    assert reasons == [
        {"message_id": f"m{i}", "error_reason": "too_deep" if d <= 1024 else "invalid_json"}
        for i, d in enumerate(depths)
        if d > limit
    ]


@pytest.mark.parametrize("fast_path", [True, False])
def test_payload_bytes_that_are_not_utf8_are_parse_errors_shown_escaped(fast_path):
    good = f'{{"s":"ok",{META}}}'.encode()
    bad = [f'{{"s":"{c}",{META}}}'.encode("latin-1") for c in ("\xed\xa0\x80", "\xff")]
    raw = raw_rows([""] * 4)
    payloads = pa.array([good, bad[0], good, bad[1]], pa.binary()).view(pa.string())
    result = flatten.flatten_raw(
        raw.set_column(2, "json_payload", payloads), SCHEMA, reference=not fast_path
    )
    assert result.rows.column("message_id").to_pylist() == ["m0", "m2"]
    assert result.errors.select(
        ["message_id", "error_reason", "error_detail", "json_payload"]
    ).to_pylist() == [
        {
            "message_id": f"m{i}",
            "error_reason": "invalid_json",
            "error_detail": "payload is not valid UTF-8",
            "json_payload": b.decode("utf-8", "backslashreplace"),
        }
        for i, b in ((1, bad[0]), (3, bad[1]))
    ]
    result.errors.validate(full=True)  # storable in parse_errors


@pytest.mark.parametrize("fast_path", [True, False])
def test_missing_metadata_in_rows_of_different_shapes(fast_path):
    """Found by the property test: the metadata column built from two pieces used to make
    the parse error table raise (a chunked array where an array was expected)."""
    result = run(
        [
            '{"_metadata":{"idempotencyKeyResource":""}}',
            '{"_metadata": {"idempotencyKeyResource": "0"}}',
        ],
        fast_path,
    )
    assert result.rows.column("idempotency_key").to_pylist() == ["0"]
    assert result.errors.column("error_reason").to_pylist() == [
        "missing_required_metadata:idempotency_key"
    ]


@pytest.mark.parametrize("fast_path", [True, False])
def test_lone_surrogate_escapes_are_invalid_json(fast_path):
    """Valid JSON escapes, but no UTF-8 text holds them: in a value or in a key."""
    result = run(
        [
            f'{{"x":"\\ud800",{META}}}',
            f'{{"\\udc00":"x",{META}}}',
            f'{{"x":"\\ud83d\\ude80",{META}}}',
        ],
        fast_path,
    )
    assert result.rows.column("x").to_pylist() == ["\U0001f680"]
    assert result.errors.select(["message_id", "error_reason"]).to_pylist() == [
        {"message_id": "m0", "error_reason": "invalid_json"},
        {"message_id": "m1", "error_reason": "invalid_json"},
    ]
