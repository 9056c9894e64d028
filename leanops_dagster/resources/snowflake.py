"""Snowflake: refresh the Iceberg table analysts query, through the Snowflake SQL API.

Snowflake reads Curated as an Iceberg table from the Glue catalog (a catalog integration, see
docs/deploy.md). A table without ``AUTO_REFRESH`` sees a new Curated snapshot only after
``ALTER ICEBERG TABLE <table> REFRESH`` (seed 003's runbook SQL); the Snowflake asset runs it
after each Curated commit. One HTTPS call per refresh (``POST /api/v2/statements``, polled
while Snowflake answers 202), authenticated with a programmatic access token or an OAuth token:
no driver to install.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Literal

import dagster as dg
from pydantic import Field

from leanops_dagster.settings import Settings

#: Unquoted Snowflake identifiers (resolved upper-case, as ``CREATE ICEBERG TABLE events``
#: stores them); anything else is refused rather than quoted into a statement.
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
LOOPBACK_HTTP = re.compile(r"^http://(127\.0\.0\.1|localhost)(:\d+)?$")
TokenType = Literal["PROGRAMMATIC_ACCESS_TOKEN", "OAUTH", "KEYPAIR_JWT"]


class SnowflakeError(RuntimeError):
    """Snowflake refused or failed a statement (its code and message are kept)."""


def identifier(value: str, what: str) -> str:
    if not IDENTIFIER.fullmatch(value or ""):
        raise ValueError(f"invalid Snowflake {what} {value!r}: must match {IDENTIFIER.pattern}")
    return value


def refresh_statement(database: str, schema: str, table: str) -> str:
    """``ALTER ICEBERG TABLE db.schema.table REFRESH`` with every part checked."""
    parts = (identifier(database, "database"), identifier(schema, "schema"),
             identifier(table, "table"))
    return f"ALTER ICEBERG TABLE {'.'.join(parts)} REFRESH"


@dataclass(frozen=True)
class RefreshResult:
    table: str
    statement: str
    statement_handle: str
    message: str
    seconds: float


class SnowflakeResource(dg.ConfigurableResource):
    """The Snowflake account, credentials and the schema holding one Iceberg table per topic."""

    account: str = Field(description="account identifier, e.g. myorg-myaccount")
    token: str = Field(description="programmatic access token (or OAuth / key-pair JWT)")
    token_type: TokenType = "PROGRAMMATIC_ACCESS_TOKEN"
    database: str = Field(description="database of the Iceberg tables")
    schema_name: str = Field(description="schema of the Iceberg tables")
    table_template: str = Field(default="{topic}", description="table name of a topic")
    warehouse: str | None = None
    role: str | None = None
    base_url: str | None = Field(
        default=None, description="default https://<account>.snowflakecomputing.com"
    )
    timeout_s: int = Field(default=120, description="give up waiting for a statement after")

    @classmethod
    def from_settings(cls, settings: Settings) -> SnowflakeResource:
        if not settings.snowflake_configured:
            raise ValueError("Snowflake is not configured (LEANOPS_SNOWFLAKE_ACCOUNT, _TOKEN)")
        return cls(
            account=settings.snowflake_account or "",
            token=settings.snowflake_token.get_secret_value() if settings.snowflake_token
            else "",
            token_type=settings.snowflake_token_type,
            database=settings.snowflake_database or "",
            schema_name=settings.snowflake_schema or "",
            table_template=settings.snowflake_table_template,
            warehouse=settings.snowflake_warehouse,
            role=settings.snowflake_role,
            base_url=settings.snowflake_url,
        )

    @property
    def url(self) -> str:
        """The SQL API base URL: HTTPS, or plain HTTP to this machine only (a test server),
        so the token never travels unencrypted."""
        url = (self.base_url or f"https://{self.account}.snowflakecomputing.com").rstrip("/")
        if not (url.startswith("https://") or LOOPBACK_HTTP.match(url)):
            raise ValueError(f"Snowflake URL {url!r} must be https:// (http only to loopback)")
        return url

    def table_of(self, topic: str) -> str:
        return identifier(self.table_template.format(topic=topic), "table")

    def refresh(self, topic: str) -> RefreshResult:
        """Refresh ``topic``'s Iceberg table; raises ``SnowflakeError`` with Snowflake's reason."""
        table = self.table_of(topic)
        statement = refresh_statement(self.database, self.schema_name, table)
        body = {"statement": statement, "timeout": self.timeout_s,
                "database": self.database, "schema": self.schema_name}
        if self.warehouse:
            body["warehouse"] = identifier(self.warehouse, "warehouse")
        if self.role:
            body["role"] = identifier(self.role, "role")
        started = time.monotonic()
        # requestId makes a resend of the same POST idempotent on Snowflake's side
        status, answer = self._call(
            "POST", f"/api/v2/statements?requestId={uuid.uuid4()}", body)
        while status == 202:  # still running: poll its handle
            if time.monotonic() - started > self.timeout_s:
                raise SnowflakeError(f"{statement}: still running after {self.timeout_s} s "
                                     f"(handle {answer.get('statementHandle')})")
            time.sleep(1)
            status, answer = self._call("GET", f"/api/v2/statements/{answer['statementHandle']}")
        return RefreshResult(
            table=f"{self.database}.{self.schema_name}.{table}",
            statement=statement,
            statement_handle=str(answer.get("statementHandle", "")),
            message=str(answer.get("message", "")),
            seconds=round(time.monotonic() - started, 3),
        )

    def _call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(  # nosec B310 - scheme checked in `url`
            self.url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Authorization": f"Bearer {self.token}",
                "X-Snowflake-Authorization-Token-Type": self.token_type,
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": "lean-ops-dagster",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # nosec B310
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read() or b"{}")
            except json.JSONDecodeError:
                detail = {}
            raise SnowflakeError(
                f"Snowflake answered {exc.code} to {method} {path.split('?')[0]}: "
                f"{detail.get('message', exc.reason)} (code {detail.get('code', '-')}, "
                f"sqlState {detail.get('sqlState', '-')})"
            ) from exc
