"""Adversarial inputs for the Spark engine: it must give the Arrow engine's tables.

Each test runs one RAW scenario through the Arrow engine alone (the reference, its own
catalog) and through the engines in turn on one topic, and compares every table, the figures
and the accountability equations as ``test_equivalence`` does (its helpers, reused).
"""

from __future__ import annotations

import pytest

from leanops_dagster.iceberg.catalog import open_catalog
from leanops_dagster.settings import get_settings
from tests.dagster.conftest import event, raw_row
from tests.spark.test_equivalence import _run_scenario, _state


def _compare(spark_settings, tmp_path, scenario, engines) -> None:
    reference = open_catalog(get_settings(home=tmp_path / "arrow-home"))
    reference_figures = _run_scenario(reference, ["arrow"] * len(scenario), scenario)
    reference_state = _state(reference)
    catalog = open_catalog(spark_settings)
    figures = _run_scenario(catalog, engines, scenario)
    state = _state(catalog)
    for name in reference_state:
        assert state[name] == reference_state[name], name
    assert figures == reference_figures


def _deep(levels: int) -> dict:
    value: dict | str = "bottom"
    for i in range(levels - 1):  # the payload itself is level 1
        value = {f"l{i}": value}
    return value  # type: ignore[return-value]


def _hostile_keys() -> dict:
    return {
        "e\u0301t\u00e9": "combining and precomposed",
        "\u05d0\u05d1\u202e": "rtl \u202e override",
        "\U0001f600": "emoji \U0001f4a5",
        "nul\u0000key": "nul\u0000value",
        "Key": "upper", "key": "lower", "KEY": {"x": "nested upper"},
        "a-b": "dash", "a b": "space", "a.b": "dot", "a": {"b": "nested"},
        "message_id": "forged", "idempotency_key": "forged", "topic_name": "forged",
        "raw_snapshot_id": "forged", "publish_time": "forged", "ingestion_ts": "forged",
        "standardized_snapshot_id": "forged",
        "x" * 300: "long key", ("y" * 127) + "\u00e9": "long unicode key",
        "": "empty key", "1st": "leading digit", "`; drop table t; --": "sql",
        "deep": _deep(100),
        "arr": [1, -0, 1.50, 1e400, 12345678901234567890123, {"k": None}, [], {}],
        "empty_obj": {}, "null_value": None, "empty_string": "",
        "big": 1e400, "neg_zero": -0, "neg_zero_f": -0.0, "huge": 10**40,
        "tiny": 5e-324, "precise": 0.12345678901234567, "bool": True,
    }


def _scenario_hostile():
    def run1():
        rows = [raw_row("h1", event("kh", extra=_hostile_keys()))]
        # timestamps at and past the bounds Curated can hold (a CDE of type timestamp)
        for i, ts in enumerate(["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z",
                                "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                                "-62135596800000", "253402300799999", "1970-01-01 00:00",
                                "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z"]):
            body = event(f"kt{i}")
            body["event"]["timestamp"] = ts
            rows.append(raw_row(f"t{i}", body))
        # PII and CDE strings with unicode, NUL, RTL
        for i, (user, ip) in enumerate([("user-00000\u0661", "\u202e10.0.0.1"),
                                        ("user-000001", "fe80::1%\u00e9th0\u0000"),
                                        ("user-000001\n", "\U0001f600"),
                                        ("", "")]):
            body = event(f"kp{i}", user=user)
            body["event"]["metadata"]["ipAddress"] = ip
            rows.append(raw_row(f"p{i}", body))
        # one key, many versions in one increment: ties on publish_time and ingestion_ts,
        # message_id decides
        for i, mid in enumerate(["v-b", "v-a", "v-c", "v-\u00e9", "v-B"]):
            rows.append(raw_row(mid, event("kv", verb=f"version-{i}"), ingested=3))
        rows.append(raw_row("v-old", event("kv", minutes=-1, verb="older"), ingested=9))
        rows.append(raw_row("deep-129", {**event("kd"), "deep": _deep(128)}))
        rows.append(raw_row("mid-\u0000\U0001f600", event("kn")))
        rows.append(raw_row("ws-key", event(" ")))
        return [rows]

    def run2():
        return [
            [  # drift in run 2, corrections out of order with ties, a late duplicate
                raw_row("h1", event("kh", verb="dup"), ingested=50),
                raw_row("v-z", event("kv", minutes=0, verb="tie-later-ingest"), ingested=4),
                raw_row("v-0", event("kv", minutes=0, verb="tie-earlier-ingest"), ingested=2),
                raw_row("d1", event("kdrift", extra={"brandNew": {"Nested": [1, 2]},
                                                     "\u00e9\u00e9": "x"})),
            ],
            [raw_row("v-a", event("kv", verb="dup of v-a"))],  # only duplicates
            [],  # an empty append
        ]

    def run3():
        return [[raw_row("e1", "{"), raw_row("e2", "null"), raw_row("e3", '"s"'),
                 raw_row("e4", '{"_metadata": {}}'), raw_row("e5", "{\"a\": NaN}")]]

    return run1, run2, run3, list


