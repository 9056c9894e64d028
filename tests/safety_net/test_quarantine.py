"""The safety net (``pipeline.quarantine``) on real tables: rows that make a layer raise are
quarantined exactly, everything else commits with the watermark, catalog faults still fail."""

from __future__ import annotations

import dataclasses
import math

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyiceberg.exceptions import CommitFailedException

from leanops_dagster.constants import RAW_WATERMARK, STD_WATERMARK
from leanops_dagster.iceberg import merge as merge_module
from leanops_dagster.iceberg import writes as writes_module
from leanops_dagster.iceberg.watermarks import read_watermark
from leanops_dagster.pipeline import accountability
from leanops_dagster.pipeline.curate import curate_topic
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.quarantine import (
    build_data_files,
    guard_batch,
    is_row_fault,
    isolate,
)
from leanops_dagster.pipeline.standardize import standardize_topic
from leanops_dagster.transforms import validate
from tests.dagster.conftest import append_raw, event, raw_row
from tests.safety_net.faults import POISON

TABLES = TopicTables("events")
KEY = b"test-key"
#: 9999-12-31T23:59:59-01:00 = 10000-01-01T00:59:59Z in microseconds: beyond Parquet stats
YEAR_10000_US = 253_402_304_399_000_000


def rows_of(catalog, identifier, columns):
    table = catalog.load_table(identifier).scan(selected_fields=tuple(columns)).to_arrow()
    return sorted(table.to_pylist(), key=lambda r: tuple(str(r[c]) for c in columns))


def snapshot_ids(catalog, *identifiers):
    return {i: catalog.load_table(i).current_snapshot().snapshot_id for i in identifiers}


def summary(catalog, identifier) -> dict[str, str]:
    return catalog.load_table(identifier).current_snapshot().summary.additional_properties


def balanced_equations(catalog):
    post_raw = accountability.post_raw_equation(catalog, TABLES)
    curated = accountability.curated_equation(catalog, TABLES)
    assert post_raw.balanced, post_raw
    assert curated.balanced, curated
    return post_raw, curated


@pytest.fixture
def schema(registry):
    registry.deploy("events")
    return registry.load("events")


@pytest.fixture
def far_future_cast(monkeypatch):
    """validate_and_cast giving rows with verb ``far-future`` an event_timestamp in year
    10000: a valid Arrow timestamp that pyiceberg's Parquet statistics cannot convert (the
    OverflowError of issue 8), whatever the real casts accept."""
    original = validate.validate_and_cast

    def validate_and_cast(rows, schema, **kwargs):
        checked = original(rows, schema, **kwargs)
        valid = checked.valid
        if valid.num_rows == 0:
            return checked
        index = valid.column_names.index("event_timestamp")
        kind = valid.schema.field(index).type
        far = pc.fill_null(pc.equal(valid.column("verb"), "far-future"), False)
        micros = pc.if_else(far, pa.scalar(YEAR_10000_US, pa.int64()),
                            valid.column(index).cast(pa.int64()))
        return dataclasses.replace(
            checked, valid=valid.set_column(index, valid.schema.field(index), micros.cast(kind))
        )

    monkeypatch.setattr(validate, "validate_and_cast", validate_and_cast)


# --- isolate (pure) --------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "bad"), [(1, {0}), (64, {17}), (1000, {0, 499, 999}),
                                        (37, set()), (8, set(range(8)))])
def test_isolate_finds_exactly_the_rows_that_fail_alone_in_k_log_n_probes(n, bad):
    rows = pa.table({"v": list(range(n))})
    probes = []

    def probe(part: pa.Table) -> None:
        probes.append(part.num_rows)
        hit = sorted(set(part.column("v").to_pylist()) & bad)
        if hit:
            raise OverflowError(f"row {hit[0]}")

    culprits = isolate(rows, probe)
    assert [position for position, _ in culprits] == sorted(bad)
    assert [str(exc) for _, exc in culprits] == [f"row {b}" for b in sorted(bad)]
    # one probe of no rows, one of all, then two per level of each culprit's path
    assert len(probes) <= 2 + 2 * max(len(bad), 1) * math.ceil(math.log2(max(n, 2)))


def test_isolate_refuses_faults_that_no_single_row_causes():
    rows = pa.table({"v": list(range(16))})

    def too_many(part: pa.Table) -> None:  # a fault of the batch size, not of a row
        if part.num_rows > 4:
            raise ValueError("batch too large")

    def always(part: pa.Table) -> None:  # fails without any row: a bug, not data
        raise TypeError("broken")

    assert isolate(rows, too_many) == []
    assert isolate(rows, always) == []


