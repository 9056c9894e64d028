"""PII masking (keyed, deterministic, null-preserving) and drift records."""

from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from leanops_dagster.schemas.models import CuratedSchema
from leanops_dagster.transforms.drift import DRIFT_SCHEMA, drift_keys, drift_records
from leanops_dagster.transforms.mask import hmac_hex, mask_pii
from tests.transforms.conftest import BOUNDED, TS, at, std_rows

SCHEMA = CuratedSchema.model_validate({
    "columns": [
        {"name": "user_id", "source": "event_userid", "type": "string", "cde": True,
         "pii": True},
        {"name": "ip", "type": "string", "pii": True},
        {"name": "n", "type": "long"},
    ],
})


def mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def test_mask_is_keyed_hmac_hex_and_null_stays_null():
    table = pa.table({"user_id": ["alice", None, "alice"], "ip": ["1.2.3.4", "5.6.7.8", None],
                      "n": pa.array([1, 2, 3], pa.int64())})
    masked = mask_pii(table, SCHEMA, b"secret")
    assert masked.column("user_id").to_pylist() == [mac(b"secret", "alice"), None,
                                                    mac(b"secret", "alice")]
    assert masked.column("ip").to_pylist() == [mac(b"secret", "1.2.3.4"),
                                               mac(b"secret", "5.6.7.8"), None]
    assert masked.column("n").to_pylist() == [1, 2, 3]
    other = mask_pii(table, SCHEMA, b"other-key")
    assert other.column("user_id")[0].as_py() != masked.column("user_id")[0].as_py()
    assert len(masked.column("user_id")[0].as_py()) == 64


def test_mask_typed_values_and_errors():
    assert hmac_hex(pa.array([7, None], pa.int64()), b"k").to_pylist() == [mac(b"k", "7"), None]
    with pytest.raises(ValueError, match="empty"):
        hmac_hex(pa.array(["x"]), b"")
    # names instead of a schema; absent columns are ignored
    assert mask_pii(pa.table({"a": ["x"]}), ["a", "zz"], b"k").column("a").to_pylist() == [
        mac(b"k", "x")
    ]


def test_drift_records():
    rows = std_rows({
        "event_userid": ["u0", "u1", "u2"],
        "ip": ["a", "b", "c"],
        "geo_city": [None, "Berlin", "Dublin"],
        "never": [None, None, None],
    })
    rows = rows.set_column(3, "publish_time", pa.array([at(5), at(9), at(1)], TS))
    records = drift_records(rows, SCHEMA, "events")
    expected = pa.Table.from_pylist(
        [{"topic_name": "events", "column_name": "geo_city", "first_seen": at(1),
          "sample_value": "Dublin", "rows_seen": 2}],
        schema=DRIFT_SCHEMA,
    )
    assert records.equals(expected)
    assert drift_keys(["geo_city", "ip", "message_id", "raw_snapshot_id", "x"], SCHEMA) == [
        "geo_city", "x"
    ]
    assert drift_records(rows.slice(0, 0), SCHEMA, "events").num_rows == 0


def _naive_drift(rows: list[dict], columns: list[str]) -> list[dict]:
    """The rule row by row: the earliest publish time with a value, its smallest value."""
    records = []
    for name in sorted(columns):
        seen = [r for r in rows if r[name] is not None]
        if not seen:
            continue
        first = min(seen, key=lambda r: (r["publish_time"], r[name]))
        records.append({"topic_name": "events", "column_name": name,
                        "first_seen": first["publish_time"], "sample_value": first[name],
                        "rows_seen": len(seen)})
    return records


@BOUNDED
@given(st.lists(st.lists(st.one_of(st.none(), st.sampled_from(["b", "a", "\u00e9", ""])),
                         min_size=4, max_size=4),
                min_size=1, max_size=12),
       st.lists(st.integers(0, 3), min_size=12, max_size=12))
def test_property_drift_records_follow_the_rule_row_by_row(values, seconds):
    """Ties on the publish time (the smallest value wins), nulls, empty strings, unicode."""
    columns = ["zeta", "alpha", "\u00e9t\u00e9", "never"]
    rows = std_rows({c: [v[i] for v in values] for i, c in enumerate(columns)})
    times = pa.array([at(s) for s in seconds[:len(values)]], TS)
    rows = rows.set_column(rows.column_names.index("publish_time"), "publish_time", times)
    expected = _naive_drift(rows.to_pylist(), columns)
    assert drift_records(rows, SCHEMA, "events").to_pylist() == expected


def test_a_wide_drift_is_one_record_per_column():
    """2,000 new keys of one row each (a flat JSON of that width) are 2,000 records."""
    width = 2000
    rows = std_rows({f"k{i:04d}": [None, str(i)] for i in range(width)})
    records = drift_records(rows, SCHEMA, "events")
    assert records.num_rows == width
    assert records.column("sample_value").to_pylist() == [str(i) for i in range(width)]
    assert set(records.column("rows_seen").to_pylist()) == {1}
    assert set(records.column("first_seen").to_pylist()) == {rows.column("publish_time")[1].as_py()}