@pytest.mark.parametrize("engines", [["spark", "arrow", "spark", "arrow"],
                                     ["arrow", "spark", "arrow", "spark"]])
def test_hostile_payloads_in_turn(spark_settings, tmp_path, engines, request):
    if engines[0] == "spark":  # this one with the engine's own code generation
        request.getfixturevalue("production_codegen")
    _compare(spark_settings, tmp_path, _scenario_hostile(), engines)


def _reading(message_id: str, key: str, minutes: int = 0, **values) -> dict:
    body = {"deviceId": "sensor-0001", "readingTime": "2026-01-19T10:00:00Z", "site": "s",
            "temperature": "21.5", "humidity": "40", "battery": "90",
            "_metadata": {"idempotencyKeyResource": key}}
    body.update(values)
    return raw_row(message_id, body, minutes=minutes, topic="sensor_readings")


def test_typed_values_at_and_past_their_bounds(spark_settings, tmp_path, monkeypatch):
    """decimal(6,2) and double columns with rules, at and past each bound (sensor_readings)."""
    from leanops_dagster.pipeline.layout import TopicTables
    from leanops_dagster.schemas.loader import load_topic_dir
    from leanops_dagster.settings import REPO_ROOT
    from tests.spark import test_equivalence

    monkeypatch.setattr(test_equivalence, "TABLES", TopicTables("sensor_readings"))
    monkeypatch.setattr(test_equivalence, "SCHEMA",
                        load_topic_dir(REPO_ROOT / "schemas", "sensor_readings"))
    cases = [
        {"temperature": "-80"}, {"temperature": "150"}, {"temperature": "150.01"},
        {"temperature": "-80.001"}, {"temperature": "9999.99"}, {"temperature": "10000"},
        {"temperature": "0021.500"}, {"temperature": "1e2"}, {"temperature": -0.0},
        {"temperature": 21.5}, {"temperature": 1e400}, {"temperature": "\u0661"},
        {"humidity": "1e308"}, {"humidity": "1e309"}, {"humidity": "4.9e-324"},
        {"humidity": "1e-400"}, {"humidity": "-0"}, {"humidity": "100.00000000000001"},
        {"humidity": "NaN"}, {"humidity": "Infinity"}, {"humidity": 1e400},
        {"battery": "100.000000000000000001"}, {"battery": 12345678901234567890},
        {"readingTime": "0001-01-01T00:00:00+00:00"}, {"readingTime": "10000-01-01T00:00Z"},
        {"readingTime": "9999-12-31T23:59:59.9999999Z"}, {"readingTime": "2024-02-29"},
        {"readingTime": "2024-02-29 23:59"}, {"deviceId": "sensor-000\u0000"},
        {"firmware": None}, {"site": {"nested": [1, 2]}},
    ]
    run1 = [_reading(f"r{i}", f"k{i}", **case) for i, case in enumerate(cases)]
    # a key whose newest version fails a CDE while an older one is valid
    run1 += [_reading("n1", "kn", minutes=1, temperature="999"), _reading("n0", "kn")]
    scenario = (lambda: [run1],
                lambda: [[_reading("c1", "k0", minutes=5, temperature="-79.99"),
                          _reading("c2", "kn", minutes=-5, temperature="1")]])
    _compare(spark_settings, tmp_path, scenario, ["spark", "arrow"])


