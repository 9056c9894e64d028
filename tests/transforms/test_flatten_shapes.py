"""The vectorised shape path gives exactly what the per-row path gives (tables, errors, names).

Every case runs ``flatten_raw`` twice, with the fast implementation and with the reference
(``reference=True``), and compares everything.
Inputs: the injector's generators (drift, malformed bodies, duplicates, corrections, poison),
adversarial payloads (numbers, escapes, whitespace, collisions, invalid JSON) and seeded random
payloads mixing both.
"""

from __future__ import annotations

import contextlib
import json
import random
import string

import numpy as np
import orjson
import pyarrow as pa
import pytest

from leanops_dagster.local.injector.config import StreamConfig
from leanops_dagster.local.injector.generators import stream_bodies
from leanops_dagster.pipeline.process_tuning import flatten_increment
from leanops_dagster.schemas.models import StandardizedSchema
from leanops_dagster.transforms import flatten
from leanops_dagster.transforms.flatten import plans, shapes
from leanops_dagster.transforms.flatten.naming import ColumnNamer
from leanops_dagster.transforms.flatten.payload import float_text, number_text
from leanops_dagster.transforms.flatten.shapes import ShapeMatcher
from tests.transforms.conftest import raw_rows

SCHEMA = StandardizedSchema()
SENSOR_SCHEMA = StandardizedSchema(drop_keys=["_metadata_messageid"])


def both(raw: pa.Table, schema: StandardizedSchema = SCHEMA):
    fast = flatten.flatten_raw(raw, schema)
    slow = flatten.flatten_raw(raw, schema, reference=True)
    assert fast.rows.schema == slow.rows.schema
    assert fast.rows.equals(slow.rows), _first_difference(fast.rows, slow.rows)
    assert fast.errors.equals(slow.errors)
    assert fast.columns == slow.columns
    assert fast.sanitised == slow.sanitised
    return fast


def _first_difference(a: pa.Table, b: pa.Table) -> str:
    for name in a.column_names:
        x, y = a.column(name).to_pylist(), b.column(name).to_pylist()
        for i, (u, v) in enumerate(zip(x, y, strict=True)):
            if u != v:
                return f"{name} row {i}: fast {u!r} per-row {v!r}"
    return "same values"


def shaped_share(payloads: list) -> float:
    """Share of rows the vectorised path takes (the rest go to the per-row path)."""
    array = pa.array(payloads, pa.string())
    hit = ShapeMatcher(ColumnNamer()).run(array).kept_rows()
    return len(hit) / max(1, len(payloads))


@pytest.mark.parametrize("kind", ["events", "sensor_readings"])
def test_generators_with_drift_malformed_duplicates(kind):
    stream = StreamConfig(
        topic=kind,
        records=3000,
        drift=300,
        malformed=120,
        duplicates=100,
        corrections=100,
        poison=5,
        delivery_errors=5,
    )
    bodies = stream_bodies(stream, seed=11)
    schema = SCHEMA if kind == "events" else SENSOR_SCHEMA
    result = both(raw_rows(bodies), schema)
    assert result.errors.num_rows == 120
    assert shaped_share(bodies) > 0.9  # the comparison exercises the vectorised path


NUMBERS = [
    "0",
    "-0",
    "7",
    "-12",
    "42",
    "123456789012345678901234567890",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775809",
    "1.5",
    "1.50",
    "-0.25",
    "0.0",
    "-0.0",
    "21.0",
    "100.0",
    "1E5",
    "1e5",
    "1e-7",
    "2.5e+3",
    "0.0001",
    "0.00001",
    "-0.00012",
    "0.1",
    "0.30000000000000004",
    "0.12345678901234567",
    "123456789012345.6",
    "12345678901234.5",
    "1234567890123456.0",
    "1e400",
    "-1e400",
    "1.7976931348623157e308",
    "5e-324",
    "3.141592653589793",
    "2.718281828",
    "0.000123",
    "99999999999999.9",
    "100000000000000000000",
    "-100000000000000000000000",
    "1e20",
    "1E+20",
    "-9.3e18",
]
ODD_STRINGS = [
    "",
    " ",
    "plain",
    "t\u00e9xt",
    "\u65e5\u672c",
    "emoji \U0001f680",
    'quote " inside',
    "back\\slash",
    "tab\tin",
    "new\nline",
    "\u00e9\u0301",
    "null",
    "true",
    "1.50",
    "{}",
    "[1]",
    "\u2028",
    "\x7f",
]


