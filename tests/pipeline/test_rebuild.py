"""Breaking schema changes: refused, or rebuilt from history and swapped in atomically."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
import time

import pyarrow as pa
import pytest
from click.testing import CliRunner

from leanops_dagster.cli import main
from leanops_dagster.constants import (
    REBUILD_ID_PROPERTY,
    SCHEMA_VERSION_PROPERTY,
    SUPERSEDED_VERSIONS_PROPERTY,
    errors_rebuild_property,
    errors_watermark_name,
)
from leanops_dagster.iceberg.catalog import open_catalog
from leanops_dagster.iceberg.key_index import KeyIndex, unreferenced_segments
from leanops_dagster.iceberg.tables import CURATED_ERRORS_PARTITION_SPEC, CURATED_ERRORS_SCHEMA
from leanops_dagster.iceberg.watermarks import read_watermark
from leanops_dagster.pipeline import accountability
from leanops_dagster.pipeline import rebuild as rebuild_module
from leanops_dagster.pipeline.curate import curate_topic
from leanops_dagster.pipeline.curated_evolution import SchemaMismatchError
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.rebuild import (
    RebuildError,
    deploy_schema,
    drop_replaced_copies,
)
from leanops_dagster.pipeline.rebuild import run as rebuild_run
from leanops_dagster.pipeline.rebuild import swap as rebuild_swap
from leanops_dagster.pipeline.standardize import standardize_topic
from leanops_dagster.schemas.compatibility import BreakingChangeError
from leanops_dagster.schemas.registry import SchemaRegistry
from leanops_dagster.settings import REPO_ROOT, get_settings
from tests.dagster.conftest import append_raw, event, raw_row

TABLES = TopicTables("events")
KEY = b"leanops-local-development-key"  # the settings' default: what the CLI uses


class Home:
    """One LEANOPS_HOME with its own schema sources, registry and catalog."""

    def __init__(self, root) -> None:
        self.schemas = root / "schemas"
        shutil.copytree(REPO_ROOT / "schemas", self.schemas)
        self.settings = get_settings(home=root / "home", schema_registry=str(self.schemas))
        self.registry = SchemaRegistry.from_settings(self.settings)
        self.catalog = open_catalog(self.settings)

    def env(self, monkeypatch) -> None:
        monkeypatch.setenv("LEANOPS_HOME", str(self.settings.home))
        monkeypatch.setenv("LEANOPS_SCHEMA_REGISTRY", str(self.schemas))

    def edit(self, change) -> None:
        path = self.schemas / "events" / "curated.json"
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    def run(self):
        schema = self.registry.load("events")
        std = standardize_topic(self.catalog, TABLES, schema)
        return std, curate_topic(self.catalog, TABLES, schema, pii_key=KEY)

    def deploy(self, **kwargs):
        return deploy_schema(self.registry, self.catalog, TABLES, pii_key=KEY, **kwargs)


def issue_change(data: dict) -> None:
    """Issue 9's edit: `country` added (compatible), `device_id` string -> long (breaking)."""
    data["columns"].append(
        {"name": "country", "source": "event_metadata_country", "type": "string"})
    next(c for c in data["columns"] if c["name"] == "device_id")["type"] = "long"


def payload(key: str, *, device: str, minutes: int = 0, country: str | None = None,
            user: str = "user-000001", verb: str = "clicked") -> dict:
    body = event(key, minutes=minutes, user=user, verb=verb)
    body["event"]["metadata"]["deviceId"] = device
    if country:
        body["event"]["metadata"]["country"] = country
    return body


BATCHES = [
    [raw_row("m1", payload("k1", device="12345")), raw_row("m1", payload("k1", device="12345")),
     raw_row("m2", payload("k2", device="d-2", minutes=1), minutes=1),
     raw_row("m3", payload("k3", device="3", user="bad", minutes=2), minutes=2),
     raw_row("x1", "not json")],
    [raw_row("m4", payload("k1", device="777", minutes=5, verb="fixed"), minutes=5),
     raw_row("m5", payload("k4", device="4", minutes=6, country="DE"), minutes=6)],
    [raw_row("m6", payload("k2", device="22", minutes=9, country="FR"), minutes=9),
     raw_row("m7", payload("k5", device="5", minutes=9), minutes=9)],
]
LATER = [raw_row("m8", payload("k4", device="44", minutes=20, country="IT"), minutes=20),
         raw_row("m9", payload("k6", device="6", minutes=21), minutes=21)]