def test_a_row_with_very_many_keys(spark_settings, tmp_path):
    """1,500 payload columns at once (one Spark column per key), then drift of 500 more. Read
    vectorized, such a table exhausted the JVM's direct memory
    (table_io.VECTORIZED_READ_MAX_COLUMNS): the Curated run hung or died."""
    scenario = (
        lambda: [[raw_row("w1", event("kw", extra={f"k{i:04d}": str(i) for i in range(1500)}))]],
        lambda: [[raw_row("w2", event("kw", minutes=1,
                                      extra={f"z{i:04d}": i for i in range(500)}))]],
    )
    _compare(spark_settings, tmp_path, scenario, ["arrow", "spark"])


def test_first_run_only_parse_errors_then_the_other_engine(spark_settings, tmp_path):
    """Spark creates the tables from an increment with no Standardized row; Arrow goes on."""
    scenario = (
        lambda: [[raw_row("e1", "{not json"), raw_row("e2", '{"x": 1}')]],
        lambda: [[raw_row("m1", event("k1", extra={"late": "1"}))]],
        lambda: [[raw_row("m2", event("k1", minutes=1, extra={"later": "2"}))]],
    )
    _compare(spark_settings, tmp_path, scenario, ["spark", "arrow", "spark"])


def _one_row_with_keys(*names: str):
    return (lambda: [[raw_row("m1", event("k1", extra={n: f"value of {n}" for n in names}))]],)


def test_payload_keys_named_like_the_spark_engines_own_columns(spark_settings, tmp_path):
    """Keys that flatten to valid column names the Spark engine uses for itself."""
    scenario = _one_row_with_keys(
        "__first", "__rank", "is_error", "quarantined", "row", "payload", "error", "valid",
        "__leanops_pos", "__stored_publish_time")
    _compare(spark_settings, tmp_path, scenario, ["spark"])


def test_payload_keys_named_like_iceberg_metadata_columns(spark_settings, tmp_path):
    """``_file`` and ``_pos`` are valid Standardized names, but Iceberg's Spark reader refuses
    a table with such columns (``SparkSchemaUtil.validateMetadataColumnReferences``)."""
    scenario = _one_row_with_keys("_file", "_pos", "_spec_id", "_partition", "_deleted")
    _compare(spark_settings, tmp_path, scenario, ["spark"])


def test_a_payload_key_named_like_the_flatten_row_index(spark_settings, tmp_path):
    _compare(spark_settings, tmp_path, _one_row_with_keys("__leanops_row"), ["spark"])


def test_payload_keys_named_like_spark_read_positions(spark_settings, tmp_path):
    scenario = _one_row_with_keys("__leanops_file_rank", "__leanops_row_pos")
    _compare(spark_settings, tmp_path, scenario, ["spark"])


def test_twins_with_one_ingestion_ts_in_files_of_several_days(spark_settings, tmp_path):
    """FIFO ties on ``ingestion_ts``: the twins live in different data files (partitions)."""
    def run1():
        rows = []
        for day in (3, 1, 2, 0):
            rows.append(raw_row("twin", event("kt", verb=f"day-{day}"), minutes=day * 1440,
                                ingested=-day * 86400))
        return [rows, [raw_row("twin", event("kt", verb="next-snapshot"))]]

    _compare(spark_settings, tmp_path, (run1,), ["spark"])
