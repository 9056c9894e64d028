"""The optional Snowflake refresh: absent unless configured; configured, the topic run ends by
posting `ALTER ICEBERG TABLE ... REFRESH` to the SQL API (a local HTTP server standing in for
Snowflake records each request and answers as the API documents: 200, 202 then 200, 422)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from leanops_dagster.assets.keys import CURATED, SNOWFLAKE_CURATED, STANDARDIZED
from leanops_dagster.definitions import build_definitions
from leanops_dagster.resources.snowflake import SnowflakeResource, refresh_statement
from leanops_dagster.settings import get_settings
from tests.dagster.conftest import append_raw, event, raw_row


class SqlApi:
    """Records requests; answers with the queued (status, body) pairs, then 200."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.answers: list[tuple[int, dict]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                api.requests.append({
                    "method": self.command, "path": self.path, "headers": dict(self.headers),
                    "body": json.loads(self.rfile.read(length)) if length else None,
                })
                status, body = api.answers.pop(0) if api.answers else (200, {
                    "statementHandle": "01-final", "message": "Statement executed successfully."})
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_GET = _answer

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def sql_api():
    api = SqlApi()
    yield api
    api.server.shutdown()


@pytest.fixture
def snowflake_settings(settings, sql_api):
    return get_settings(
        home=settings.home, snowflake_account="myorg-analytics", snowflake_token="pat-secret",
        snowflake_database="ANALYTICS", snowflake_schema="LEAN_OPS",
        snowflake_warehouse="REFRESH_WH", snowflake_role="LEAN_OPS_REFRESHER",
        snowflake_url=sql_api.url,
    )


def _run(settings, instance):
    job = build_definitions(settings).resolve_job_def("topic_pipeline")
    return job.execute_in_process(instance=instance, partition_key="events", raise_on_error=False)


def test_unconfigured_there_is_no_snowflake_asset(settings):
    definitions = build_definitions(settings)
    assert SNOWFLAKE_CURATED not in set(definitions.resolve_asset_graph().get_all_asset_keys())
    job = definitions.resolve_job_def("topic_pipeline")
    assert set(job.asset_layer.selected_asset_keys) == {STANDARDIZED, CURATED}
    assert "snowflake" not in definitions.resources


def test_each_curated_commit_is_followed_by_one_refresh(snowflake_settings, registry, catalog,
                                                        sql_api):
    registry.deploy("events")
    append_raw(catalog, [raw_row("m1", event("k1"))])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("topics", ["events"])
        job = build_definitions(snowflake_settings).resolve_job_def("topic_pipeline")
        assert set(job.asset_layer.selected_asset_keys) == {
            STANDARDIZED, CURATED, SNOWFLAKE_CURATED}
        result = _run(snowflake_settings, instance)
        assert result.success
        (request,) = sql_api.requests
        assert request["method"] == "POST"
        assert request["path"].startswith("/api/v2/statements?requestId=")
        assert request["headers"]["Authorization"] == "Bearer pat-secret"
        assert request["headers"]["X-Snowflake-Authorization-Token-Type"] == (
            "PROGRAMMATIC_ACCESS_TOKEN")
        assert request["body"] == {
            "statement": "ALTER ICEBERG TABLE ANALYTICS.LEAN_OPS.events REFRESH",
            "timeout": 120, "database": "ANALYTICS", "schema": "LEAN_OPS",
            "warehouse": "REFRESH_WH", "role": "LEAN_OPS_REFRESHER"}
        (materialization,) = [
            m for m in result.get_asset_materialization_events()
            if m.asset_key == SNOWFLAKE_CURATED]
        metadata = materialization.step_materialization_data.materialization.metadata
        assert metadata["statement_handle"].value == "01-final"
        assert metadata["dagster/table_name"].value == "ANALYTICS.LEAN_OPS.events"


def test_a_blocked_curated_is_not_refreshed(snowflake_settings, registry, catalog, sql_api):
    registry.deploy("events")
    append_raw(catalog, [raw_row("b1", event("kb1", user="nobody"))])  # CDE rate 1.0: blocks
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("topics", ["events"])
        assert not _run(snowflake_settings, instance).success
    assert sql_api.requests == []


def test_a_running_statement_is_polled_until_done(snowflake_settings, sql_api):
    sql_api.answers = [(202, {"statementHandle": "01-slow", "message": "in progress"})]
    result = SnowflakeResource.from_settings(snowflake_settings).refresh("events")
    assert [r["method"] + " " + r["path"] for r in sql_api.requests][1:] == [
        "GET /api/v2/statements/01-slow"]
    assert result.statement_handle == "01-final"


def test_snowflake_refusal_fails_with_its_reason(snowflake_settings, sql_api):
    sql_api.answers = [(422, {"code": "002003", "sqlState": "02000", "message":
                              "Iceberg table 'EVENTS' does not exist or not authorized."})]
    with pytest.raises(RuntimeError, match=r"422.*does not exist or not authorized.*002003"):
        SnowflakeResource.from_settings(snowflake_settings).refresh("events")


def test_settings_refuse_half_a_configuration_and_unsafe_names(settings):
    with pytest.raises(ValueError, match="LEANOPS_SNOWFLAKE_DATABASE, LEANOPS_SNOWFLAKE_SCHEMA"):
        get_settings(home=settings.home, snowflake_account="a", snowflake_token="t")
    with pytest.raises(ValueError, match="invalid Snowflake database"):
        refresh_statement("ANALYTICS; DROP TABLE x", "LEAN_OPS", "events")
    resource = SnowflakeResource(account="a", token="t", database="D", schema_name="S",
                                 base_url="http://snowflake.example.com")
    with pytest.raises(ValueError, match="must be https"):
        resource.refresh("events")  # the token never goes out over plain HTTP