def old_home(root, batches=BATCHES) -> Home:
    """Curated under the deployed schema, one run per batch; then the source edited."""
    home = Home(root)
    home.registry.deploy("events")
    for batch in batches:
        append_raw(home.catalog, batch)
        home.run()
    home.edit(issue_change)
    return home


def fresh_home(root, batches=BATCHES) -> Home:
    """A fresh pipeline under the new schema from the same RAW."""
    home = Home(root)
    home.edit(issue_change)
    home.registry.deploy("events")
    for batch in batches:
        append_raw(home.catalog, batch)
        home.run()
    return home


def curated(home: Home) -> list[dict]:
    rows = home.catalog.load_table(TABLES.curated).scan().to_arrow().to_pylist()
    return sorted(rows, key=lambda r: r["idempotency_key"])


def errors(home: Home) -> list[tuple]:
    """The topic's Curated error rows, without what differs between homes by nature
    (snapshot ids are random, recorded_ts is the wall clock)."""
    table = home.catalog.load_table(TABLES.curated_errors).scan().to_arrow()
    rows = table.drop_columns(["standardized_snapshot_id", "recorded_ts"]).to_pylist()
    return sorted(tuple(sorted(r.items(), key=lambda kv: kv[0])) for r in rows
                  if r["topic_name"] == "events")


def schema_of(home: Home) -> list[tuple[str, str]]:
    return [(f.name, str(f.field_type))
            for f in home.catalog.load_table(TABLES.curated).schema().fields]


def assert_same_tables(home: Home, expected: Home) -> None:
    assert schema_of(home) == schema_of(expected)
    assert curated(home) == curated(expected)
    assert errors(home) == errors(expected)
    assert accountability.curated_equation(home.catalog, TABLES).balanced


def staging_tables(home: Home) -> list[str]:
    return [t[-1] for t in home.catalog.list_tables("curated") if "__rebuild_" in t[-1]]


def test_breaking_change_is_refused_with_its_reasons(tmp_path, monkeypatch):
    home = old_home(tmp_path)
    before = curated(home)
    version = home.registry.load("events").version
    home.env(monkeypatch)
    refused = CliRunner().invoke(main, ["schema", "deploy", "events"])
    assert refused.exit_code == 1
    assert "events: 1 breaking change(s) refused" in refused.output
    assert "device_id: type: 'string' -> 'long'" in refused.output
    assert "not an Iceberg type promotion" in refused.output
    assert "--rebuild" in refused.output
    assert home.registry.load("events").version == version  # nothing published
    assert curated(home) == before and "country" not in schema_of(home)[-1]
    with pytest.raises(BreakingChangeError):
        home.registry.deploy("events")  # the registry alone refuses it too


