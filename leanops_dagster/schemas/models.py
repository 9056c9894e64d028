"""Topic schemas (documented in docs/schemas.md), validated with pydantic.

A topic has two schema files in ``schemas/<topic>/``:

* ``standardized.json`` — how RAW payloads become Standardized rows: which flattened
  ``_metadata`` keys map to which metadata columns, which of them are required, and which keys
  RAW columns already carry (dropped from Standardized).
* ``curated.json`` — the typed, strict Curated table: columns with type, source column, CDE
  flag, rules, default and PII flag; the LIFO sequence column(s); the CDE error-rate threshold.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from leanops_dagster.constants import (
    DEFAULT_SEQUENCE,
    ICEBERG_METADATA_COLUMNS,
    IDEMPOTENCY_KEY,
    INGESTION_TS,
    LINEAGE_COLUMNS,
    MESSAGE_ID,
    METADATA_COLUMNS,
    PUBLISH_TIME,
    RAW_COLUMNS,
    TOPIC_NAME,
    validate_topic,
)
from leanops_dagster.schemas.cast import cast_literal
from leanops_dagster.schemas.types import ORDERABLE_TYPES, arrow_type, parse_type

RESERVED_COLUMNS = frozenset(
    RAW_COLUMNS + METADATA_COLUMNS + LINEAGE_COLUMNS + ICEBERG_METADATA_COLUMNS
)

SAFE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
MAX_NAME_LENGTH = 128

def _safe_name(name: str, what: str) -> str:
    if not SAFE_NAME.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"{what} {name!r} must match {SAFE_NAME.pattern} and be at most "
            f"{MAX_NAME_LENGTH} characters"
        )
    return name


Scalar = str | int | float | bool


class Rules(BaseModel):
    """Checks on a column's value (null values are checked only by ``cde``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    regex: str | None = Field(
        default=None, description="RE2 pattern the whole source string must match"
    )
    min: Scalar | None = Field(default=None, description="inclusive lower bound (typed)")
    max: Scalar | None = Field(default=None, description="inclusive upper bound (typed)")
    allowed: list[Scalar] | None = Field(
        default=None, min_length=1, description="the value must be one of these (typed)"
    )
    min_length: int | None = Field(default=None, ge=0, description="string length lower bound")
    max_length: int | None = Field(default=None, ge=1, description="string length upper bound")

    @field_validator("regex")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return None
        import pyarrow.compute as pc

        try:
            pc.match_substring_regex(pa.array([""]), pattern=pattern)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ValueError(f"regex does not compile (RE2 syntax): {exc}") from None
        return pattern

    def is_empty(self) -> bool:
        return all(v is None for v in self.model_dump().values())


class CuratedColumn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Curated column name")
    type: str = Field(description="int, long, double, decimal(p,s), boolean, timestamp, date, "
                                  "string")
    source: str | None = Field(default=None, description="Standardized column (default: name)")
    cde: bool = Field(default=False, description="critical data element: null/invalid -> error")
    pii: bool = Field(default=False, description="stored as keyed HMAC-SHA256 hex")
    default: Scalar | None = Field(default=None, description="value for null (non-CDE only)")
    rules: Rules = Field(default_factory=Rules)
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        _safe_name(name, "column name")
        if name in RESERVED_COLUMNS:
            raise ValueError(
                f"column name {name!r} is reserved for a metadata/lineage column or by "
                "Iceberg for its metadata columns; metadata columns are always present in "
                "Curated"
            )
        return name

    @field_validator("source")
    @classmethod
    def _source(cls, source: str | None) -> str | None:
        return None if source is None else _safe_name(source, "source column")

    @field_validator("type")
    @classmethod
    def _type(cls, spec: str) -> str:
        kind, precision, scale = parse_type(spec)
        return f"decimal({precision},{scale})" if kind == "decimal" else kind

    @model_validator(mode="after")
    def _consistent(self) -> CuratedColumn:
        kind = self.kind
        if self.cde and self.default is not None:
            raise ValueError("default is not allowed on a cde column (a null CDE is an error)")
        if self.default is not None:
            _check_literal(self.default, self.type, "default")
        rules = self.rules
        if kind == "boolean" and (rules.min is not None or rules.max is not None):
            raise ValueError("min/max rules do not apply to boolean columns")
        for label in ("min", "max"):
            value = getattr(rules, label)
            if value is not None:
                _check_literal(value, self.type, f"rules.{label}")
        for i, value in enumerate(rules.allowed or ()):
            _check_literal(value, self.type, f"rules.allowed.{i}")
        if (rules.min_length is not None or rules.max_length is not None) and kind != "string":
            raise ValueError("min_length/max_length rules apply to string columns only")
        return self

    @property
    def kind(self) -> str:
        return parse_type(self.type)[0]

    @property
    def source_column(self) -> str:
        return self.source or self.name

    @property
    def arrow_type(self) -> pa.DataType:
        return arrow_type(self.type)

    @property
    def output_type(self) -> pa.DataType:
        """The stored type: a PII column holds the hex HMAC, so it is a string."""
        return pa.string() if self.pii else self.arrow_type


def _check_literal(value: Scalar, spec: str, where: str) -> None:
    """``value`` must be castable to ``spec`` with the Curated cast rules."""
    try:
        cast_literal(value, spec)
    except ValueError as exc:
        raise ValueError(f"{where} {value!r} is not a valid {spec}: {exc}") from None