def test_guard_batch_quarantines_the_rows_a_rule_raises_on_and_runs_the_rest():
    """The batch net of the Spark engine's workers: the same reason and detail as the Arrow
    net's, the rest of the batch through the rules, no-row and non-row faults raised."""
    rows = pa.table({"v": list(range(10))})

    def rules(part: pa.Table) -> list[int]:
        values = part.column("v").to_pylist()
        if 3 in values or 7 in values:
            raise OverflowError("date value out of range")
        return values

    kept, quarantined = guard_batch(rows, rules)
    assert kept == [0, 1, 2, 4, 5, 6, 8, 9]
    assert quarantined.rows.column("v").to_pylist() == [3, 7]
    assert quarantined.reasons == ["internal:OverflowError"] * 2
    assert quarantined.details == ["OverflowError: date value out of range"] * 2
    assert guard_batch(rows, lambda part: part.num_rows) == (10, None)  # the good path

    def together(part: pa.Table) -> None:  # no single row causes it
        if part.num_rows > 1:
            raise ValueError("rows together")

    def storage(part: pa.Table) -> None:
        raise OSError("injected: the object store")

    with pytest.raises(ValueError, match="rows together"):
        guard_batch(rows, together)
    with pytest.raises(OSError, match="object store"):
        guard_batch(rows, storage)


