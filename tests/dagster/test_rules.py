"""The brief's rules on small fixtures, through the layer runs, with exact expected tables."""

from __future__ import annotations

import threading
import uuid

import pyarrow as pa
import pytest

from leanops_dagster.iceberg.key_index import KeyIndex, key_hashes
from leanops_dagster.pipeline import accountability
from leanops_dagster.pipeline import curate as curate_module
from leanops_dagster.pipeline import standardize as standardize_module
from leanops_dagster.pipeline.curate import curate_topic
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.standardize import standardize_topic
from tests.dagster.conftest import append_raw, event, raw_row

TABLES = TopicTables("events")
KEY = b"test-key"


def run_both(catalog, registry, tables=TABLES):
    schema = registry.load(tables.topic)
    return (
        standardize_topic(catalog, tables, schema),
        curate_topic(catalog, tables, schema, pii_key=KEY),
    )


def rows_of(catalog, identifier, columns, sort_by=None):
    table = catalog.load_table(identifier).scan(selected_fields=tuple(columns)).to_arrow()
    return sorted(table.to_pylist(), key=lambda r: tuple(str(r[c]) for c in (sort_by or columns)))


def assert_balanced(catalog, tables=TABLES):
    for equation in (accountability.post_raw_equation(catalog, tables),
                     accountability.curated_equation(catalog, tables)):
        assert equation.balanced, equation


@pytest.fixture
def deployed(registry):
    registry.deploy("events")
    return registry


def test_fifo_drops_network_duplicates_within_and_across_increments(catalog, deployed):
    # the later twin comes first in RAW: FIFO keeps the second row, not a prefix of the rows
    append_raw(catalog, [raw_row("m1", event("k1"), ingested=5), raw_row("m1", event("k1")),
                         raw_row("m2", event("k2"))])
    std, _ = run_both(catalog, deployed)
    assert (std.rows_read, std.rows_written, std.duplicates) == (3, 2, 1)

    append_raw(catalog, [raw_row("m2", event("k2"), ingested=60), raw_row("m3", event("k3"))])
    std, cur = run_both(catalog, deployed)
    assert (std.rows_read, std.rows_written, std.duplicates) == (2, 1, 1)
    assert (cur.rows_read, cur.inserted) == (1, 1)
    assert [r["message_id"] for r in rows_of(catalog, TABLES.standardized, ["message_id"])] == [
        "m1", "m2", "m3"]
    # the key index holds exactly the stored ids (a dropped duplicate's hash is not indexed)
    std_table = catalog.load_table(TABLES.standardized)
    index = KeyIndex.of(std_table, "message_id")
    indexed = sorted(h for e in index.read(std_table.io) for h in e.hashes.tolist())
    assert indexed == sorted(key_hashes(pa.array(["m1", "m2", "m3"])).tolist())
    assert_balanced(catalog)


def test_lifo_newest_publish_time_wins_even_when_older_arrives_later(catalog, deployed):
    append_raw(catalog, [raw_row("v2", event("k1", verb="second"), minutes=10)])
    run_both(catalog, deployed)
    append_raw(catalog, [raw_row("v1", event("k1", verb="first"), minutes=5)])  # late, older
    _, cur = run_both(catalog, deployed)
    assert (cur.inserted, cur.updated, cur.superseded) == (0, 0, 1)
    assert rows_of(catalog, TABLES.curated, ["idempotency_key", "verb"]) == [
        {"idempotency_key": "k1", "verb": "second"}]

    append_raw(catalog, [raw_row("v3", event("k1", verb="third"), minutes=20),
                         raw_row("v0", event("k1", verb="zeroth"), minutes=1)])
    _, cur = run_both(catalog, deployed)
    assert (cur.inserted, cur.updated, cur.superseded) == (0, 1, 1)
    # the stored k1 was found through the key index: one file read, and rewritten (it held
    # only k1, so nothing else was carried over)
    assert (cur.files_read, cur.files_rewritten, cur.rows_rewritten) == (1, 1, 0)
    assert rows_of(catalog, TABLES.curated, ["idempotency_key", "verb", "message_id"]) == [
        {"idempotency_key": "k1", "verb": "third", "message_id": "v3"}]
    assert_balanced(catalog)


