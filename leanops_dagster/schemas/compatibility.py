"""Every change between a deployed and a source topic schema, labelled compatible or breaking.

``classify(deployed, source)`` is pure (no I/O): it compares two ``TopicSchema`` documents and
returns one ``Change`` per difference, each with a verdict and the reason for it. The rule is
the one a Curated table can honour without rewriting history (docs/schemas.md, "Schema
changes"):

* **compatible** — the change applies to rows curated from now on, and rows already curated
  stay true under the new schema: a new non-CDE column (with or without a default; rows
  already curated read it as null), a type widening Iceberg promotes in place (int -> long,
  float -> double, decimal precision widened at the same scale), a relaxed rule (a bound
  removed or widened, an allowed list grown, ``cde`` turned off), the CDE error-rate threshold,
  descriptions, the column order. ``leanops schema deploy`` applies these to the Curated table
  in one Iceberg schema commit.
* **breaking** — rows already curated (or Standardized) would be wrong or incomplete under
  the new schema: a removed or renamed column, any other type change, a changed source key,
  a new CDE column or a column becoming CDE, a tightened or changed rule, a changed default,
  a PII flag added or removed, a changed LIFO sequence, a changed metadata mapping, required
  metadata or dropped keys. ``leanops schema deploy`` refuses these unless ``--rebuild``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from leanops_dagster.schemas.cast import cast_literal
from leanops_dagster.schemas.models import CuratedColumn, Rules, TopicSchema
from leanops_dagster.schemas.types import parse_type


class Verdict(StrEnum):
    COMPATIBLE = "compatible"
    BREAKING = "breaking"


@dataclass(frozen=True)
class Change:
    """One difference, deployed -> source. ``what`` is a one-line ``+``/``-``/``~`` summary
    (the style of ``leanops schema diff``), ``kind`` a stable name tests and tools match on."""

    kind: str
    what: str
    verdict: Verdict
    reason: str

    @property
    def breaking(self) -> bool:
        return self.verdict is Verdict.BREAKING


def _compatible(kind: str, what: str, reason: str) -> Change:
    return Change(kind, what, Verdict.COMPATIBLE, reason)


def _breaking(kind: str, what: str, reason: str) -> Change:
    return Change(kind, what, Verdict.BREAKING, reason)


def breaking_changes(changes: Iterable[Change]) -> list[Change]:
    return [c for c in changes if c.breaking]


# --- types ----------------------------------------------------------------------------------
def is_type_promotion(old: str, new: str) -> bool:
    """Iceberg's in-place promotions: int -> long, float -> double, decimal(P,S) ->
    decimal(P',S) with P' > P. (``float`` is not a curated type; it is listed because it is
    one of Iceberg's three.)"""
    if old == new:
        return False
    if (old, new) in (("int", "long"), ("float", "double")):
        return True
    if old.startswith("decimal") and new.startswith("decimal"):
        _, old_precision, old_scale = parse_type(old)
        _, new_precision, new_scale = parse_type(new)
        return old_scale == new_scale and new_precision > old_precision  # type: ignore[operator]
    return False


# --- rules ----------------------------------------------------------------------------------
def _typed(value: Any, spec: str) -> Any:
    return cast_literal(value, spec).as_py()


def _rule_change(
    column: str, rule: str, old: Any, new: Any, spec: str
) -> Change:
    """One rule of one column changed; relaxed when every value it accepted is still
    accepted."""
    what = f"~ curated column {column}: rules.{rule}: {old!r} -> {new!r}"
    if new is None:
        return _compatible("rule_relaxed", what, f"rule {rule} removed: it accepts more values")
    if old is None:
        return _breaking(
            "rule_tightened", what,
            f"new rule {rule}: rows already curated were not checked against it",
        )
    try:
        relaxed = _relaxed(rule, old, new, spec)
    except ValueError:  # a bound of the old type that the new type cannot hold
        relaxed = False
    if relaxed:
        return _compatible("rule_relaxed", what, f"rule {rule} relaxed: it accepts more values")
    return _breaking(
        "rule_tightened", what,
        f"rule {rule} tightened or changed: rows already curated may violate it",
    )


def _relaxed(rule: str, old: Any, new: Any, spec: str) -> bool:
    """Whether rule ``rule`` with bound ``new`` accepts every value ``old`` accepted."""
    if rule == "regex":
        return False  # whether one pattern accepts all another accepts is not checked here
    if rule == "allowed":
        return {_typed(v, spec) for v in old} <= {_typed(v, spec) for v in new}
    if rule in ("min", "max"):
        before, after = _typed(old, spec), _typed(new, spec)
        return after <= before if rule == "min" else after >= before
    if rule == "min_length":
        return new <= old
    return new >= old  # max_length


def _rules_changes(column: str, old: Rules, new: Rules, spec: str) -> list[Change]:
    before, after = old.model_dump(), new.model_dump()
    return [
        _rule_change(column, rule, before[rule], after[rule], spec)
        for rule in before
        if before[rule] != after[rule]
    ]


# --- columns --------------------------------------------------------------------------------
def _summary(column: CuratedColumn) -> str:
    flags = [column.type]
    flags += [flag for flag in ("cde", "pii") if getattr(column, flag)]
    if column.source:
        flags.append(f"source={column.source}")
    return ", ".join(flags)


def _added(column: CuratedColumn) -> Change:
    what = f"+ curated column {column.name} ({_summary(column)})"
    if column.cde:
        return _breaking(
            "cde_column_added", what,
            "new CDE column: rows already curated have no value for it, so they violate it",
        )
    if column.default is not None:
        return _compatible(
            "column_added_with_default", what,
            f"new column with a default: rows curated from now on get {column.default!r} for a "
            "null; rows already curated read null",
        )
    return _compatible(
        "column_added", what, "new non-CDE column: rows already curated read it as null"
    )


def _column_changes(old: CuratedColumn, new: CuratedColumn) -> list[Change]:
    name = new.name
    changes: list[Change] = []

    def what(field: str, before: Any, after: Any) -> str:
        return f"~ curated column {name}: {field}: {before!r} -> {after!r}"

    if old.type != new.type:
        if is_type_promotion(old.type, new.type):
            changes.append(_compatible(
                "type_widened", what("type", old.type, new.type),
                f"{old.type} -> {new.type} is an Iceberg type promotion: stored values read "
                "widened, nothing is rewritten",
            ))
        else:
            changes.append(_breaking(
                "type_changed", what("type", old.type, new.type),
                f"{old.type} -> {new.type} is not an Iceberg type promotion: stored values "
                "cannot be read as the new type",
            ))
    if old.source_column != new.source_column:
        changes.append(_breaking(
            "source_changed", what("source", old.source_column, new.source_column),
            "changed source key: rows already curated hold values of the old key",
        ))
    if old.cde != new.cde:
        if new.cde:
            changes.append(_breaking(
                "became_cde", what("cde", old.cde, new.cde),
                "column became a CDE: rows already curated with a null or invalid value "
                "would now be errors",
            ))
        else:
            changes.append(_compatible(
                "cde_relaxed", what("cde", old.cde, new.cde),
                "column is no longer a CDE (relaxed): rows curated from now on may hold nulls",
            ))
    if old.pii != new.pii:
        state = "added" if new.pii else "removed"
        changes.append(_breaking(
            "pii_changed", what("pii", old.pii, new.pii),
            f"PII flag {state}: rows already curated are stored "
            f"{'in clear' if new.pii else 'as HMAC'}; they must be restated",
        ))
    if old.default != new.default:
        changes.append(_breaking(
            "default_changed", what("default", old.default, new.default),
            "changed default: rows already curated hold the old default for a null",
        ))
    changes += _rules_changes(name, old.rules, new.rules, new.type)
    if old.description != new.description:
        changes.append(_compatible(
            "description_changed", what("description", old.description, new.description),
            "description only",
        ))
    return changes


def _renames(
    removed: list[CuratedColumn], added: list[CuratedColumn]
) -> list[tuple[CuratedColumn, CuratedColumn]]:
    """Removed/added pairs reading the same source with the same type: a rename."""
    pairs = []
    taken: set[str] = set()
    for old in removed:
        for new in added:
            if new.name not in taken and (new.source_column, new.type) == (
                old.source_column, old.type
            ):
                pairs.append((old, new))
                taken.add(new.name)
                break
    return pairs


def _curated_changes(deployed: TopicSchema, source: TopicSchema) -> list[Change]:
    old, new = deployed.curated, source.curated
    changes: list[Change] = []
    if old.sequence != new.sequence:
        changes.append(_breaking(
            "sequence_changed", f"~ curated.sequence: {old.sequence} -> {new.sequence}",
            "changed LIFO sequence: the version kept for each key may differ",
        ))
    if old.cde_error_rate_threshold != new.cde_error_rate_threshold:
        changes.append(_compatible(
            "threshold_changed",
            f"~ curated.cde_error_rate_threshold: {old.cde_error_rate_threshold} -> "
            f"{new.cde_error_rate_threshold}",
            "check threshold only: no stored row changes",
        ))
    if old.description != new.description:
        changes.append(_compatible(
            "description_changed", f"~ curated.description: {old.description!r} -> "
            f"{new.description!r}", "description only",
        ))
    old_cols = {c.name: c for c in old.columns}
    new_cols = {c.name: c for c in new.columns}
    removed = [c for c in old.columns if c.name not in new_cols]
    added = [c for c in new.columns if c.name not in old_cols]
    renames = _renames(removed, added)
    renamed_from = {o.name for o, _ in renames}
    renamed_to = {n.name for _, n in renames}
    for old_col, new_col in renames:
        changes.append(_breaking(
            "column_renamed", f"~ curated column {old_col.name} renamed {new_col.name}",
            "renamed column: readers of the old name break, and rows already curated hold it "
            "under the old name",
        ))
    for column in removed:
        if column.name not in renamed_from:
            changes.append(_breaking(
                "column_removed", f"- curated column {column.name} ({_summary(column)})",
                "removed column: its stored values would be dropped",
            ))
    for column in added:
        if column.name not in renamed_to:
            changes.append(_added(column))
    for name, column in new_cols.items():
        if name in old_cols and old_cols[name] != column:
            changes += _column_changes(old_cols[name], column)
    kept_old = [n for n in old_cols if n in new_cols]
    kept_new = [n for n in new_cols if n in old_cols]
    if kept_old != kept_new:
        changes.append(_compatible(
            "column_order_changed", f"~ curated column order: {kept_old} -> {kept_new}",
            "column order only (an Iceberg metadata change)",
        ))
    return changes


def _standardized_changes(deployed: TopicSchema, source: TopicSchema) -> list[Change]:
    old, new = deployed.standardized, source.standardized
    changes: list[Change] = []
    if old.metadata != new.metadata:
        changes.append(_breaking(
            "metadata_mapping_changed", f"~ standardized.metadata: {old.metadata} -> "
            f"{new.metadata}",
            "changed metadata mapping: Standardized rows already written carry the old "
            "mapping (rebuild Standardized from RAW)",
        ))
    if old.required_metadata != new.required_metadata:
        changes.append(_breaking(
            "required_metadata_changed",
            f"~ standardized.required_metadata: {old.required_metadata} -> "
            f"{new.required_metadata}",
            "changed required metadata: which RAW rows are parse errors changes for the whole "
            "history (rebuild Standardized from RAW)",
        ))
    if old.drop_keys != new.drop_keys:
        changes.append(_breaking(
            "drop_keys_changed", f"~ standardized.drop_keys: {old.drop_keys} -> "
            f"{new.drop_keys}",
            "changed dropped keys: Standardized rows already written keep the old columns "
            "(rebuild Standardized from RAW)",
        ))
    return changes


def classify(deployed: TopicSchema | None, source: TopicSchema) -> list[Change]:
    """Every change from ``deployed`` to ``source``; empty when their content is equal.
    A topic never deployed has one compatible change: onboarding it."""
    if deployed is None:
        names = ", ".join(c.name for c in source.curated.columns)
        return [_compatible(
            "topic_onboarded",
            f"+ not deployed yet: source has {len(source.curated.columns)} curated columns "
            f"({names})",
            "first deployment: onboards the topic",
        )]
    if deployed.topic != source.topic:
        raise ValueError(f"cannot compare topic {deployed.topic!r} with {source.topic!r}")
    return _standardized_changes(deployed, source) + _curated_changes(deployed, source)


def affects_standardized(changes: Iterable[Change]) -> bool:
    """A breaking change of the Standardized schema: rebuilding Curated is not enough."""
    return any(c.breaking and c.kind in STANDARDIZED_KINDS for c in changes)


STANDARDIZED_KINDS = frozenset(
    {"metadata_mapping_changed", "required_metadata_changed", "drop_keys_changed"}
)


class BreakingChangeError(ValueError):
    """A deployment refused: per topic, the breaking changes that need ``--rebuild``."""

    def __init__(self, refused: dict[str, list[Change]]) -> None:
        self.refused = refused
        parts = []
        for topic, changes in refused.items():
            lines = "".join(f"\n  {c.what}: {c.reason}" for c in changes)
            parts.append(
                f"{topic}: {len(changes)} breaking change(s) refused; deploy it with "
                f"`leanops schema deploy {topic} --rebuild` to rebuild the topic from its "
                f"history under the new schema:{lines}"
            )
        super().__init__("\n".join(parts))
