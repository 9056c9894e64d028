"""Compatible changes apply themselves: deployed between two runs, they evolve Curated."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from leanops_dagster.cli import main
from leanops_dagster.constants import SCHEMA_VERSION_PROPERTY
from leanops_dagster.iceberg.catalog import open_catalog
from leanops_dagster.pipeline import accountability
from leanops_dagster.pipeline.curate import curate_topic
from leanops_dagster.pipeline.curated_evolution import (
    SchemaMismatchError,
    evolve_curated,
    plan_evolution,
)
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.standardize import standardize_topic
from leanops_dagster.schemas.registry import SchemaRegistry
from leanops_dagster.settings import get_settings
from tests.dagster.conftest import append_raw, event, raw_row

TABLES = TopicTables("events")
KEY = b"leanops-local-development-key"  # the settings' default: what `leanops run` uses


@pytest.fixture
def home(tmp_path, tmp_schemas, monkeypatch):
    monkeypatch.setenv("LEANOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LEANOPS_SCHEMA_REGISTRY", str(tmp_schemas))
    settings = get_settings()
    return settings, SchemaRegistry.from_settings(settings), open_catalog(settings)


@pytest.fixture
def tmp_schemas(tmp_path):
    import shutil

    from leanops_dagster.settings import REPO_ROOT

    target = tmp_path / "schemas"
    shutil.copytree(REPO_ROOT / "schemas", target)
    return target


def edit_curated(schemas, change) -> None:
    path = schemas / "events" / "curated.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def with_country(body: dict, country: str) -> dict:
    body["event"]["metadata"]["country"] = country
    return body


def run_layers(catalog, schema):
    std = standardize_topic(catalog, TABLES, schema)
    return std, curate_topic(catalog, TABLES, schema, pii_key=KEY)


def curated_rows(catalog) -> dict[str, dict]:
    rows = catalog.load_table(TABLES.curated).scan().to_arrow().to_pylist()
    return {r["idempotency_key"]: r for r in rows}


def add_country(data: dict) -> None:
    data["columns"].append(
        {"name": "country", "source": "event_metadata_country", "type": "string"})


def test_new_column_deployed_between_two_runs(home, tmp_schemas):
    """Issue 9's scenario: demo-like data curated, `country` deployed, the next run works."""
    _, registry, catalog = home
    registry.deploy("events")
    v1 = registry.load("events")
    append_raw(catalog, [raw_row("m1", event("k1")), raw_row("m2", event("k2", minutes=1)),
                         raw_row("m3", event("k3", minutes=2)), raw_row("bad", "not json")])
    _, first = run_layers(catalog, v1)
    assert first.inserted == 3
    before = catalog.load_table(TABLES.curated)
    snapshots_before = len(before.snapshots())
    metadata_log_before = len(before.metadata.metadata_log)

    edit_curated(tmp_schemas, add_country)
    deployed = CliRunner().invoke(main, ["schema", "deploy", "events"])
    assert deployed.exit_code == 0, deployed.output
    assert "curated table evolved in one schema commit: add column country string" in (
        deployed.output
    )
    v2 = registry.load("events")
    assert v2.version != v1.version
    evolved = catalog.load_table(TABLES.curated)
    assert evolved.schema().column_names[-1] == "country"
    assert len(evolved.snapshots()) == snapshots_before  # a schema commit, no data rewritten
    assert len(evolved.metadata.metadata_log) == metadata_log_before + 1  # exactly one commit

    # new data: a new key and a correction of k1, both with a country
    append_raw(catalog, [
        raw_row("m4", with_country(event("k4", minutes=10), "DE"), minutes=10),
        raw_row("m5", with_country(event("k1", minutes=11, verb="fixed"), "FR"), minutes=11),
    ])
    _, second = run_layers(catalog, v2)
    assert (second.inserted, second.updated) == (1, 1)

    rows = curated_rows(catalog)
    assert {k: rows[k]["country"] for k in sorted(rows)} == {
        "k1": "FR", "k2": None, "k3": None, "k4": "DE"}  # old rows read null
    assert rows["k1"]["verb"] == "fixed"
    table = catalog.load_table(TABLES.curated)
    versions = [s.summary.additional_properties.get(SCHEMA_VERSION_PROPERTY)
                for s in table.snapshots()]
    assert versions == [v1.version, v2.version]  # which version produced which data
    assert accountability.curated_equation(catalog, TABLES).balanced

    again = CliRunner().invoke(main, ["schema", "deploy", "events"])
    assert again.exit_code == 0 and "events: unchanged" in again.output
    assert "evolved" not in again.output  # idempotent: nothing left to evolve


