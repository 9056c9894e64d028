"""Read a topic's schema files (``<dir>/<topic>/standardized.json`` + ``curated.json``).

Every problem is a ``SchemaFileError`` naming the file and the field (pydantic's location,
dotted: ``columns.2.type``), so ``leanops schema deploy`` can print one clear line per problem.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from leanops_dagster.constants import TOPIC_PATTERN
from leanops_dagster.schemas.models import CuratedSchema, StandardizedSchema, TopicSchema

STANDARDIZED_FILE = "standardized.json"
CURATED_FILE = "curated.json"


class SchemaFileError(ValueError):
    """A schema file that is missing, not JSON or invalid; ``problems`` = (field, message)."""

    def __init__(self, path: str | Path, problems: list[tuple[str, str]]) -> None:
        self.path = str(path)
        self.problems = problems
        lines = [f"{self.path}: {field or '<root>'}: {message}" for field, message in problems]
        super().__init__("\n".join(lines))


class SchemaNotFoundError(LookupError):
    """No schema for the topic (in the source directory or the deployed store)."""


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SchemaFileError(path, [("", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaFileError(path, [("", f"cannot read: {exc}")]) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaFileError(
            path, [("", f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")]
        ) from None


def _validate(model, data: Any, path: Path):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SchemaFileError(
            path, [(_location(err["loc"]), err["msg"]) for err in exc.errors()]
        ) from None


def source_topics(directory: str | Path) -> list[str]:
    """Topics with a schema directory (a ``curated.json`` inside), sorted."""
    root = Path(directory)
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir()
        if p.is_dir() and TOPIC_PATTERN.fullmatch(p.name) and (p / CURATED_FILE).is_file()
    )


def load_topic_dir(directory: str | Path, topic: str) -> TopicSchema:
    """Load and validate ``<directory>/<topic>/``; ``standardized.json`` may be omitted
    (defaults: the ``_metadata`` envelope of docs/contracts.md)."""
    folder = Path(directory) / topic
    if not (folder / CURATED_FILE).is_file():
        raise SchemaNotFoundError(f"no schema for topic {topic!r}: {folder / CURATED_FILE} "
                                  "does not exist")
    std_path = folder / STANDARDIZED_FILE
    standardized = (
        _validate(StandardizedSchema, _read_json(std_path), std_path)
        if std_path.is_file()
        else StandardizedSchema()
    )
    cur_path = folder / CURATED_FILE
    curated = _validate(CuratedSchema, _read_json(cur_path), cur_path)
    try:
        return TopicSchema(topic=topic, standardized=standardized, curated=curated)
    except ValidationError as exc:
        raise SchemaFileError(
            folder, [(_location(err["loc"]), err["msg"]) for err in exc.errors()]
        ) from None
