"""Schema files: the repository's schemas load; a bad schema names its file and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leanops_dagster.schemas.loader import (
    SchemaFileError,
    SchemaNotFoundError,
    load_topic_dir,
    source_topics,
)
from leanops_dagster.settings import REPO_ROOT

GOOD_CURATED = {
    "columns": [
        {"name": "amount", "type": "decimal(10,2)", "cde": True},
        {"name": "note", "type": "string", "default": "n/a"},
    ],
}


def write_topic(root: Path, topic: str, curated: dict | str, standardized: dict | None = None):
    folder = root / topic
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "curated.json").write_text(
        curated if isinstance(curated, str) else json.dumps(curated)
    )
    if standardized is not None:
        (folder / "standardized.json").write_text(json.dumps(standardized))
    return folder


def test_repository_schemas_are_valid():
    root = REPO_ROOT / "schemas"
    assert source_topics(root) == ["events", "sensor_readings"]
    events = load_topic_dir(root, "events")
    assert events.standardized.metadata == {"_metadata_idempotencykeyresource": "idempotency_key"}
    assert events.curated.pii_columns == ["ip_address"]
    assert events.curated.sequence == ["publish_time"]
    sensors = load_topic_dir(root, "sensor_readings")
    assert sensors.curated.column("temperature").type == "decimal(6,2)"


def test_defaults_when_standardized_file_is_absent(tmp_path):
    write_topic(tmp_path, "orders", GOOD_CURATED)
    schema = load_topic_dir(tmp_path, "orders")
    assert schema.standardized.required_metadata == ["idempotency_key"]
    assert schema.curated.cde_error_rate_threshold == 0.05


@pytest.mark.parametrize(
    ("curated", "field", "message"),
    [
        ({"columns": [{"name": "a", "type": "decimal(40,2)"}]}, "columns.0.type",
         "precision 40"),
        ({"columns": [{"name": "a", "type": "varchar"}]}, "columns.0.type", "unsupported type"),
        ({"columns": [{"name": "Bad-Name", "type": "string"}]}, "columns.0.name", "must match"),
        ({"columns": [{"name": "message_id", "type": "string"}]}, "columns.0.name", "reserved"),
        ({"columns": [{"name": "a", "type": "int", "cde": True, "default": 1}]}, "columns.0",
         "default is not allowed on a cde column"),
        ({"columns": [{"name": "a", "type": "int", "default": "x"}]}, "columns.0",
         "not a valid int"),
        ({"columns": [{"name": "a", "type": "int", "rules": {"regex": "("}}]},
         "columns.0.rules.regex", "does not compile"),
        ({"columns": [{"name": "a", "type": "int", "rules": {"colour": "red"}}]},
         "columns.0.rules.colour", "Extra inputs"),
        ({"columns": [{"name": "a", "type": "date", "rules": {"min": "soon"}}]}, "columns.0",
         "rules.min"),
        ({"columns": [{"name": "a", "type": "int"}], "sequence": ["nope"]}, "<root>",
         "sequence column 'nope'"),
        ({"columns": [{"name": "a", "type": "int"}], "cde_error_rate_threshold": 2},
         "cde_error_rate_threshold", "less than or equal to 1"),
        ({"columns": []}, "columns", "at least 1"),
        ({"columns": [{"name": "a", "type": "int"}, {"name": "a", "type": "int"}]}, "<root>",
         "duplicate column names"),
    ],
)
def test_bad_curated_schema_names_file_and_field(tmp_path, curated, field, message):
    folder = write_topic(tmp_path, "orders", curated)
    with pytest.raises(SchemaFileError) as info:
        load_topic_dir(tmp_path, "orders")
    text = str(info.value)
    assert str(folder / "curated.json") in text
    assert f": {field}: " in text
    assert message in text


@pytest.mark.parametrize(
    ("standardized", "field", "message"),
    [
        ({"metadata": {"_metadata_x": "message_id"}}, "metadata", "overwrite a RAW"),
        ({"metadata": {"_metadata_x": "tenant"}}, "metadata", "must map to 'idempotency_key'"),
        ({"required_metadata": ["tenant"]}, "<root>", "not a metadata column"),
        ({"drop_keys": ["Bad Key"]}, "drop_keys", "must match"),
    ],
)
def test_bad_standardized_schema_names_file_and_field(tmp_path, standardized, field, message):
    folder = write_topic(tmp_path, "orders", GOOD_CURATED, standardized)
    with pytest.raises(SchemaFileError) as info:
        load_topic_dir(tmp_path, "orders")
    assert str(info.value).startswith(f"{folder / 'standardized.json'}: {field}: ")
    assert message in str(info.value)


def test_not_json_and_missing(tmp_path):
    write_topic(tmp_path, "orders", '{"columns": [}')
    with pytest.raises(SchemaFileError, match=r"curated.json: <root>: not valid JSON.*line 1"):
        load_topic_dir(tmp_path, "orders")
    with pytest.raises(SchemaNotFoundError, match="no schema for topic 'payments'"):
        load_topic_dir(tmp_path, "payments")