def test_lifo_ties_are_broken_deterministically(catalog, deployed):
    # same publish_time: the later ingestion wins, then the greater message_id
    append_raw(catalog, [raw_row("a", event("k1", verb="early"), ingested=1),
                         raw_row("b", event("k1", verb="late"), ingested=9),
                         raw_row("c", event("k2", verb="c")), raw_row("d", event("k2", verb="d"))])
    _, cur = run_both(catalog, deployed)
    assert (cur.inserted, cur.superseded) == (2, 2)
    assert rows_of(catalog, TABLES.curated, ["idempotency_key", "verb"]) == [
        {"idempotency_key": "k1", "verb": "late"}, {"idempotency_key": "k2", "verb": "d"}]


def test_flattening_metadata_mapping_and_arrays(catalog, deployed):
    payload = event("k1", extra={"tags": ["a", {"b": 1}], "Device.Info": {"Fw-Ver": "1.2"}})
    append_raw(catalog, [raw_row("m1", payload)])
    run_both(catalog, deployed)
    row = catalog.load_table(TABLES.standardized).scan().to_arrow().to_pylist()[0]
    assert row["idempotency_key"] == "k1"
    assert row["event_userid"] == "user-000001"
    assert row["event_metadata_ipaddress"] == "10.0.0.1"
    assert row["tags"] == '["a",{"b":1}]'
    unsafe = [c for c in row if c.startswith("device_info_fw_ver")]
    assert len(unsafe) == 1 and unsafe[0] != "device.info_fw-ver"  # sanitised, not executed
    schema = catalog.load_table(TABLES.standardized).schema()
    assert {str(f.field_type) for f in schema.fields
            if f.name not in ("publish_time", "ingestion_ts")} == {"string"}


def test_schema_evolution_adds_string_columns_and_reports_drift(catalog, deployed):
    append_raw(catalog, [raw_row("m1", event("k1"))])
    run_both(catalog, deployed)
    before = set(catalog.load_table(TABLES.standardized).schema().column_names)
    append_raw(catalog, [raw_row("m2", event("k2", extra={"firmware": {"version": 3}}))])
    std, cur = run_both(catalog, deployed)
    after = set(catalog.load_table(TABLES.standardized).schema().column_names)
    assert after - before == {"firmware_version"} and before <= after
    assert std.new_columns == ["firmware_version"]
    assert cur.drift_columns == ["firmware_version"]
    assert "firmware_version" not in catalog.load_table(TABLES.curated).schema().column_names
    assert rows_of(catalog, TABLES.standardized, ["message_id", "firmware_version"]) == [
        {"message_id": "m1", "firmware_version": None},
        {"message_id": "m2", "firmware_version": "3"}]
    drift_log = ["topic_name", "column_name", "sample_value", "rows_seen"]
    expected = [{"topic_name": "events", "column_name": "firmware_version",
                 "sample_value": "3", "rows_seen": 1}]
    assert rows_of(catalog, TABLES.drift_log, drift_log) == expected
    append_raw(catalog, [raw_row("m3", event("k3", extra={"firmware": {"version": 4}}))])
    run_both(catalog, deployed)
    assert rows_of(catalog, TABLES.drift_log, drift_log) == expected  # logged once


def test_parse_errors_keep_reason_message_and_snapshot(catalog, deployed):
    snapshot = append_raw(catalog, [
        raw_row("bad", "{not json"), raw_row("arr", "[1, 2]"),
        raw_row("nokey", '{"event": {"userId": "user-000001"}}'), raw_row("ok", event("k1"))])
    std, _ = run_both(catalog, deployed)
    assert (std.rows_read, std.rows_written, std.parse_errors) == (4, 1, 3)
    errors = rows_of(catalog, TABLES.parse_errors,
                     ["message_id", "error_reason", "raw_snapshot_id", "json_payload"])
    assert [(e["message_id"], e["error_reason"]) for e in errors] == [
        ("arr", "not_an_object"), ("bad", "invalid_json"),
        ("nokey", "missing_required_metadata:idempotency_key")]
    assert {e["raw_snapshot_id"] for e in errors} == {snapshot}
    assert errors[1]["json_payload"] == "{not json"  # as received
    assert_balanced(catalog)


