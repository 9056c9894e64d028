"""Faults injected into the rules (shared by the Arrow tests here and the Spark engine's
tests): a row no rule foresaw, standing in for the inputs the safety net exists for."""

from __future__ import annotations

import pytest

from leanops_dagster.transforms import flatten, validate

POISON = "POISON"


@pytest.fixture
def poisoned_flatten(monkeypatch):
    """flatten_raw raising on any RAW row whose payload holds the marker; counts its calls."""
    original = flatten.flatten_raw
    calls = []

    def flatten_raw(raw, *args, **kwargs):
        calls.append(raw.num_rows)
        if any(POISON in p for p in raw.column("json_payload").to_pylist()):
            raise ValueError("injected: a payload no rule foresaw")
        return original(raw, *args, **kwargs)

    monkeypatch.setattr(flatten, "flatten_raw", flatten_raw)
    return calls


@pytest.fixture
def poisoned_validate(monkeypatch):
    """validate_and_cast raising on any Standardized row whose verb is the marker."""
    original = validate.validate_and_cast

    def validate_and_cast(rows, schema, **kwargs):
        if "event_verb" in rows.column_names and POISON in rows.column("event_verb").to_pylist():
            raise KeyError("injected: a rule lookup failed")
        return original(rows, schema, **kwargs)

    monkeypatch.setattr(validate, "validate_and_cast", validate_and_cast)