class StandardizedSchema(BaseModel):
    """How RAW payloads become Standardized rows (flattened, every payload column STRING)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metadata: dict[str, str] = Field(
        default_factory=lambda: {"_metadata_idempotencykeyresource": IDEMPOTENCY_KEY},
        description="flattened payload key -> metadata column",
    )
    required_metadata: list[str] = Field(
        default_factory=lambda: [IDEMPOTENCY_KEY],
        description="metadata columns a row must have (else a parse error)",
    )
    drop_keys: list[str] = Field(
        default_factory=lambda: ["_metadata_messageid", "_metadata_publishtime"],
        description="flattened keys RAW columns already carry (message_id, publish_time)",
    )

    @field_validator("metadata")
    @classmethod
    def _mapping(cls, mapping: dict[str, str]) -> dict[str, str]:
        targets = list(mapping.values())
        for source, target in mapping.items():
            _safe_name(source, "metadata key")
            _safe_name(target, "metadata column")
            if target in RAW_COLUMNS or target in LINEAGE_COLUMNS:
                raise ValueError(
                    f"metadata column {target!r} would overwrite a RAW/lineage column; RAW "
                    "already carries message_id and publish_time (list their keys in drop_keys)"
                )
        dupes = sorted({t for t in targets if targets.count(t) > 1})
        if dupes:
            raise ValueError(f"metadata columns mapped more than once: {dupes}")
        if IDEMPOTENCY_KEY not in targets:
            raise ValueError(f"one metadata key must map to {IDEMPOTENCY_KEY!r} (LIFO key)")
        return mapping

    @field_validator("drop_keys")
    @classmethod
    def _drop_keys(cls, keys: list[str]) -> list[str]:
        for key in keys:
            _safe_name(key, "drop key")
        return keys

    @model_validator(mode="after")
    def _required_are_mapped(self) -> StandardizedSchema:
        targets = set(self.metadata.values())
        for name in self.required_metadata:
            if name not in targets:
                raise ValueError(
                    f"required_metadata {name!r} is not a metadata column (one of "
                    f"{sorted(targets)})"
                )
        clash = sorted(set(self.drop_keys) & set(self.metadata))
        if clash:
            raise ValueError(f"keys both mapped and dropped: {clash}")
        return self

    @property
    def metadata_targets(self) -> list[str]:
        return list(self.metadata.values())


class CuratedSchema(BaseModel):
    """The typed Curated table of a topic (strict: only these columns)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: list[CuratedColumn] = Field(min_length=1)
    sequence: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SEQUENCE),
        min_length=1,
        description="LIFO order: newest by these columns wins (then ingestion_ts, message_id)",
    )
    cde_error_rate_threshold: float = Field(
        default=0.05, ge=0.0, le=1.0, description="share of CDE-failing rows the check allows"
    )
    engine: Literal["arrow", "spark"] | None = Field(
        default=None,
        description="engine of this topic's Standardized and Curated runs (engines/choice.py); "
        "unset: LEANOPS_ENGINE. Both engines keep the same tables and watermarks.",
    )
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> CuratedSchema:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate column names: {dupes}")
        by_name = {c.name: c for c in self.columns}
        for name in self.sequence:
            if name in (PUBLISH_TIME, INGESTION_TS):
                continue
            column = by_name.get(name)
            if column is None:
                raise ValueError(
                    f"sequence column {name!r} is neither publish_time, ingestion_ts nor a "
                    "curated column"
                )
            if column.kind not in ORDERABLE_TYPES or column.pii:
                raise ValueError(f"sequence column {name!r} must be orderable and not pii")
            if not column.cde:
                raise ValueError(f"sequence column {name!r} must be a cde (never null)")
        return self

    def column(self, name: str) -> CuratedColumn:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def pii_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.pii]

    @property
    def source_columns(self) -> set[str]:
        return {c.source_column for c in self.columns}

    def arrow_schema(self) -> pa.Schema:
        """Curated output columns: metadata first, then the declared columns in order."""
        meta = [
            pa.field(MESSAGE_ID, pa.string()),
            pa.field(IDEMPOTENCY_KEY, pa.string()),
            pa.field(TOPIC_NAME, pa.string()),
            pa.field(PUBLISH_TIME, pa.timestamp("us", tz="UTC")),
            pa.field(INGESTION_TS, pa.timestamp("us", tz="UTC")),
        ]
        return pa.schema(meta + [pa.field(c.name, c.output_type) for c in self.columns])


class TopicSchema(BaseModel):
    """Both schemas of one topic; ``version`` is the content hash set by the registry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str
    standardized: StandardizedSchema = Field(default_factory=StandardizedSchema)
    curated: CuratedSchema
    version: str | None = Field(default=None, description="content hash (set on deploy)")
    deployed_at: str | None = Field(default=None, description="ISO-8601 UTC (set on deploy)")

    @field_validator("topic")
    @classmethod
    def _topic(cls, topic: str) -> str:
        return validate_topic(topic)

    def content(self) -> dict[str, Any]:
        """The hashed content: topic and both schemas (not version / deployed_at)."""
        return self.model_dump(mode="json", include={"topic", "standardized", "curated"})


SchemaKind = Literal["standardized", "curated"]