def adversarial_payloads() -> list:
    meta = {"idempotencyKeyResource": "k", "messageId": "m", "publishTime": "t"}
    rows: list = []
    for text in NUMBERS:
        for sep in ((",", ":"), (", ", ": ")):
            rows.append(
                '{"n"'
                + sep[1]
                + text
                + sep[0]
                + '"s"'
                + sep[1]
                + '"x"'
                + sep[0]
                + '"_metadata"'
                + sep[1]
                + json.dumps(meta, separators=sep)
                + "}"
            )
            rows.append(
                '{"a"'
                + sep[1]
                + '{"n"'
                + sep[1]
                + text
                + "}"
                + sep[0]
                + '"_metadata"'
                + sep[1]
                + json.dumps(meta, separators=sep)
                + "}"
            )
    for value in ODD_STRINGS:
        for ensure_ascii in (True, False):
            rows.append(json.dumps({"s": value, "_metadata": meta}, ensure_ascii=ensure_ascii))
            rows.append(
                json.dumps(
                    {value or "_": {"k": value}, "_metadata": meta}, ensure_ascii=ensure_ascii
                )
            )
    rows += [
        '{"flag": true, "off": false, "nothing": null, "_metadata": {"idempotencyKeyResource": 1}}',
        '{"flag": false, "off": true, "nothing": 3, "_metadata": {"idempotencyKeyResource": 2}}',
        '{"flag": null, "off": null, "nothing": null, "_metadata": {"idempotencyKeyResource": 3}}',
        '{"e": {}, "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"e": {"f": {}}, "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"e": {"f": null}, "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"l": [1, 2.50, "x", {"a": 1e5}], "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"l": [], "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"a": 1, "a": 2, "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"userId": "A", "userid": "B", "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"userId": null, "userid": "B", "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"a": {"b": "nested"}, "a_b": "flat", "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"message_id": "spoof", "user-Name": "x", "1st": "y", "_metadata": '
        '{"idempotencyKeyResource": "k"}}',
        '{"drop table x;--": "f", "caf\u00e9": "d", "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"' + "k" * 130 + '": "long", "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"": "empty key", "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"x": "no metadata"}',
        '{"x": "empty key", "_metadata": {"idempotencyKeyResource": ""}}',
        '{"x": "null key", "_metadata": {"idempotencyKeyResource": null}}',
        '{"_metadata": {"idempotencyKeyResource": "only metadata"}}',
        "{}",
        " {} ",
        "{ }",
        '  {"x": "padded", "_metadata": {"idempotencyKeyResource": "k"}}  ',
        '{\n"x": "newline", "_metadata": {"idempotencyKeyResource": "k"}}',
        '{\t"x": "tab", "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"x": "ctrl\x01", "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"x": "\\ud800", "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"x": "\\udc00\\ud800", "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"x": "\\ud83d\\ude80", "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"x": NaN, "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"x": Infinity, "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"x": -Infinity, "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"x": 01, "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"x": .5, "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"x": 1., "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"x": +1, "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"x": tru, "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"x": True, "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"x": "a",, "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"x": "a" "_metadata": {"idempotencyKeyResource": "k"}}',
        '{"x": "a", "_metadata": {"idempotencyKeyResource": "k"},}',
        '{"x": "a", "_metadata": {"idempotencyKeyResource": "k"}}{"y": 1}',
        '{"x": "a", "_metadata": {"idempotencyKeyResource": "k"}} null',
        '{"x": "a", "_metadata": {"idempotencyKeyResource": "k"}',
        '{"x": "a", "_metadata": {"idempotencyKeyResource": "k"}}}',
        '\ufeff{"x": "bom"}',
        "null",
        "true",
        "1",
        '"s"',
        "[1, 2]",
        "[]",
        "",
        "   ",
        "not json",
        None,
        "{'x': 'python'}",
        '{"x": "a"}\n{"x": "b"}',
    ]
    return rows


def test_adversarial_payloads():
    payloads = adversarial_payloads()
    both(raw_rows(payloads), SCHEMA)
    # each twice in a row, and the whole list reversed: shapes seeded by other rows
    doubled = [p for p in payloads for _ in range(2)]
    both(raw_rows(doubled + doubled[::-1]), SCHEMA)