def test_rebuild_gives_the_table_a_fresh_pipeline_builds(tmp_path, monkeypatch):
    home = old_home(tmp_path / "a")
    v1 = home.registry.load("events")
    old_rows = curated(home)
    live_before = home.catalog.load_table(TABLES.curated)
    commits_before = len(live_before.metadata.metadata_log)
    home.env(monkeypatch)
    rebuilt = CliRunner().invoke(main, ["schema", "deploy", "events", "--rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "rebuild Curated chunk 1" in rebuilt.output and "balanced True" in rebuilt.output
    expected = fresh_home(tmp_path / "b")
    assert_same_tables(home, expected)
    v2 = home.registry.load("events")
    assert v2.version == expected.registry.load("events").version != v1.version

    live = home.catalog.load_table(TABLES.curated)
    assert len(live.metadata.metadata_log) == commits_before + 1  # the swap: one commit
    swap = live.current_snapshot().summary.additional_properties
    assert swap[SCHEMA_VERSION_PROPERTY] == v2.version
    assert swap[REBUILD_ID_PROPERTY].startswith(v2.version)
    assert live.properties[SUPERSEDED_VERSIONS_PROPERTY] == v1.version
    # the old table stays readable: its snapshot, and a dated copy on its metadata
    replaced = int(swap["leanops.rebuild.replaced_snapshot_id"])
    assert sorted(live.scan(snapshot_id=replaced).to_arrow().column("idempotency_key")
                  .to_pylist()) == [r["idempotency_key"] for r in old_rows]
    copies = [t for t in home.catalog.list_tables("curated") if "__replaced_" in t[-1]]
    assert len(copies) == 1
    copy = home.catalog.load_table(copies[0])
    copy_rows = copy.scan().to_arrow().to_pylist()
    assert sorted(copy_rows, key=lambda r: r["idempotency_key"]) == old_rows
    # its own location: maintenance of the copy cannot find (and delete) the live table's
    # key index segments as orphans
    assert copy.location() != live.location()
    assert unreferenced_segments(copy, older_than=dt.timedelta(0)) == []
    assert KeyIndex.of(live, "idempotency_key").read(live.io) is not None
    assert staging_tables(home) == []

    # a run still on the replaced version is refused; the deployed one continues
    # incrementally from the rebuilt table's watermark
    with pytest.raises(SchemaMismatchError, match="replaces schema version"):
        curate_topic(home.catalog, TABLES, v1, pii_key=KEY)
    for target in (home, expected):
        append_raw(target.catalog, LATER)
        _, result = target.run()
        assert result.rows_read == len(LATER)
    assert_same_tables(home, expected)

    # maintenance drops the dated copy after the retention only
    assert drop_replaced_copies(home.catalog, "curated", older_than=dt.timedelta(days=7)) == []
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=8)
    assert drop_replaced_copies(home.catalog, "curated", older_than=dt.timedelta(days=7),
                                now=later) == [".".join(copies[0])]


class Killed(Exception):
    """Stands for the process being killed at that point."""


def test_rebuild_killed_half_way_then_rerun_gives_the_same(tmp_path, monkeypatch):
    home = old_home(tmp_path / "a")
    real = rebuild_module.staging.curate.curate_topic
    calls = []

    def dies_on_the_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(rebuild_module.staging.curate, "curate_topic", dies_on_the_second_chunk)
    with pytest.raises(Killed):
        home.deploy(rebuild=True, snapshots_per_chunk=1)
    monkeypatch.undo()
    [staged] = [t for t in staging_tables(home) if not t.endswith("__errors")]
    # staging reads a replay of Standardized's current files, one snapshot per original append
    replay = home.catalog.load_table(("standardized", f"{staged}__replay"))
    first = min(replay.snapshots(), key=lambda s: s.sequence_number)
    assert len(replay.snapshots()) == len(BATCHES)
    assert read_watermark(home.catalog.load_table(("curated", staged)),
                          "standardized_snapshot_id") == first.snapshot_id  # one chunk staged
    assert home.catalog.load_table(TABLES.curated).current_snapshot().summary.get(
        REBUILD_ID_PROPERTY) is None  # the live table was not touched

    progress: list[str] = []
    outcome = home.deploy(rebuild=True, snapshots_per_chunk=1, progress=progress.append)
    assert outcome.rebuild.resumed and outcome.rebuild.balanced
    assert outcome.rebuild.chunks == len(BATCHES) - 1  # the first chunk was not done again
    assert len(progress) == outcome.rebuild.chunks + 1  # per chunk, then the swap
    assert_same_tables(home, fresh_home(tmp_path / "b"))
    assert staging_tables(home) == []


def test_rebuild_killed_between_the_two_swaps_then_rerun_gives_the_same(tmp_path, monkeypatch):
    home = old_home(tmp_path / "a")
    v1 = home.registry.load("events")
    monkeypatch.setattr(rebuild_run, "swap_error_rows",
                        lambda *a, **k: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        home.deploy(rebuild=True)
    monkeypatch.undo()
    # Curated is swapped, the schema not published: no run of either version writes
    with pytest.raises(SchemaMismatchError):
        home.run()
    assert home.registry.load("events").version == v1.version
    swapped_at = home.catalog.load_table(TABLES.curated).current_snapshot().snapshot_id

    outcome = home.deploy(rebuild=True)
    assert outcome.rebuild.resumed and outcome.rebuild.chunks == 0
    assert home.catalog.load_table(TABLES.curated).current_snapshot().snapshot_id == swapped_at
    assert_same_tables(home, fresh_home(tmp_path / "b"))


def test_a_reader_during_the_swap_sees_the_old_table_or_the_new_one(tmp_path, monkeypatch):
    home = old_home(tmp_path / "a")
    old = curated(home)
    real_write = rebuild_swap.write_data_files

    def slow_write(*args, **kwargs):  # hold the swap transaction open while the reader reads
        written = real_write(*args, **kwargs)
        time.sleep(0.5)
        return written

    monkeypatch.setattr(rebuild_swap, "write_data_files", slow_write)
    seen: list[list[dict] | str] = []
    stop = threading.Event()

    def reader() -> None:
        catalog = open_catalog(home.settings)  # its own connection, as another process
        while not stop.is_set():
            try:
                rows = catalog.load_table(TABLES.curated).scan().to_arrow().to_pylist()
            except Exception as exc:  # a missing table or a half-written state would land here
                seen.append(f"{type(exc).__name__}: {exc}")
                continue
            seen.append(sorted(rows, key=lambda r: r["idempotency_key"]))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        home.deploy(rebuild=True)
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join()
    new = curated(home)
    assert old != new
    assert all(not isinstance(s, str) for s in seen), [s for s in seen if isinstance(s, str)]
    assert {("old" if s == old else "new" if s == new else "other") for s in seen} == {
        "old", "new"}
    first_new = next(i for i, s in enumerate(seen) if s == new)
    assert all(s == new for s in seen[first_new:])  # never back to the old one


def test_a_rebuilt_table_that_does_not_balance_is_not_swapped(tmp_path, monkeypatch):
    home = old_home(tmp_path / "a")
    before = curated(home)
    unbalanced = accountability.Equation("curated", "standardized_consumed", 1, {"curated": 0})
    monkeypatch.setattr(rebuild_run.accountability, "curated_equation",
                        lambda *a, **k: unbalanced)
    with pytest.raises(RebuildError, match="does not balance"):
        home.deploy(rebuild=True)
    assert curated(home) == before
    assert home.registry.load("events").version != home.registry.versioned_source("events").version


def tenant_change(home: Home) -> None:
    """A breaking Standardized change: `_metadata.tenant` becomes the metadata column
    `tenant` (Standardized held it as the payload column `_metadata_tenant`), and Curated
    reads it."""
    path = home.schemas / "events" / "standardized.json"
    data = json.loads(path.read_text())
    data["metadata"]["_metadata_tenant"] = "tenant"
    path.write_text(json.dumps(data))
    home.edit(lambda d: d["columns"].append({"name": "tenant", "type": "string"}))


def with_tenant(batches):
    out = []
    for batch in batches:
        rows = []
        for row in batch:
            if row["json_payload"].startswith("{"):
                body = json.loads(row["json_payload"])
                body["_metadata"]["tenant"] = f"t-{row['message_id']}"
                row = {**row, "json_payload": json.dumps(body)}
            rows.append(row)
        out.append(rows)
    return out


TENANT_BATCHES = with_tenant(BATCHES)


def standardized(home: Home) -> list[dict]:
    rows = home.catalog.load_table(TABLES.standardized).scan().to_arrow().to_pylist()
    return sorted(rows, key=lambda r: r["message_id"])


def parse_errors(home: Home) -> list[tuple]:
    table = home.catalog.load_table(TABLES.parse_errors).scan().to_arrow()
    rows = table.drop_columns(["raw_snapshot_id", "recorded_ts"]).to_pylist()
    return sorted(tuple(sorted(r.items())) for r in rows if r["topic_name"] == "events")


def tenant_homes(root):
    old = Home(root / "a")
    old.registry.deploy("events")
    for batch in TENANT_BATCHES:
        append_raw(old.catalog, batch)
        old.run()
    tenant_change(old)
    fresh = Home(root / "b")
    tenant_change(fresh)
    fresh.registry.deploy("events")
    for batch in TENANT_BATCHES:
        append_raw(fresh.catalog, batch)
        fresh.run()
    return old, fresh


def assert_same_from_raw(home: Home, expected: Home) -> None:
    assert standardized(home) == standardized(expected)
    assert parse_errors(home) == parse_errors(expected)
    assert accountability.post_raw_equation(home.catalog, TABLES).balanced
    assert_same_tables(home, expected)


def test_standardized_change_rebuilds_from_raw(tmp_path, monkeypatch):
    home, expected = tenant_homes(tmp_path)
    v1 = home.registry.load("events")
    assert "_metadata_tenant" in standardized(home)[0] and "tenant" not in standardized(home)[0]
    home.env(monkeypatch)
    refused = CliRunner().invoke(main, ["schema", "deploy", "events"])
    assert refused.exit_code == 1 and "changed metadata mapping" in refused.output
    rebuilt = CliRunner().invoke(main, ["schema", "deploy", "events", "--rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "rebuild Standardized chunk 1" in rebuilt.output
    assert "rebuild Curated chunk 1" in rebuilt.output
    assert_same_from_raw(home, expected)
    assert standardized(home)[0]["tenant"] == "t-m1"
    assert {r["idempotency_key"]: r["tenant"] for r in curated(home)}["k4"] == "t-m5"
    copies = [t[-1] for t in home.catalog.list_tables("standardized") if "__replaced_" in t[-1]]
    assert len(copies) == 1
    assert [t for t in home.catalog.list_tables("standardized") if "__rebuild_" in t[-1]] == []

    with pytest.raises(SchemaMismatchError, match="replaces schema version"):
        standardize_topic(home.catalog, TABLES, v1)  # a run still on the old mapping
    # later RAW, with a network duplicate of a message the rebuilt Standardized holds: FIFO
    # still drops it (through the key index the swap wrote)
    resent = raw_row("m4", payload("k1", device="777", minutes=5, verb="fixed"), minutes=5)
    later = with_tenant([[*LATER, resent]])[0]
    for target in (home, expected):
        append_raw(target.catalog, later)
        std, cur = target.run()
        assert (std.rows_read, std.duplicates, cur.rows_read) == (3, 1, 2)
    assert_same_from_raw(home, expected)


def test_rebuild_from_raw_killed_after_the_standardized_swap_then_rerun(tmp_path, monkeypatch):
    home, expected = tenant_homes(tmp_path)
    monkeypatch.setattr(rebuild_run, "swap_curated",
                        lambda *a, **k: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        home.deploy(rebuild=True, snapshots_per_chunk=1)
    monkeypatch.undo()
    assert "tenant" in standardized(home)[0]  # Standardized swapped, Curated not yet
    outcome = home.deploy(rebuild=True, snapshots_per_chunk=1)
    assert outcome.rebuild.resumed and outcome.rebuild.from_raw and outcome.rebuild.balanced
    assert outcome.rebuild.chunks == 0  # both layers were staged before the kill
    assert outcome.rebuild.raw_rows_read == sum(len(b) for b in TENANT_BATCHES)
    assert_same_from_raw(home, expected)


def test_from_raw_without_a_schema_change_restates_both_layers(tmp_path):
    home = Home(tmp_path)
    home.registry.deploy("events")
    for batch in BATCHES:
        append_raw(home.catalog, batch)
        home.run()
    before = (standardized(home), parse_errors(home), curated(home), errors(home))
    outcome = home.deploy(from_raw=True)
    assert outcome.rebuild.from_raw and outcome.rebuild.balanced
    assert (standardized(home), parse_errors(home), curated(home), errors(home)) == before
    append_raw(home.catalog, LATER)
    std, cur = home.run()
    assert (std.rows_read, cur.inserted) == (len(LATER), 1)


def test_rebuild_without_a_schema_change_restates_the_table(tmp_path):
    """`--rebuild` with nothing changed (e.g. after a rule fix): same content, no version
    superseded, so runs of the deployed version continue."""
    home = Home(tmp_path)
    home.registry.deploy("events")
    for batch in BATCHES:
        append_raw(home.catalog, batch)
        home.run()
    before = curated(home)
    outcome = home.deploy(rebuild=True)
    assert outcome.changes == [] and outcome.rebuild.balanced
    assert curated(home) == before
    live = home.catalog.load_table(TABLES.curated)
    assert SUPERSEDED_VERSIONS_PROPERTY not in live.properties
    append_raw(home.catalog, LATER)
    _, result = home.run()
    assert result.rows_read == len(LATER)


def test_rebuild_of_a_topic_never_curated(tmp_path):
    home = Home(tmp_path)
    home.registry.deploy("events")
    home.edit(issue_change)
    outcome = home.deploy(rebuild=True)
    assert outcome.rebuild.balanced and outcome.rebuild.rows_read == 0
    assert home.catalog.load_table(TABLES.curated).scan().to_arrow().num_rows == 0
    assert isinstance(home.catalog.load_table(TABLES.curated).schema().as_arrow(), pa.Schema)
    append_raw(home.catalog, BATCHES[0])
    _, result = home.run()
    assert result.inserted == 2


def test_the_rebuild_job_reports_the_rebuild_as_a_curated_materialization(tmp_path):
    import dagster as dg

    from leanops_dagster.assets.keys import CURATED
    from leanops_dagster.definitions import build_definitions

    home = old_home(tmp_path / "a")
    definitions = build_definitions(home.settings)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("topics", ["events"])
        result = definitions.resolve_job_def("schema_rebuild_job").execute_in_process(
            instance=instance, partition_key="events"
        )
        assert result.success
        (materialization,) = [e.asset_key for e in result.asset_materializations_for_node(
            "rebuild_topic_op")]
        assert materialization == CURATED
        [mat] = result.asset_materializations_for_node("rebuild_topic_op")
        assert mat.partition == "events"
        metadata = {k: v.value for k, v in mat.metadata.items()}
        assert metadata["schema_version"] == home.registry.load("events").version
        assert metadata["balanced"] is True
        assert metadata["rows_read_from_history"] == 7  # 8 RAW rows: 1 duplicate dropped
        assert metadata["cde_error_rows"] == 1
        checks = {e.event_specific_data.check_name: e.event_specific_data.passed
                  for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
        assert checks == {"curated_balance_all_time": True, "curated_water_balance": True,
                          "cde_error_rate": False}  # 1 CDE error row of 7 is above 5 %

        # and the next pipeline run reports the deployed schema version as asset metadata
        append_raw(home.catalog, LATER)
        run = definitions.resolve_job_def("topic_pipeline").execute_in_process(
            instance=instance, partition_key="events"
        )
        curated_mat = next(m for m in run.get_asset_materialization_events()
                       if m.asset_key == CURATED)
        shown = curated_mat.step_materialization_data.materialization.metadata
        assert shown["schema_version"].value == home.registry.load("events").version
    assert_same_tables(home, fresh_home(tmp_path / "b", [*BATCHES, LATER]))


def test_table_maintenance_drops_the_dated_copies_past_their_retention(tmp_path):
    import dagster as dg

    from leanops_dagster.definitions import build_definitions

    home = old_home(tmp_path / "a")
    home.deploy(rebuild=True)
    rebuilt = curated(home)
    [copy] = [t for t in home.catalog.list_tables("curated") if "__replaced_" in t[-1]]
    job = build_definitions(home.settings).resolve_job_def("table_maintenance_job")
    kept = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())  # 7 days default
    assert kept.output_for_node("maintain_tables_op") is None
    assert home.catalog.table_exists(copy)
    time.sleep(1.1)  # the copy's stamp has a one-second resolution
    dropped = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"maintain_tables_op": {"config": {"expire_older_than_hours": 0}}}},
    )
    [mat] = [e for e in dropped.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    assert mat.event_specific_data.metadata["replaced_copies_dropped"].value == [".".join(copy)]
    assert not home.catalog.table_exists(copy)
    assert curated(home) == rebuilt  # the live table still reads the same after the drop
    assert accountability.curated_equation(home.catalog, TABLES).balanced


def test_data_arriving_during_the_rebuild_waits_and_is_picked_up_after_it(
    tmp_path, monkeypatch
):
    """RAW lands while the rebuild runs; the topic's regular runs are no-ops meanwhile (the
    rebuild holds the topic's leases: one writer per topic and layer), and the next run
    after it curates what arrived, from the rebuilt table's watermark: the same tables as a
    fresh pipeline over all the RAW."""
    home = old_home(tmp_path / "a")
    v1 = home.registry.load("events")
    real_swap = rebuild_run.swap_curated
    during = []

    def traffic_then_swap(*args, **kwargs):
        append_raw(home.catalog, LATER)
        during.append(standardize_topic(home.catalog, TABLES, v1))
        during.append(curate_topic(home.catalog, TABLES, v1, pii_key=KEY))
        return real_swap(*args, **kwargs)

    monkeypatch.setattr(rebuild_run, "swap_curated", traffic_then_swap)
    outcome = home.deploy(rebuild=True)
    monkeypatch.undo()
    assert outcome.rebuild.balanced
    assert during[0].busy is None and during[0].rows_read == len(LATER)  # Standardized is free
    assert "in progress" in during[1].busy and during[1].rows_read == 0  # Curated is held
    assert accountability.curated_equation(home.catalog, TABLES).pending == len(LATER)
    _, result = home.run()
    assert result.rows_read == len(LATER)
    assert_same_tables(home, fresh_home(tmp_path / "b", [*BATCHES, LATER]))


def test_a_rebuild_waits_for_a_run_in_progress_then_gives_up(tmp_path):
    from leanops_dagster.iceberg.lease import TableLeases, lease_name

    home = old_home(tmp_path / "a")
    leases = TableLeases(home.catalog, "curated")
    lease = leases.acquire(lease_name("events", "curated"), "someone-else", 60)
    started = time.monotonic()
    with pytest.raises(RebuildError, match="another run of events curated is in progress"):
        home.deploy(rebuild=True, lease_wait_s=1.0)
    assert time.monotonic() - started >= 1.0
    assert home.registry.load("events").version != home.registry.versioned_source(
        "events").version  # nothing published
    leases.release(lease)
    assert home.deploy(rebuild=True, lease_wait_s=1.0).rebuild.balanced


def test_a_second_swap_of_the_same_rebuild_changes_nothing(tmp_path):
    """Two runs of one rebuild racing to the swap: the later one finds the rebuild id on
    the live table (after its commit conflict) and leaves it."""
    home = old_home(tmp_path / "a")
    schema = home.registry.versioned_source("events")
    result = rebuild_module.rebuild_topic(home.catalog, TABLES, schema, pii_key=KEY)
    staging = rebuild_module.StagingTables("events", "", result.rebuild_id)
    live = home.catalog.load_table(TABLES.curated)
    errors_table = home.catalog.load_table(TABLES.curated_errors)
    again = rebuild_swap.swap_curated(home.catalog, TABLES, staging, schema, None)
    assert again.current_snapshot().snapshot_id == live.current_snapshot().snapshot_id
    rebuild_swap.swap_error_rows(
        home.catalog, "events", TABLES.curated_errors, staging.curated_errors,
        table_schema=CURATED_ERRORS_SCHEMA,
        spec=CURATED_ERRORS_PARTITION_SPEC,
        watermark_name=errors_watermark_name("events"),
        marker=errors_rebuild_property("events"), rebuild_id=result.rebuild_id,
    )
    assert (home.catalog.load_table(TABLES.curated_errors).current_snapshot().snapshot_id
            == errors_table.current_snapshot().snapshot_id)


def test_rebuild_from_raw_killed_while_staging_standardized_then_rerun(tmp_path, monkeypatch):
    home, expected = tenant_homes(tmp_path)
    real = rebuild_module.staging.standardize.standardize_topic
    calls = []

    def dies_on_the_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(rebuild_module.staging.standardize, "standardize_topic",
                        dies_on_the_second_chunk)
    with pytest.raises(Killed):
        home.deploy(rebuild=True, snapshots_per_chunk=1)
    monkeypatch.undo()
    assert "_metadata_tenant" in standardized(home)[0]  # live Standardized untouched
    progress: list[str] = []
    outcome = home.deploy(rebuild=True, snapshots_per_chunk=1, progress=progress.append)
    raw_snapshots = len(home.catalog.load_table(TABLES.raw).snapshots())
    assert outcome.rebuild.resumed
    # the first RAW chunk was committed before the kill: not staged again
    assert sum("rebuild Standardized chunk" in p for p in progress) == raw_snapshots - 1
    assert sum("rebuild Curated chunk" in p for p in progress) >= 1
    assert_same_from_raw(home, expected)


def test_a_finished_rebuild_left_behind_is_not_resumed(tmp_path):
    """Killed after its swaps but before its staging was dropped, a rebuild must not make
    the next one (a restatement of the same version) skip its swaps."""
    home = old_home(tmp_path / "a")
    schema = home.registry.versioned_source("events")
    first = rebuild_module.rebuild_topic(home.catalog, TABLES, schema, pii_key=KEY,
                                         now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert len(staging_tables(home)) == 2  # left behind (curated and its errors)
    outcome = home.deploy(rebuild=True)
    assert not outcome.rebuild.resumed and outcome.rebuild.rebuild_id != first.rebuild_id
    live = home.catalog.load_table(TABLES.curated)
    assert live.current_snapshot().summary[REBUILD_ID_PROPERTY] == outcome.rebuild.rebuild_id
    assert staging_tables(home) == []
    assert_same_tables(home, fresh_home(tmp_path / "b"))


def test_a_chunk_that_makes_no_progress_stops_the_rebuild(tmp_path, monkeypatch):
    home = old_home(tmp_path / "a")
    before = curated(home)
    monkeypatch.setattr(rebuild_module.staging.curate, "curate_topic",
                        lambda *a, **k: rebuild_module.staging.curate.CurateResult(topic="events"))
    with pytest.raises(RebuildError, match="made no progress"):
        home.deploy(rebuild=True)
    assert curated(home) == before


def expire_history(home: Home) -> None:
    """What a week of table maintenance leaves: small files compacted, and every snapshot
    but the current one and those the consumers' tags keep expired, in RAW and Standardized
    (the append history is gone, the rows are all in the current files)."""
    from leanops_dagster.iceberg.maintenance import compact_small_files

    compact_small_files(home.catalog.load_table(TABLES.standardized), min_files=2)
    for identifier in (TABLES.raw, TABLES.standardized):
        table = home.catalog.load_table(identifier)
        kept = {table.current_snapshot().snapshot_id}
        kept |= {ref.snapshot_id for ref in table.metadata.refs.values()}
        old = [s.snapshot_id for s in table.snapshots() if s.snapshot_id not in kept]
        table.maintenance.expire_snapshots().by_ids(old).commit()
        assert {s.snapshot_id for s in home.catalog.load_table(identifier).snapshots()} == kept


def test_rebuild_after_maintenance_expired_the_history(tmp_path):
    home = old_home(tmp_path / "a")
    expire_history(home)
    outcome = home.deploy(rebuild=True, snapshots_per_chunk=1)
    assert outcome.rebuild.balanced and outcome.rebuild.rows_read == 7
    assert_same_tables(home, fresh_home(tmp_path / "b"))


def test_rebuild_from_raw_after_maintenance_expired_the_history(tmp_path):
    home, expected = tenant_homes(tmp_path)
    expire_history(home)
    outcome = home.deploy(rebuild=True, snapshots_per_chunk=1)
    assert outcome.rebuild.from_raw and outcome.rebuild.balanced
    assert outcome.rebuild.raw_rows_read == sum(len(b) for b in TENANT_BATCHES)
    assert_same_from_raw(home, expected)
    assert [t for t in home.catalog.list_tables("raw") if "__rebuild_" in t[-1]] == []
    # the live RAW table still holds every row (the replay shared its files, never purged)
    assert home.catalog.load_table(TABLES.raw).scan().to_arrow().num_rows == sum(
        len(b) for b in TENANT_BATCHES)
