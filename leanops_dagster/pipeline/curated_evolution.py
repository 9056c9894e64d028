"""Compatible Curated schema changes applied to the table: one Iceberg schema commit.

``plan_evolution(table_schema, schema)`` (pure) compares the Curated table's Iceberg schema with
what a topic schema needs: columns to add, types to promote (int -> long, decimal precision
widened), the column order. ``evolve_curated`` commits that plan with ``update_schema()`` in ONE
commit (no data file is touched) and is idempotent: a table that already holds the schema is
left alone.

Rows already curated read an added column as **null**. pyiceberg 0.12 could store the schema
``default`` as the column's Iceberg ``initial-default`` (and would read old rows as it), but
``initial-default`` is a format-v3 feature: on our format-v2 tables other engines (Athena,
Snowflake, Spark's Iceberg runtime) are not bound to apply it, so one row could read
differently by engine. Null is the same everywhere; ``--rebuild`` restates old rows.

The table keeps columns the schema no longer has and types wider than it needs: a run still
on the previous version (in flight while the change was deployed) then finishes on the
version it started with, its rows reading the new columns as null. A table column whose type
the schema cannot be promoted to is a breaking difference: ``SchemaMismatchError``.

A Curated table rebuilt for a breaking change lists the schema versions it replaced in the
table property ``leanops.schema.superseded-versions``; ``conform_curated_table`` refuses a run
of such a version (its rows would carry the old meaning of a column, e.g. a PII flag that is
no longer set), so a run in flight during a rebuild fails instead of writing old semantics.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from pyiceberg.catalog import Catalog
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.types import DecimalType, DoubleType, FloatType, IcebergType, IntegerType, LongType

from leanops_dagster.constants import SUPERSEDED_VERSIONS_PROPERTY
from leanops_dagster.iceberg.catalog import schema_from_arrow
from leanops_dagster.iceberg.commit import retry_commit
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.schemas.models import TopicSchema


class SchemaMismatchError(RuntimeError):
    """The table cannot hold the schema without rewriting data (a breaking change), or the
    schema is a version a rebuild superseded. Not a ValueError: it comes from the table, not
    from a row, so a layer run's safety net (``pipeline.quarantine``) does not probe rows."""


@dataclass(frozen=True)
class EvolutionPlan:
    """What ``update_schema()`` must do; ``order`` is the target column order (None: kept)."""

    add: tuple[tuple[str, IcebergType], ...] = ()
    promote: tuple[tuple[str, IcebergType], ...] = ()
    order: tuple[str, ...] | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.add or self.promote or self.order)

    def describe(self) -> list[str]:
        return (
            [f"add column {name} {kind}" for name, kind in self.add]
            + [f"promote column {name} to {kind}" for name, kind in self.promote]
            + ([f"order columns {', '.join(self.order)}"] if self.order else [])
        )


def is_promotion(stored: IcebergType, wanted: IcebergType) -> bool:
    """Iceberg's promotions (int -> long, float -> double, decimal precision at the same
    scale). Not ``pyiceberg.schema.promote``: 0.12's decimal rule compares a scale with
    itself, so it would accept a scale change."""
    if isinstance(stored, IntegerType):
        return isinstance(wanted, LongType)
    if isinstance(stored, FloatType):
        return isinstance(wanted, DoubleType)
    if isinstance(stored, DecimalType) and isinstance(wanted, DecimalType):
        return stored.scale == wanted.scale and wanted.precision > stored.precision
    return False


def plan_evolution(table_schema: Schema, schema: TopicSchema) -> EvolutionPlan:
    """The schema commit that lets ``table_schema`` hold ``schema``'s Curated columns."""
    target = schema_from_arrow(schema.curated.arrow_schema())
    current = {f.name: f.field_type for f in table_schema.fields}
    add, promote = [], []
    for field in target.fields:
        stored = current.get(field.name)
        if stored is None:
            add.append((field.name, field.field_type))
        elif stored != field.field_type:
            if is_promotion(stored, field.field_type):
                promote.append((field.name, field.field_type))
            elif not is_promotion(field.field_type, stored):  # a wider table type is fine
                raise SchemaMismatchError(
                    f"Curated column {field.name!r} is {stored} in the table but "
                    f"{field.field_type} in schema version {schema.version}: a breaking "
                    f"change; deploy it with `leanops schema deploy {schema.topic} --rebuild`"
                )
    names = [f.name for f in target.fields]
    wanted = set(names)
    # added columns land at the end; reorder only when that is not the schema's order
    after_add = [f.name for f in table_schema.fields if f.name in wanted] + [n for n, _ in add]
    order = tuple(names) if after_add != names else None
    return EvolutionPlan(tuple(add), tuple(promote), order)


def apply_plan(table: Table, plan: EvolutionPlan) -> None:
    """One schema commit; nothing when the plan is empty."""
    if plan.is_empty:
        return
    with table.update_schema() as update:
        for name, kind in plan.add:
            update.add_column(name, kind)
        for name, kind in plan.promote:
            update.update_column(name, field_type=kind)
        if plan.order:
            update.move_first(plan.order[0])
            for before, name in itertools.pairwise(plan.order):
                update.move_after(name, before)


def superseded_versions(table: Table) -> set[str]:
    raw = table.properties.get(SUPERSEDED_VERSIONS_PROPERTY, "")
    return {v for v in raw.split(",") if v}


def refuse_superseded(table: Table | None, schema: TopicSchema) -> None:
    """A run of a schema version a rebuild replaced must not write to the rebuilt table
    (Curated, or Standardized after a rebuild from RAW)."""
    if table is not None and schema.version and schema.version in superseded_versions(table):
        raise SchemaMismatchError(
            f"table {'.'.join(table.name())} was rebuilt for a breaking change and replaces "
            f"schema version {schema.version}: this run's schema is out of date (it started "
            "before the rebuild was published); the next run uses the deployed schema"
        )


@dataclass(frozen=True)
class EvolveResult:
    topic: str
    plan: EvolutionPlan
    committed: bool


def evolve_curated(catalog: Catalog, tables: TopicTables, schema: TopicSchema) -> EvolveResult:
    """Evolve ``curated.<topic>`` to hold ``schema`` in one schema commit (a table not created
    yet needs nothing: the first run creates it from the schema)."""
    if not catalog.table_exists(tables.curated):
        return EvolveResult(tables.topic, EvolutionPlan(), False)

    def once() -> EvolveResult:
        table = catalog.load_table(tables.curated)
        plan = plan_evolution(table.schema(), schema)
        apply_plan(table, plan)
        return EvolveResult(tables.topic, plan, not plan.is_empty)

    return retry_commit(once)


def conform_curated_table(
    catalog: Catalog, tables: TopicTables, schema: TopicSchema, table: Table | None
) -> Table | None:
    """Called by the Curated run before it reads: refuse a superseded schema version, and
    evolve the table if the deployed schema got ahead of it (a schema deployed without
    ``leanops schema deploy``, e.g. a document written straight to the S3 store)."""
    refuse_superseded(table, schema)
    if table is None:
        return table
    plan = plan_evolution(table.schema(), schema)
    if not (plan.add or plan.promote):  # it can hold the rows; order is the deploy's business
        return table  # (a run still on an older version must not reorder a newer table)
    evolve_curated(catalog, tables, schema)
    return catalog.load_table(tables.curated)