def test_a_run_in_flight_finishes_on_its_version(home, tmp_schemas):
    """A run that loaded the old schema before the deploy commits on it: its rows read the
    new column as null, and its snapshot says which version wrote it."""
    _, registry, catalog = home
    registry.deploy("events")
    v1 = registry.load("events")
    append_raw(catalog, [raw_row("m1", event("k1"))])
    run_layers(catalog, v1)

    edit_curated(tmp_schemas, add_country)
    assert CliRunner().invoke(main, ["schema", "deploy", "events"]).exit_code == 0
    append_raw(catalog, [raw_row("m2", with_country(event("k2", minutes=5), "DE"), minutes=5)])
    _, in_flight = run_layers(catalog, v1)  # the schema object it started with
    assert in_flight.inserted == 1
    assert curated_rows(catalog)["k2"]["country"] is None
    last = catalog.load_table(TABLES.curated).current_snapshot()
    assert last.summary.additional_properties[SCHEMA_VERSION_PROPERTY] == v1.version
    assert "country" in catalog.load_table(TABLES.curated).schema().column_names  # not dropped


def test_type_promotion_and_reorder_keep_stored_values(home, tmp_schemas):
    _, registry, catalog = home
    edit_curated(tmp_schemas, lambda d: d["columns"].insert(
        3, {"name": "clicks", "source": "clicks", "type": "int"}))
    registry.deploy("events")
    v1 = registry.load("events")
    append_raw(catalog, [raw_row("m1", event("k1", extra={"clicks": 3})),
                         raw_row("m2", event("k2", extra={"clicks": 4}, minutes=1))])
    run_layers(catalog, v1)

    def widen_and_move(data):
        clicks = next(c for c in data["columns"] if c["name"] == "clicks")
        data["columns"].remove(clicks)
        data["columns"].append({**clicks, "type": "long"})
        add_country(data)

    edit_curated(tmp_schemas, widen_and_move)
    changes = registry.changes("events")
    assert sorted(c.kind for c in changes) == [
        "column_added", "column_order_changed", "type_widened"]
    deployed = CliRunner().invoke(main, ["schema", "deploy", "events"])
    assert deployed.exit_code == 0, deployed.output
    assert "promote column clicks to long" in deployed.output
    v2 = registry.load("events")
    table = catalog.load_table(TABLES.curated)
    assert table.schema().column_names == v2.curated.arrow_schema().names
    assert str(table.schema().find_field("clicks").field_type) == "long"

    # a run still on the first version (int, the old order) writes into the evolved table and
    # leaves its schema alone: no reorder back, no narrowing
    append_raw(catalog, [raw_row("m0", event("k0", extra={"clicks": 7}, minutes=2), minutes=2)])
    run_layers(catalog, v1)
    assert catalog.load_table(TABLES.curated).schema() == table.schema()
    assert curated_rows(catalog)["k0"]["clicks"] == 7

    # a correction of k1 rewrites its old (int) file; a new key holds a value beyond int32
    append_raw(catalog, [
        raw_row("m3", event("k1", extra={"clicks": 5}, minutes=9, verb="again"), minutes=9),
        raw_row("m4", event("k3", extra={"clicks": 2**40}, minutes=9), minutes=9),
    ])
    run_layers(catalog, v2)
    rows = curated_rows(catalog)
    assert {k: rows[k]["clicks"] for k in sorted(rows)} == {
        "k0": 7, "k1": 5, "k2": 4, "k3": 2**40}
    assert accountability.curated_equation(catalog, TABLES).balanced


def test_a_schema_published_without_the_cli_is_applied_by_the_next_run(home, tmp_schemas):
    """The Curated run evolves the table itself when the deployed schema got ahead of it
    (a document written to the store directly): no `increment has columns` failure."""
    _, registry, catalog = home
    registry.deploy("events")
    append_raw(catalog, [raw_row("m1", event("k1"))])
    run_layers(catalog, registry.load("events"))
    edit_curated(tmp_schemas, add_country)
    registry.deploy("events")  # the registry alone: the table is not evolved yet
    assert "country" not in catalog.load_table(TABLES.curated).schema().column_names
    append_raw(catalog, [raw_row("m2", with_country(event("k2", minutes=1), "DE"), minutes=1)])
    _, result = run_layers(catalog, registry.load("events"))
    assert result.inserted == 1
    assert curated_rows(catalog)["k2"]["country"] == "DE"


def test_evolve_refuses_a_type_the_table_cannot_hold(home, tmp_schemas):
    _, registry, catalog = home
    registry.deploy("events")
    append_raw(catalog, [raw_row("m1", event("k1"))])
    run_layers(catalog, registry.load("events"))
    edit_curated(tmp_schemas, lambda d: next(
        c for c in d["columns"] if c["name"] == "device_id").update(type="long"))
    source = registry.versioned_source("events")
    table = catalog.load_table(TABLES.curated)
    with pytest.raises(SchemaMismatchError, match="'device_id' is string in the table"):
        plan_evolution(table.schema(), source)
    with pytest.raises(SchemaMismatchError, match="--rebuild"):
        evolve_curated(catalog, TABLES, source)


def test_no_table_yet_needs_no_evolution(home):
    _, registry, catalog = home
    result = evolve_curated(catalog, TABLES, registry.versioned_source("events"))
    assert not result.committed and result.plan.is_empty
