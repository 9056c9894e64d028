"""Each layer's rules are one function (``transforms.rules``): a rule added to it is applied
by the layer run AND seen by the safety net's probe, without touching ``pipeline/quarantine.py``.

The planted rule raises on one row only; if the probe ran a copy of the rules instead of the
function itself, it would not reproduce the fault and the run would fail instead of
quarantining that row.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from leanops_dagster.pipeline.curate import curate_topic
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.standardize import standardize_topic
from leanops_dagster.transforms import rules
from tests.dagster.conftest import append_raw, event, raw_row

TABLES = TopicTables("events")
KEY = b"test-key"


@pytest.fixture
def schema(registry):
    registry.deploy("events")
    return registry.load("events")


def _plant(monkeypatch, name: str, rows_of, message_id: str) -> list[int]:
    """Add a rule at the end of ``rules.<name>`` that raises on ``message_id``'s row."""
    original = getattr(rules, name)
    seen: list[int] = []

    def with_planted_rule(rows: pa.Table, *args, **kwargs):
        ruled = original(rows, *args, **kwargs)
        ids = rows_of(ruled).column("message_id").to_pylist()
        seen.append(len(ids))
        if message_id in ids:
            raise ValueError(f"planted rule: {message_id}")
        return ruled

    monkeypatch.setattr(rules, name, with_planted_rule)
    return seen


def _ids(catalog, identifier) -> list[str]:
    table = catalog.load_table(identifier).scan(selected_fields=("message_id",)).to_arrow()
    return sorted(table.column("message_id").to_pylist())


def test_a_rule_planted_in_standardize_rules_is_quarantined(catalog, schema, monkeypatch):
    seen = _plant(monkeypatch, "standardize_rules", lambda r: r.flattened.rows, "m2")
    append_raw(catalog, [raw_row(f"m{i}", event(f"k{i}")) for i in range(1, 5)])
    result = standardize_topic(catalog, TABLES, schema)
    assert (result.rows_read, result.rows_written, result.quarantined) == (4, 3, 1)
    assert result.balanced
    assert len(seen) > 2  # the run, then the probes of the net's bisection
    assert _ids(catalog, TABLES.standardized) == ["m1", "m3", "m4"]
    errors = catalog.load_table(TABLES.parse_errors).scan().to_arrow().to_pylist()
    assert [(e["message_id"], e["error_reason"]) for e in errors] == [
        ("m2", "internal:ValueError")]


def test_a_rule_planted_in_curate_rules_is_quarantined(catalog, schema, monkeypatch):
    append_raw(catalog, [raw_row(f"m{i}", event(f"k{i}")) for i in range(1, 5)])
    standardize_topic(catalog, TABLES, schema)

    seen = _plant(monkeypatch, "curate_rules", lambda r: r.rows, "m3")
    result = curate_topic(catalog, TABLES, schema, pii_key=KEY)
    assert (result.rows_read, result.inserted, result.quarantined) == (4, 3, 1)
    assert result.balanced
    assert len(seen) > 2
    assert _ids(catalog, TABLES.curated) == ["m1", "m2", "m4"]
    errors = catalog.load_table(TABLES.curated_errors).scan().to_arrow().to_pylist()
    assert [(e["message_id"], e["rule"]) for e in errors] == [("m3", "internal:ValueError")]