def _random_value(rng: random.Random, depth: int):
    kind = rng.random()
    if kind < 0.35:
        alphabet = string.ascii_letters + string.digits + ' -_:."\\/\u00e9\u65e5\U0001f680\t'
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 20)))
    if kind < 0.5:
        return rng.randrange(-(10 ** rng.randrange(1, 25)), 10 ** rng.randrange(1, 25))
    if kind < 0.7:
        x = rng.uniform(-1, 1) * 10 ** rng.randrange(-8, 18)
        return round(x, rng.randrange(0, 12)) if rng.random() < 0.6 else x
    if kind < 0.78:
        return rng.choice([True, False, None])
    if kind < 0.88 and depth < 3:
        return {_random_key(rng): _random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))}
    if kind < 0.92:
        return (
            [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 3))]
            if depth < 3
            else "leaf"
        )
    return rng.choice(["", "x", "null", "1.50"])


def _random_key(rng: random.Random) -> str:
    return rng.choice(
        [
            "a",
            "b",
            "A",
            "userId",
            "userid",
            "a_b",
            "x.y",
            "message_id",
            "1st",
            "caf\u00e9",
            "",
            "k" * 3,
            "deep",
            "n",
            "s",
        ]
    )


def _refresh(rng: random.Random, value):
    """A new value of the same JSON kind (the same shape, other values)."""
    if isinstance(value, dict):
        return {k: _refresh(rng, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_random_value(rng, 3) for _ in value]
    if isinstance(value, bool) or value is None:
        return rng.choice([True, False]) if isinstance(value, bool) else None
    if isinstance(value, int):
        return rng.randrange(-(10 ** rng.randrange(1, 22)), 10 ** rng.randrange(1, 22))
    if isinstance(value, float):
        x = rng.uniform(-1, 1) * 10 ** rng.randrange(-7, 17)
        return round(x, rng.randrange(0, 8)) if rng.random() < 0.8 else x
    alphabet = string.ascii_letters + " -_:./\u00e9\u65e5\U0001f680"
    if rng.random() < 0.05:
        alphabet += '"\\\t'
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))


def random_payloads(seed: int, n: int) -> list[str]:
    """A few random templates, each repeated with fresh values (as a serializer would)."""
    rng = random.Random(seed)
    templates = []
    for _ in range(6):
        template = {_random_key(rng): _random_value(rng, 1) for _ in range(rng.randrange(1, 6))}
        separators = rng.choice([(",", ":"), (", ", ": "), (",", ": ")])
        templates.append((template, separators, rng.random() < 0.3))
    payloads = []
    for i in range(n):
        template, separators, ascii_only = templates[i % len(templates)]
        obj = (
            _refresh(rng, template)
            if rng.random() < 0.9
            else {_random_key(rng): _random_value(rng, 1) for _ in range(3)}
        )
        obj["_metadata"] = {"idempotencyKeyResource": f"k{i}" if rng.random() < 0.95 else ""}
        payloads.append(json.dumps(obj, separators=separators, ensure_ascii=ascii_only))
    return payloads


@pytest.mark.parametrize("seed", range(6))
def test_random_payloads(seed):
    payloads = random_payloads(seed, 1500)
    both(raw_rows(payloads), SCHEMA)
    random.Random(seed).shuffle(payloads)
    both(raw_rows(payloads), SCHEMA)


def test_scalar_only_shapes_are_taken_and_numbers_match():
    """Rows of one serializer, every value a number, bool or null: mostly vectorised, and
    every number text identical to the per-row path (shortest round-trip rule)."""
    rng = random.Random(5)
    payloads = []
    for i in range(4000):
        x = rng.uniform(-1, 1) * 10 ** rng.randrange(-6, 17)
        values = {
            "t": round(x, rng.randrange(0, 10)),
            "raw": x if rng.random() < 0.1 else round(x, 3),  # 17 digits: per-row path
            "i": rng.randrange(-(10**18), 10**18),
            "b": rng.random() < 0.5,
            "z": None if rng.random() < 0.5 else 0.0,
        }
        values["_metadata"] = {"idempotencyKeyResource": f"k{i}"}
        payloads.append(json.dumps(values, separators=(",", ":")))
    both(raw_rows(payloads), SCHEMA)
    assert shaped_share(payloads) > 0.5


BEYOND_64_BITS = [  # orjson reads these as floats; their digits must survive anyway
    "123456789012345678901234567890",
    "100000000000000000000",
    "18446744073709551616",
    "-9223372036854775809",
    "-100000000000000000000000",
    "100000000000000000000000000000",
]