def test_cde_failures_go_to_errors_with_column_rule_and_value(catalog, deployed):
    append_raw(catalog, [raw_row("good", event("k1")),
                         raw_row("bad", event("k2", user="mallory"))])
    _, cur = run_both(catalog, deployed)
    assert (cur.rows_read, cur.inserted, cur.cde_error_rows) == (2, 1, 1)
    errors = rows_of(catalog, TABLES.curated_errors,
                     ["message_id", "column_name", "rule", "offending_value"])
    assert errors == [{"message_id": "bad", "column_name": "user_id", "rule": "regex",
                       "offending_value": "mallory"}]
    assert_balanced(catalog)
    masked = rows_of(catalog, TABLES.curated, ["ip_address"])[0]["ip_address"]
    assert masked != "10.0.0.1" and len(masked) == 64


def test_rerun_with_nothing_new_changes_nothing(catalog, deployed):
    append_raw(catalog, [raw_row("m1", event("k1")), raw_row("bad", "nope")])
    run_both(catalog, deployed)
    snapshots = {i: catalog.load_table(i).current_snapshot().snapshot_id
                 for i in (TABLES.standardized, TABLES.curated, TABLES.parse_errors)}
    std, cur = run_both(catalog, deployed)
    assert (std.rows_read, cur.rows_read) == (0, 0)
    assert snapshots == {i: catalog.load_table(i).current_snapshot().snapshot_id
                         for i in snapshots}


def _all_tables(catalog):
    out = {}
    for identifier in (TABLES.standardized, TABLES.parse_errors, TABLES.curated,
                       TABLES.curated_errors):
        table = catalog.load_table(identifier).scan().to_arrow()
        volatile = ("recorded_ts", "raw_snapshot_id", "standardized_snapshot_id")  # per catalog
        table = table.drop_columns([c for c in volatile if c in table.column_names])
        out[identifier] = sorted(map(str, table.to_pylist()))
    return out


def _mixed_batches():
    return [
        [raw_row("m1", event("k1"), minutes=1), raw_row("bad", "{x"),
         raw_row("m2", event("k2", user="nobody"), minutes=2)],
        [raw_row("m1", event("k1"), ingested=30), raw_row("m3", event("k1", verb="v"), minutes=9)],
    ]


@pytest.mark.parametrize(
    ("module", "target"),
    [(standardize_module, "evolve_and_align"), (curate_module, "merge_lifo")],
)
def test_crash_between_commits_then_rerun_gives_identical_tables(
    module, target, catalog, deployed, settings, tmp_path, monkeypatch
):
    """Killed after the error table's commit, before the data commit: nothing lost or doubled."""
    from leanops_dagster.iceberg.catalog import open_catalog
    from leanops_dagster.schemas.registry import SchemaRegistry
    from leanops_dagster.settings import get_settings

    clean_settings = get_settings(home=tmp_path / "clean")
    clean = open_catalog(clean_settings)
    clean_registry = SchemaRegistry.from_settings(clean_settings)
    clean_registry.deploy("events")
    for batch in _mixed_batches():
        append_raw(clean, batch)
        run_both(clean, clean_registry)

    original = getattr(module, target)
    append_raw(catalog, _mixed_batches()[0])
    run_both(catalog, deployed)
    append_raw(catalog, _mixed_batches()[1])

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(module, target, crash)
    with pytest.raises(KeyboardInterrupt):
        run_both(catalog, deployed)
    monkeypatch.setattr(module, target, original)
    run_both(catalog, deployed)
    run_both(catalog, deployed)
    assert _all_tables(catalog) == _all_tables(clean)
    assert_balanced(catalog)


