"""Human-readable differences between a deployed and a source topic schema."""

from __future__ import annotations

from typing import Any

from leanops_dagster.schemas.models import TopicSchema


def _fmt(value: Any) -> str:
    return repr(value) if not isinstance(value, str) else value


def _column_summary(column: dict[str, Any]) -> str:
    flags = [column["type"]]
    flags += [flag for flag in ("cde", "pii") if column.get(flag)]
    if column.get("source"):
        flags.append(f"source={column['source']}")
    return ", ".join(flags)


def _dict_changes(prefix: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    lines = []
    for key in sorted(set(old) | set(new)):
        if key not in new:
            lines.append(f"- {prefix}{key}: {_fmt(old[key])}")
        elif key not in old:
            lines.append(f"+ {prefix}{key}: {_fmt(new[key])}")
        elif old[key] != new[key]:
            lines.append(f"~ {prefix}{key}: {_fmt(old[key])} -> {_fmt(new[key])}")
    return lines


def diff_schemas(deployed: TopicSchema | None, source: TopicSchema) -> list[str]:
    """Lines ``+`` added / ``-`` removed / ``~`` changed, going from deployed to source."""
    if deployed is None:
        columns = ", ".join(c.name for c in source.curated.columns)
        return [f"+ not deployed yet: source has {len(source.curated.columns)} curated "
                f"columns ({columns})"]
    old, new = deployed.content(), source.content()
    lines = _dict_changes("standardized.", old["standardized"], new["standardized"])
    old_cur = {k: v for k, v in old["curated"].items() if k != "columns"}
    new_cur = {k: v for k, v in new["curated"].items() if k != "columns"}
    lines += _dict_changes("curated.", old_cur, new_cur)
    old_cols = {c["name"]: c for c in old["curated"]["columns"]}
    new_cols = {c["name"]: c for c in new["curated"]["columns"]}
    for name in old_cols:
        if name not in new_cols:
            lines.append(f"- curated column {name} ({_column_summary(old_cols[name])})")
    for name in new_cols:
        if name not in old_cols:
            lines.append(f"+ curated column {name} ({_column_summary(new_cols[name])})")
        elif old_cols[name] != new_cols[name]:
            lines += _dict_changes(f"curated column {name}: ", old_cols[name], new_cols[name])
    old_order = [n for n in old_cols if n in new_cols]
    new_order = [n for n in new_cols if n in old_cols]
    if old_order != new_order:
        lines.append(f"~ curated column order: {old_order} -> {new_order}")
    return lines