@pytest.mark.parametrize("fast_path", [True, False])
def test_integers_beyond_64_bits_keep_their_digits(fast_path):
    """Scalar, nested and in an array, alone in a row or next to ordinary values."""
    meta = '"_metadata":{"idempotencyKeyResource":"k"}'
    payloads = []
    for text in BEYOND_64_BITS:
        payloads += [
            f'{{"n":{text},{meta}}}',
            f'{{"a":{{"n":{text}}},{meta}}}',
            f'{{"l":[1,{text},2.5,1e20],{meta}}}',
            f'{{"n":{text},"f":1.5,"i":7,{meta}}}',
        ]
    result = flatten.flatten_raw(raw_rows(payloads), SCHEMA, reference=not fast_path)
    rows = result.rows.select(["n", "a_n", "l", "f", "i"]).to_pylist()
    for k, text in enumerate(BEYOND_64_BITS):
        scalar, nested, array, mixed = rows[4 * k : 4 * k + 4]
        assert scalar["n"] == nested["a_n"] == mixed["n"] == text
        assert array["l"] == f"[1,{text},2.5,1e+20]"
        assert (mixed["f"], mixed["i"]) == ("1.5", "7")
    both(raw_rows(payloads), SCHEMA)


def test_canonical_float_texts_are_their_own_shortest_form():
    rng = np.random.default_rng(3)
    values = np.concatenate(
        [
            rng.uniform(-1, 1, 20_000) * 10.0 ** rng.integers(-5, 17, 20_000),
            np.round(rng.uniform(-1000, 1000, 20_000), rng.integers(0, 12)),
        ]
    )
    for value in values.tolist():
        text = repr(value)
        if "e" in text or len(text) > 16 or text.lstrip("-").startswith("0.0000"):
            continue
        assert float_text(float(text)) == text


def test_the_shortcuts_of_the_number_rule_agree_with_it():
    """``payload.number_text`` is the rule; the vectorised path keeps a literal only when its
    text is its own ``number_text``, the plans write a float only as ``number_text`` writes
    every literal that reads as it."""
    rng = random.Random(8)
    texts = NUMBERS + [
        text
        for _ in range(5000)
        for text in (
            repr(rng.uniform(-1, 1) * 10 ** rng.randrange(-8, 22)),
            repr(round(rng.uniform(-1000, 1000), rng.randrange(0, 14))),
            str(rng.randrange(-(10 ** rng.randrange(1, 25)), 10 ** rng.randrange(1, 25))),
            f"{rng.uniform(-1, 1):.{rng.randrange(0, 18)}f}",
        )
    ]
    values, kept = shapes._literal_text(pa.array(texts, pa.string()))
    planned = 0
    for text, value, keep in zip(texts, values.to_pylist(), kept.tolist(), strict=True):
        if keep:
            assert value == text == number_text(text)
        # a float left to the reference, or beyond what orjson reads
        with contextlib.suppress(plans._NeedsReference, orjson.JSONDecodeError):
            assert plans._value_text(orjson.loads(text)) == number_text(text)
            planned += 1
    assert sum(kept.tolist()) > len(texts) / 4 and planned > len(texts) / 2  # not vacuous


def test_chunked_sliced_and_large_string_inputs():
    bodies = stream_bodies(
        StreamConfig(topic="events", records=900, drift=50, malformed=30), seed=4
    )
    raw = raw_rows(bodies)
    chunked = pa.concat_tables([raw.slice(0, 300), raw.slice(300, 1), raw.slice(301)])
    both(chunked, SCHEMA)
    both(raw.slice(17, 500), SCHEMA)
    large = raw.set_column(2, "json_payload", raw.column("json_payload").cast(pa.large_string()))
    both(large, SCHEMA)
    fast = flatten.flatten_raw(raw, SCHEMA)
    parallel = flatten_increment(raw, SCHEMA, snapshot_column="raw_snapshot_id", workers=2)
    assert parallel.rows.equals(fast.rows) and parallel.errors.equals(fast.errors)


def test_negative_zero_is_written_alike_on_every_path():
    """``-0`` becomes ``"0"`` whether the row is flattened alone, with a long float that sends
    it to the exact path, or in an array."""
    meta = '"_metadata":{"idempotencyKeyResource":"k"}'
    payloads = [
        f'{{"z":-0,{meta}}}',
        f'{{"z":-0,"long":0.12345678901234567,{meta}}}',
        f'{{"z":-0,"l":[-0,1],{meta}}}',
    ]
    result = both(raw_rows(payloads), SCHEMA)
    assert result.rows.column("z").to_pylist() == ["0", "0", "0"]