def test_catalog_and_storage_faults_are_not_row_faults():
    import sqlalchemy.exc
    from pyiceberg.exceptions import NoSuchTableError

    assert is_row_fault(OverflowError("date value out of range"))
    assert is_row_fault(pa.ArrowInvalid("bad cast"))
    assert is_row_fault(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"))
    assert is_row_fault(RecursionError("deep"))
    for fault in (CommitFailedException("conflict"), NoSuchTableError("gone"),
                  OSError("disk"), FileNotFoundError("x"), pa.ArrowIOError("s3"),
                  sqlalchemy.exc.OperationalError("stmt", {}, Exception("locked")),
                  MemoryError(), KeyboardInterrupt()):
        assert not is_row_fault(fault), fault


def test_the_probe_reproduces_the_parquet_statistics_overflow_in_memory(schema):
    from leanops_dagster.constants import curated_partition_spec
    from leanops_dagster.iceberg.catalog import schema_from_arrow

    iceberg_schema = schema_from_arrow(schema.curated.arrow_schema())
    spec = curated_partition_spec(iceberg_schema)
    ts = pa.timestamp("us", tz="UTC")
    row = {"idempotency_key": ["k"], "message_id": ["m"], "topic_name": ["events"],
           "publish_time": pa.array([YEAR_10000_US - 10**12], pa.int64()).cast(ts),
           "ingestion_ts": pa.array([0], pa.int64()).cast(ts)}
    fine = pa.table({**row, "event_timestamp": pa.array([0], pa.int64()).cast(ts)})
    far = pa.table({**row, "event_timestamp": pa.array([YEAR_10000_US], pa.int64()).cast(ts)})
    build_data_files(fine, iceberg_schema, spec)
    with pytest.raises(OverflowError):
        build_data_files(far, iceberg_schema, spec)


# --- Standardized ----------------------------------------------------------------------------
def test_standardized_quarantines_exactly_the_poison_rows_and_commits_the_rest(
    catalog, schema, poisoned_flatten
):
    good = [raw_row(f"m{i:02d}", event(f"k{i}"), minutes=i) for i in range(12)]
    poison = [raw_row("p1", event("kp1", verb=POISON)),
              raw_row("p2", event("kp2", verb=POISON), minutes=5)]
    first = append_raw(catalog, [*good[:6], poison[0]])
    second = append_raw(catalog, [*good[6:], poison[1], raw_row("bad", "{not json")])

    std = standardize_topic(catalog, TABLES, schema)
    assert (std.rows_read, std.rows_written, std.parse_errors, std.duplicates,
            std.quarantined) == (15, 12, 1, 0, 2)
    assert std.balanced
    errors = rows_of(catalog, TABLES.parse_errors,
                     ["message_id", "error_reason", "error_detail", "raw_snapshot_id",
                      "json_payload"])
    assert [(e["message_id"], e["error_reason"], e["raw_snapshot_id"]) for e in errors] == [
        ("bad", "invalid_json", second),
        ("p1", "internal:ValueError", first),
        ("p2", "internal:ValueError", second)]
    assert errors[1]["error_detail"] == "ValueError: injected: a payload no rule foresaw"
    assert errors[1]["json_payload"] == poison[0]["json_payload"]  # as received
    assert [r["message_id"] for r in rows_of(catalog, TABLES.standardized, ["message_id"])] == [
        f"m{i:02d}" for i in range(12)]
    std_table = catalog.load_table(TABLES.standardized)
    assert read_watermark(std_table, RAW_WATERMARK) == second
    props = summary(catalog, TABLES.standardized)
    assert (props["leanops.quarantined"], props["leanops.total.quarantined"]) == ("2", "2")

    # the rerun reads nothing and commits nothing: no endless retry of the increment
    before = snapshot_ids(catalog, TABLES.standardized, TABLES.parse_errors)
    calls_before = len(poisoned_flatten)
    again = standardize_topic(catalog, TABLES, schema)
    assert (again.rows_read, again.quarantined) == (0, 0)
    assert snapshot_ids(catalog, *before) == before
    assert len(poisoned_flatten) == calls_before

    cur = curate_topic(catalog, TABLES, schema, pii_key=KEY)
    assert (cur.rows_read, cur.inserted, cur.quarantined) == (12, 12, 0)
    post_raw, _ = balanced_equations(catalog)
    assert post_raw.right == {"standardized": 12, "parse_errors": 1, "duplicates": 0,
                              "quarantined": 2}

    append_raw(catalog, [raw_row("p3", event("kp3", verb=POISON)), raw_row("m99", event("k99"))])
    later = standardize_topic(catalog, TABLES, schema)
    assert (later.rows_read, later.rows_written, later.quarantined) == (2, 1, 1)
    assert summary(catalog, TABLES.standardized)["leanops.total.quarantined"] == "3"


def test_a_whole_increment_of_poison_still_advances_the_watermark(catalog, schema,
                                                                   poisoned_flatten):
    only = append_raw(catalog, [raw_row("p1", event("k1", verb=POISON))])
    std = standardize_topic(catalog, TABLES, schema)
    assert (std.rows_read, std.rows_written, std.quarantined) == (1, 0, 1)
    assert read_watermark(catalog.load_table(TABLES.standardized), RAW_WATERMARK) == only
    assert standardize_topic(catalog, TABLES, schema).rows_read == 0


# --- Curated ---------------------------------------------------------------------------------
def test_curated_quarantines_a_transform_fault_and_merges_the_rest(
    catalog, schema, poisoned_validate
):
    append_raw(catalog, [raw_row("m1", event("k1")), raw_row("p1", event("k2", verb=POISON)),
                         raw_row("m3", event("k3", user="nobody")), raw_row("m4", event("k4"))])
    std = standardize_topic(catalog, TABLES, schema)
    cur = curate_topic(catalog, TABLES, schema, pii_key=KEY)
    assert (cur.rows_read, cur.inserted, cur.cde_error_rows, cur.quarantined) == (4, 2, 1, 1)
    assert cur.balanced
    assert rows_of(catalog, TABLES.curated, ["idempotency_key"]) == [
        {"idempotency_key": "k1"}, {"idempotency_key": "k4"}]
    errors = rows_of(catalog, TABLES.curated_errors,
                     ["message_id", "column_name", "rule", "error_detail"])
    assert errors == [
        {"message_id": "m3", "column_name": "user_id", "rule": "regex",
         "error_detail": errors[0]["error_detail"]},
        {"message_id": "p1", "column_name": "*", "rule": "internal:KeyError",
         "error_detail": "KeyError: 'injected: a rule lookup failed'"}]
    curated = catalog.load_table(TABLES.curated)
    assert read_watermark(curated, STD_WATERMARK) == std.snapshot_id
    props = summary(catalog, TABLES.curated)
    assert (props["leanops.quarantined"], props["leanops.total.quarantined"]) == ("1", "1")
    _, equation = balanced_equations(catalog)
    assert equation.right == {"curated": 2, "updates": 0, "superseded": 0,
                              "cde_error_rows": 1, "quarantined": 1}

    before = snapshot_ids(catalog, TABLES.curated, TABLES.curated_errors)
    again = curate_topic(catalog, TABLES, schema, pii_key=KEY)
    assert (again.rows_read, again.quarantined) == (0, 0)
    assert snapshot_ids(catalog, *before) == before


def test_mixed_batch_poison_among_good_rows_corrections_and_duplicates(
    catalog, schema, far_future_cast
):
    """One row that makes pyiceberg's Parquet statistics raise sits among good rows, a
    correction and a network duplicate: the good rows reach Curated in the same run."""
    append_raw(catalog, [raw_row("m1", event("k1", verb="first"), minutes=1)])
    standardize_topic(catalog, TABLES, schema)
    curate_topic(catalog, TABLES, schema, pii_key=KEY)

    append_raw(catalog, [
        raw_row("m2", event("k2", verb="good"), minutes=2),
        raw_row("m1", event("k1", verb="first"), minutes=1, ingested=40),  # network duplicate
        raw_row("m3", event("k1", verb="corrected"), minutes=6),  # correction of k1
        raw_row("m4", event("k3", verb="older"), minutes=3),
        raw_row("p1", event("k3", verb="far-future"), minutes=8),  # poison, newest of k3
        raw_row("m5", event("k4", verb="good"), minutes=4),
    ])
    std = standardize_topic(catalog, TABLES, schema)
    assert (std.rows_read, std.rows_written, std.duplicates, std.quarantined) == (6, 5, 1, 0)
    cur = curate_topic(catalog, TABLES, schema, pii_key=KEY)
    # k3's older good version wins once the poison is out: nothing good is superseded by it
    assert (cur.rows_read, cur.inserted, cur.updated, cur.superseded, cur.quarantined) == (
        5, 3, 1, 0, 1)
    assert cur.balanced
    assert rows_of(catalog, TABLES.curated, ["idempotency_key", "verb"]) == [
        {"idempotency_key": "k1", "verb": "corrected"}, {"idempotency_key": "k2", "verb": "good"},
        {"idempotency_key": "k3", "verb": "older"}, {"idempotency_key": "k4", "verb": "good"}]
    errors = rows_of(catalog, TABLES.curated_errors, ["message_id", "rule", "error_detail"])
    assert errors == [{"message_id": "p1", "rule": "internal:OverflowError",
                       "error_detail": "OverflowError: date value out of range"}]
    balanced_equations(catalog)
    assert curate_topic(catalog, TABLES, schema, pii_key=KEY).rows_read == 0


@pytest.mark.parametrize("instant", [
    "9999-12-31T23:59:59-01:00", 253402300800000, "0001-01-01T00:30:00+01:00"])
def test_issue_8_instants_no_longer_stop_the_topic(catalog, schema, instant):
    """The three values of issue 8 (UTC instant in year 10000 or year 0): a rule error once
    the casts are total, a quarantined row before; never a failed run."""
    poison = event("kp")
    poison["event"]["timestamp"] = instant
    append_raw(catalog, [raw_row("m1", event("k1")), raw_row("p1", poison, minutes=1),
                         raw_row("m2", event("k2"), minutes=2)])
    standardize_topic(catalog, TABLES, schema)
    cur = curate_topic(catalog, TABLES, schema, pii_key=KEY)
    assert (cur.rows_read, cur.inserted, cur.cde_error_rows + cur.quarantined) == (3, 2, 1)
    errors = rows_of(catalog, TABLES.curated_errors, ["message_id", "rule"])
    assert [e["message_id"] for e in errors] == ["p1"]
    assert errors[0]["rule"] in {"type_cast", "min", "max", "internal:OverflowError"}
    assert rows_of(catalog, TABLES.curated, ["idempotency_key"]) == [
        {"idempotency_key": "k1"}, {"idempotency_key": "k2"}]
    balanced_equations(catalog)


def test_crash_between_quarantine_record_and_data_commit_records_once(
    catalog, schema, far_future_cast, monkeypatch
):
    from leanops_dagster.pipeline import curate as curate_module

    append_raw(catalog, [raw_row("m1", event("k1")), raw_row("p1", event("k2", verb="far-future"))])
    standardize_topic(catalog, TABLES, schema)
    original = curate_module.merge_lifo
    calls = []

    def merge_then_crash(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the attempt after the quarantine was recorded
            raise KeyboardInterrupt("killed")
        return original(*args, **kwargs)

    monkeypatch.setattr(curate_module, "merge_lifo", merge_then_crash)
    with pytest.raises(KeyboardInterrupt):
        curate_topic(catalog, TABLES, schema, pii_key=KEY)
    monkeypatch.setattr(curate_module, "merge_lifo", original)
    cur = curate_topic(catalog, TABLES, schema, pii_key=KEY)
    assert (cur.rows_read, cur.inserted, cur.quarantined) == (2, 1, 1)
    errors = rows_of(catalog, TABLES.curated_errors, ["message_id", "rule"])
    assert errors == [{"message_id": "p1", "rule": "internal:OverflowError"}]  # once
    balanced_equations(catalog)


# --- catalog and storage faults fail the run -------------------------------------------------
def test_storage_fault_while_writing_fails_the_run_and_a_rerun_succeeds(
    catalog, schema, monkeypatch
):
    append_raw(catalog, [raw_row("m1", event("k1")), raw_row("m2", event("k2"))])
    original = writes_module.write_data_files

    def unreachable_storage(*args, **kwargs):
        raise OSError("injected: connection reset by the object store")

    monkeypatch.setattr(writes_module, "write_data_files", unreachable_storage)
    with pytest.raises(OSError, match="connection reset"):
        standardize_topic(catalog, TABLES, schema)
    assert not catalog.table_exists(TABLES.standardized) or (
        catalog.load_table(TABLES.standardized).current_snapshot() is None)
    assert rows_of(catalog, TABLES.parse_errors, ["message_id"]) == []  # nothing quarantined

    monkeypatch.setattr(writes_module, "write_data_files", original)
    std = standardize_topic(catalog, TABLES, schema)
    assert (std.rows_read, std.rows_written, std.quarantined) == (2, 2, 0)


@pytest.mark.parametrize("fault", [
    CommitFailedException("injected: another writer committed first"),
    OSError("injected: metadata file not writable"),
    ValueError("injected: the catalog refused the commit"),  # not reproducible from rows
])
def test_commit_fault_fails_the_curated_run_with_nothing_committed(
    catalog, schema, monkeypatch, fault
):
    monkeypatch.setattr("leanops_dagster.iceberg.commit.time.sleep", lambda _s: None)
    append_raw(catalog, [raw_row("m1", event("k1")), raw_row("m2", event("k2", user="x"))])
    standardize_topic(catalog, TABLES, schema)
    curate_topic(catalog, TABLES, schema, pii_key=KEY)
    append_raw(catalog, [raw_row("m3", event("k3")), raw_row("m4", event("k1", verb="v2"),
                                                              minutes=3)])
    standardize_topic(catalog, TABLES, schema)
    before = snapshot_ids(catalog, TABLES.curated)
    original = merge_module._commit

    def failing_commit(*args, **kwargs):
        raise fault

    monkeypatch.setattr(merge_module, "_commit", failing_commit)
    with pytest.raises(type(fault), match="injected"):
        curate_topic(catalog, TABLES, schema, pii_key=KEY)
    assert snapshot_ids(catalog, TABLES.curated) == before
    assert all(not e["rule"].startswith("internal:")
               for e in rows_of(catalog, TABLES.curated_errors, ["rule"]))

    monkeypatch.setattr(merge_module, "_commit", original)
    cur = curate_topic(catalog, TABLES, schema, pii_key=KEY)
    assert (cur.rows_read, cur.inserted, cur.updated, cur.quarantined) == (2, 1, 1, 0)
    balanced_equations(catalog)


# --- the asset check -------------------------------------------------------------------------
@pytest.mark.parametrize(("fault", "verb", "failing", "passing"), [
    ("poisoned_flatten", POISON, "standardized/records", "curated/records"),
    ("far_future_cast", "far-future", "curated/records", "standardized/records"),
])
def test_quarantined_rows_check_fails_without_blocking_downstream(
    request, settings, catalog, schema, fault, verb, failing, passing
):
    import dagster as dg

    from leanops_dagster.definitions import build_definitions
    from leanops_dagster.instance import get_instance
    from leanops_dagster.partitions import topic_partitions

    request.getfixturevalue(fault)
    append_raw(catalog, [raw_row("m1", event("k1")), raw_row("p1", event("k2", verb=verb))])
    instance = get_instance(settings)
    instance.add_dynamic_partitions(topic_partitions.name, ["events"])
    job = build_definitions(settings).resolve_job_def("topic_pipeline")
    result = job.execute_in_process(instance=instance, partition_key="events",
                                    raise_on_error=False)
    assert result.success
    checks = {(e.asset_key.to_user_string(), e.check_name): e
              for e in result.get_asset_check_evaluations()}
    quarantined = checks[(failing, "quarantined_rows")]
    assert not quarantined.passed
    assert quarantined.severity == dg.AssetCheckSeverity.WARN
    assert quarantined.metadata["quarantined"].value == 1
    assert checks[(passing, "quarantined_rows")].passed
    assert checks[("standardized/records", "post_raw_water_balance")].passed
    assert checks[("curated/records", "curated_water_balance")].passed
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"standardized/records", "curated/records"}
    assert rows_of(catalog, TABLES.curated, ["idempotency_key"]) == [{"idempotency_key": "k1"}]
