"""A real foreign writer: Iceberg's own maintenance, run by Spark on a test's catalog.

What a platform team runs on shared tables (the Glue table optimizers, S3 Tables maintenance,
a data engineer's ``CALL system.*``) comes down to Iceberg's maintenance actions. This module
runs them with the Iceberg Spark runtime the engine uses, on the session the tests share
(``tests/spark/conftest.py``'s ``spark``: one JVM per test session), against a pyiceberg catalog
registered on that session under its own name:

- compaction: ``rewrite_data_files`` with ``rewrite-all`` (every file rewritten, so every table
  gets a ``replace`` snapshot without any ``leanops.*`` summary property, even a table of one
  file);
- expiry: ``expire_snapshots`` explicitly keeping only the newest snapshot (``retain_last => 1``
  and ``older_than`` one second in the future: beyond anything a table property protects, only
  snapshot references still hold), or with its default arguments (``table`` only: Iceberg then
  reads the table's ``history.expire.*`` properties, as the Glue retention optimizer does).
  Either through the procedure, or (``procedure=False``) through Iceberg's ``ExpireSnapshots``
  table API directly: the procedure commits that same ``RemoveSnapshots`` and then finds the
  files to delete with Spark jobs, which cost seconds per table where the API's own clean-up
  takes a fraction of one (the snapshots removed and the files deleted are the same);
- ``rewrite_manifests``;
- orphan-file clean-up: Iceberg's ``DeleteOrphanFiles`` Spark action, the implementation behind
  ``CALL system.remove_orphan_files``. The procedure refuses an ``older_than`` less than 24 hours
  ago (a guard against concurrent writers, lifted only by ``spark.testing``, which a running
  session cannot set); the action takes any, and a test needs one in the future so that the
  files it has just made count as old. It deletes (no dry run), so it only runs on a table whose
  location is under a directory the test owns (``owned_root``).

Every call returns what the procedure returned (its first row as a dict), so a test can assert
that the maintenance really did something.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pyiceberg.catalog import Catalog
from pyiceberg.table.refs import SnapshotRefType

from leanops_dagster.pipeline.layout import Identifier, TopicTables

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: the prefix of the snapshot references (tags) the platform keeps on its upstream tables
LEANOPS_REF_PREFIX = "leanops"


def _timestamp_literal(at: dt.datetime) -> str:
    """A Spark SQL TIMESTAMP literal of ``at`` (the engine's sessions run in UTC)."""
    return "TIMESTAMP '" + at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f") + "'"


def _quote(part: str) -> str:
    return "`" + part.replace("`", "``") + "`"


@dataclass(frozen=True)
class ForeignWriter:
    """Iceberg's maintenance procedures on ``catalog``'s tables, run by ``spark``.

    ``catalog`` must be registered on ``spark`` under its own name
    (``engines.spark.session.register_catalog``); ``owned_root``: the directory under which
    every table that orphan-file clean-up may touch lies (the test's home)."""

    spark: SparkSession
    catalog: Catalog
    owned_root: Path

    # --- names ---------------------------------------------------------------------------
    def procedure_table(self, identifier: Identifier) -> str:
        """The ``table =>`` argument of a procedure: ``ns.table`` (in the procedure's catalog)."""
        return ".".join(_quote(part) for part in identifier)

    def sql_table(self, identifier: Identifier) -> str:
        """The table in a SQL statement: ```catalog`.`ns`.`table```."""
        return ".".join(_quote(part) for part in (self.catalog.name, *identifier))

    def _call(self, procedure: str, identifier: Identifier, *arguments: str) -> dict:
        args = ", ".join((f"table => '{self.procedure_table(identifier)}'", *arguments))
        rows = self.spark.sql(
            f"CALL {_quote(self.catalog.name)}.system.{procedure}({args})"
        ).collect()
        return rows[0].asDict() if rows else {}

    # --- the procedures ----------------------------------------------------------------------
    def compact(self, identifier: Identifier) -> dict:
        """``rewrite_data_files`` with ``rewrite-all``: one ``replace`` snapshot (when the table
        has data files)."""
        return self._call("rewrite_data_files", identifier,
                          "options => map('rewrite-all', 'true')")

    def expire_keep_newest(self, identifier: Identifier, *, procedure: bool = True) -> dict:
        """``expire_snapshots`` keeping only the newest snapshot: ``retain_last => 1`` and
        ``older_than`` one second from now (every older snapshot a reference does not hold
        is removed, whatever the table's ``history.expire.*`` properties say)."""
        older_than = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        if not procedure:
            return self._expire(identifier, older_than, retain_last=1)
        return self._call("expire_snapshots", identifier,
                          f"older_than => {_timestamp_literal(older_than)}", "retain_last => 1")

    def expire_default(self, identifier: Identifier, *, procedure: bool = True) -> dict:
        """``expire_snapshots(table => ...)``: Iceberg's defaults, which read the table's
        ``history.expire.max-snapshot-age-ms`` / ``min-snapshots-to-keep`` properties."""
        if not procedure:
            return self._expire(identifier)
        return self._call("expire_snapshots", identifier)

    def _expire(self, identifier: Identifier, older_than: dt.datetime | None = None,
                retain_last: int | None = None) -> dict:
        """Iceberg's ``ExpireSnapshots`` table API (files of removed snapshots deleted by its
        own clean-up); returns how many snapshots it removed."""
        before = len(self.catalog.load_table(identifier).snapshots())
        expire = self.java_table(identifier).expireSnapshots()
        if older_than is not None:
            expire = expire.expireOlderThan(int(older_than.timestamp() * 1000))
        if retain_last is not None:
            expire = expire.retainLast(retain_last)
        expire.commit()
        return {"expired_snapshots": before - len(self.catalog.load_table(identifier).snapshots())}

    def java_table(self, identifier: Identifier):
        """The Iceberg Java table, as the session's catalog loads it."""
        jvm = self.spark._jvm  # type: ignore[attr-defined]
        return jvm.org.apache.iceberg.spark.Spark3Util.loadIcebergTable(
            self.spark._jsparkSession, self.sql_table(identifier)  # type: ignore[attr-defined]
        )

    def rewrite_manifests(self, identifier: Identifier) -> dict:
        return self._call("rewrite_manifests", identifier)

    def remove_orphan_files(self, identifier: Identifier) -> list[str]:
        """Iceberg's ``DeleteOrphanFiles`` (``remove_orphan_files``) with ``older_than`` one
        minute in the future, not a dry run: every file under the table's location that no
        retained snapshot references is deleted. Returns the deleted locations."""
        location = self.catalog.load_table(identifier).location()
        path = Path(location.removeprefix("file://").removeprefix("file:"))
        if not location.startswith("file:") or not path.resolve().is_relative_to(
            self.owned_root.resolve()
        ):
            raise AssertionError(
                f"refusing to remove orphan files under {location}: not under the test's "
                f"own directory {self.owned_root}"
            )
        jvm = self.spark._jvm  # type: ignore[attr-defined]
        session = self.spark._jsparkSession  # type: ignore[attr-defined]
        table = self.java_table(identifier)
        older_than_ms = int((time.time() + 60) * 1000)
        result = (jvm.org.apache.iceberg.spark.actions.SparkActions.get(session)
                  .deleteOrphanFiles(table).olderThan(older_than_ms).execute())
        return [str(location) for location in result.orphanFileLocations()]

    # --- references (the consumers' tags) ------------------------------------------------------
    def leanops_tags(self, identifier: Identifier) -> dict[str, int]:
        """The platform's tags on the table (pyiceberg's ``refs()``): name -> snapshot id."""
        refs = self.catalog.load_table(identifier).refs()
        return {name: ref.snapshot_id for name, ref in refs.items()
                if ref.snapshot_ref_type == SnapshotRefType.TAG
                and name.startswith(LEANOPS_REF_PREFIX)}

    def drop_leanops_tags(self, identifier: Identifier) -> list[str]:
        """What an operator removing "unknown" references does: Spark's ``ALTER TABLE ... DROP
        TAG`` of every ``leanops*`` tag. Returns the names dropped."""
        names = sorted(self.leanops_tags(identifier))
        for name in names:
            self.spark.sql(f"ALTER TABLE {self.sql_table(identifier)} DROP TAG {_quote(name)}")
        return names

    # --- a second reader -------------------------------------------------------------------
    def count(self, identifier: Identifier, where: str | None = None) -> int:
        """Spark SQL ``SELECT count(*)`` of the table's current snapshot."""
        condition = f" WHERE {where}" if where else ""
        return self.spark.sql(
            f"SELECT count(*) AS n FROM {self.sql_table(identifier)}{condition}"
        ).collect()[0]["n"]

    def read(self, identifier: Identifier, columns: Iterable[str],
             where: str | None = None) -> list[tuple]:
        """``columns`` of every row, as Spark SQL reads them (tuples, in ``columns``' order)."""
        selected = ", ".join(_quote(c) for c in columns)
        condition = f" WHERE {where}" if where else ""
        return [tuple(row) for row in self.spark.sql(
            f"SELECT {selected} FROM {self.sql_table(identifier)}{condition}").collect()]


# --- every table of a topic ----------------------------------------------------------------------
def topic_tables(catalog: Catalog, tables: TopicTables) -> list[Identifier]:
    """The topic's tables that exist and hold a snapshot: RAW staging, Standardized,
    ``parse_errors``, Curated, curated ``errors``, the drift log (upstream first)."""
    candidates = (tables.raw, tables.standardized, tables.parse_errors, tables.curated,
                  tables.curated_errors, tables.drift_log)
    return [identifier for identifier in candidates if catalog.table_exists(identifier)
            and catalog.load_table(identifier).current_snapshot() is not None]


@dataclass(frozen=True)
class Maintained:
    """What one round of maintenance did, per table (the procedures' own figures)."""

    compacted: dict[Identifier, dict]
    expired: dict[Identifier, dict]
    manifests: dict[Identifier, dict]
    orphans: dict[Identifier, list[str]]


def maintain_topic(
    writer: ForeignWriter,
    tables: TopicTables,
    *,
    compact: bool = True,
    expire: str | None = "keep_newest",
    manifests: bool = False,
    orphans: bool = False,
    only: Iterable[Identifier] | None = None,
    expire_procedure: bool = False,
) -> Maintained:
    """One round of foreign maintenance on every table of the topic (or ``only`` those), each
    table in turn: compaction, then manifests, then expiry (``keep_newest``, ``default`` or
    None; through the procedure if ``expire_procedure``, else the table API, see the module
    docstring), then orphan-file clean-up, the order a maintenance job runs them in."""
    chosen = topic_tables(writer.catalog, tables)
    if only is not None:
        wanted = set(only)
        chosen = [identifier for identifier in chosen if identifier in wanted]
    done = Maintained({}, {}, {}, {})
    for identifier in chosen:
        if compact:
            done.compacted[identifier] = writer.compact(identifier)
        if manifests:
            done.manifests[identifier] = writer.rewrite_manifests(identifier)
        if expire == "keep_newest":
            done.expired[identifier] = writer.expire_keep_newest(
                identifier, procedure=expire_procedure)
        elif expire == "default":
            done.expired[identifier] = writer.expire_default(
                identifier, procedure=expire_procedure)
        elif expire is not None:
            raise ValueError(f"unknown expiry {expire!r}")
        if orphans:
            done.orphans[identifier] = writer.remove_orphan_files(identifier)
    return done
