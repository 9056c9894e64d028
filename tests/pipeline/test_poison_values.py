"""Issue 8 end to end: values no cast can store reach ``curated.errors``; Curated commits.

Through ``standardize_topic`` and ``curate_topic`` on a real local SQL catalog (the fixtures
of tests/dagster): the three instants that used to make every run fail in pyiceberg's Parquet
statistics (``OverflowError: date value out of range``), among good rows, a correction and a
network duplicate, plus strings Parquet must store as they are (NUL, every plane, RTL).
"""

from __future__ import annotations

import pytest

from leanops_dagster.pipeline import accountability
from leanops_dagster.pipeline.curate import curate_topic
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.standardize import standardize_topic
from tests.dagster.conftest import (  # noqa: F401 - fixtures used by name
    append_raw,
    catalog,
    event,
    raw_row,
    registry,
    settings,
)

TABLES = TopicTables("events")
KEY = b"test-key"
POISON = {
    "late": "9999-12-31T23:59:59-01:00",  # year 10000 in UTC
    "millis": 253402300800000,  # epoch milliseconds of 10000-01-01T00:00:00Z (a number)
    "early": "0001-01-01T00:30:00+01:00",  # year 0 in UTC
}
HOSTILE_VERBS = ["nul\x00inside", "\U0001f680\U0010fffd\U000e0001", "\u0645\u0631\u202e",
                 "e\u0301\u0301"]


def with_timestamp(key: str, timestamp) -> dict:
    body = event(key)
    body["event"]["timestamp"] = timestamp
    return body


@pytest.fixture
def deployed(registry):  # noqa: F811 - the imported fixture
    registry.deploy("events")
    return registry


def rows_of(catalog, identifier, columns):  # noqa: F811
    table = catalog.load_table(identifier).scan(selected_fields=tuple(columns)).to_arrow()
    return sorted(table.to_pylist(), key=lambda r: tuple(str(r[c]) for c in columns))


def test_out_of_range_instants_are_error_rows_and_the_good_rows_are_curated(
    catalog, deployed  # noqa: F811
):
    schema = deployed.load("events")
    rows = [raw_row(f"good{i}", event(f"k{i}", verb=verb), minutes=i)
            for i, verb in enumerate(HOSTILE_VERBS)]
    rows += [raw_row(f"poison-{name}", with_timestamp(f"p-{name}", value), minutes=1)
             for name, value in POISON.items()]
    rows += [
        raw_row("good0", event("k0", verb=HOSTILE_VERBS[0]), ingested=9),  # network duplicate
        raw_row("old5", event("k5", verb="first"), minutes=2),
        raw_row("fix5", event("k5", verb="corrected"), minutes=30),  # newer version of k5
    ]
    append_raw(catalog, rows)

    std = standardize_topic(catalog, TABLES, schema)
    assert (std.rows_read, std.rows_written, std.duplicates, std.parse_errors) == (10, 9, 1, 0)
    cur = curate_topic(catalog, TABLES, schema, pii_key=KEY)
    assert cur.snapshot_id is not None  # Curated committed
    assert (cur.rows_read, cur.inserted, cur.superseded, cur.cde_error_rows) == (9, 5, 1, 3)
    assert cur.balanced

    curated = rows_of(catalog, TABLES.curated, ["idempotency_key", "message_id", "verb"])
    assert curated == [
        *({"idempotency_key": f"k{i}", "message_id": f"good{i}", "verb": verb}
          for i, verb in enumerate(HOSTILE_VERBS)),
        {"idempotency_key": "k5", "message_id": "fix5", "verb": "corrected"},
    ]
    errors = rows_of(catalog, TABLES.curated_errors,
                     ["message_id", "column_name", "rule", "offending_value"])
    assert errors == sorted(
        ({"message_id": f"poison-{name}", "column_name": "event_timestamp",
          "rule": "type_cast", "offending_value": str(value)} for name, value in POISON.items()),
        key=lambda r: r["message_id"],
    )
    for equation in (accountability.post_raw_equation(catalog, TABLES),
                     accountability.curated_equation(catalog, TABLES)):
        assert equation.balanced, equation

    # the next run reads nothing new and fails nothing; a later good row still gets through
    append_raw(catalog, [raw_row("good9", event("k9"), minutes=40)])
    standardize_topic(catalog, TABLES, schema)
    again = curate_topic(catalog, TABLES, schema, pii_key=KEY)
    assert (again.rows_read, again.inserted, again.cde_error_rows) == (1, 1, 0)
    assert accountability.curated_equation(catalog, TABLES).balanced
