"""PII masking (keyed, deterministic, null-preserving) and drift records."""

from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa
import pytest

from leanops_dagster.schemas.models import CuratedSchema
from leanops_dagster.transforms.drift import DRIFT_SCHEMA, drift_keys, drift_records
from leanops_dagster.transforms.mask import hmac_hex, mask_pii
from tests.transforms.conftest import TS, at, std_rows

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