def test_concurrent_triggers_do_not_double_count(catalog, deployed):
    append_raw(catalog, [raw_row(f"m{i}", event(f"k{i}")) for i in range(50)])
    run_both(catalog, deployed)  # tables exist; the race is on the next increment
    append_raw(catalog, [raw_row(f"n{i}", event(f"j{i}")) for i in range(50)])
    errors: list[BaseException] = []

    def trigger():
        try:
            run_both(catalog, deployed)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=trigger) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert catalog.load_table(TABLES.standardized).scan().to_arrow().num_rows == 100
    assert catalog.load_table(TABLES.curated).scan().to_arrow().num_rows == 100
    assert_balanced(catalog)


def _postgres_uri() -> str | None:
    import sqlalchemy

    uri = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
    try:
        with sqlalchemy.create_engine(uri).connect():
            return uri
    except Exception:  # any failure means "not reachable here"
        return None


def test_sql_catalog_on_postgresql(tmp_path, deployed):
    uri = _postgres_uri()
    if uri is None:
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432 (database test)")
    from leanops_dagster.iceberg.catalog import open_catalog
    from leanops_dagster.settings import get_settings

    prefix = f"t{uuid.uuid4().hex[:8]}_"
    settings = get_settings(
        home=tmp_path / "pg", catalog_uri=uri, catalog_name=f"pg{prefix}",
        namespace_prefix=prefix,
    )
    catalog = open_catalog(settings)
    tables = TopicTables("events", prefix)
    try:
        from leanops_dagster.iceberg.catalog import ensure_table
        from leanops_dagster.iceberg.tables import (
            RAW_STAGING_PARTITION_SPEC,
            RAW_STAGING_SCHEMA,
        )

        raw = ensure_table(catalog, tables.raw, RAW_STAGING_SCHEMA, RAW_STAGING_PARTITION_SPEC)
        raw.append(pa.Table.from_pylist(
            [raw_row("m1", event("k1")), raw_row("m2", event("k1", verb="b"), minutes=5),
             raw_row("m2", event("k1", verb="b"), minutes=5, ingested=9)],
            schema=RAW_STAGING_SCHEMA.as_arrow()))
        std, cur = run_both(catalog, deployed, tables)
        assert (std.rows_written, std.duplicates, cur.inserted, cur.superseded) == (2, 1, 1, 1)
        assert accountability.curated_equation(catalog, tables).balanced
    finally:
        for namespace in {t[0] for t in (tables.raw, tables.standardized, tables.curated)}:
            for identifier in catalog.list_tables(namespace):
                catalog.drop_table(identifier)
            catalog.drop_namespace(namespace)


def test_curated_commit_carries_watermark_and_totals_in_one_snapshot(catalog, deployed):
    append_raw(catalog, [raw_row("a", event("k1"), minutes=1)])
    run_both(catalog, deployed)
    curated = catalog.load_table(TABLES.curated)
    before = len(curated.snapshots())
    append_raw(catalog, [raw_row("b", event("k1", verb="new"), minutes=5),
                         raw_row("c", event("k1", verb="mid"), minutes=3)])
    _, cur = run_both(catalog, deployed)
    curated = catalog.load_table(TABLES.curated)
    assert len(curated.snapshots()) == before + 1  # data, watermark and totals together
    summary = curated.current_snapshot().summary
    std = catalog.load_table(TABLES.standardized)
    assert summary["leanops.watermark.standardized_snapshot_id"] == str(
        std.current_snapshot().snapshot_id)
    assert (summary["leanops.total.updated"], summary["leanops.total.superseded"]) == ("1", "1")
    assert (cur.updated, cur.superseded) == (1, 1)


def test_pending_work_is_reported_per_layer(catalog, deployed):
    from leanops_dagster.pipeline.status import oldest_pending

    assert oldest_pending(catalog, TABLES) is None  # no RAW yet
    first = append_raw(catalog, [raw_row("m1", event("k1"))])
    append_raw(catalog, [raw_row("m2", event("k2"))])
    pending = oldest_pending(catalog, TABLES)
    assert (pending.layer, pending.oldest.snapshot_id) == ("standardized", first)
    standardize_topic(catalog, TABLES, deployed.load("events"))
    assert oldest_pending(catalog, TABLES).layer == "curated"
    curate_topic(catalog, TABLES, deployed.load("events"), pii_key=KEY)
    assert oldest_pending(catalog, TABLES) is None
