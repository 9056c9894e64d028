"""One boundary per library's internals: private pyiceberg, PySpark and Dagster names are used
in one module per library, each use documented with the version it was checked against.

An upgrade starts by reading that module: the version test below fails, naming it, until the
installed version has been checked and added to its ``CHECKED_VERSIONS``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "leanops_dagster"

#: library -> (distribution, the boundary module, the module path)
BOUNDARIES = {
    "pyiceberg": ("pyiceberg", "leanops_dagster.iceberg._pyiceberg_internals"),
    "pyspark": ("pyspark", "leanops_dagster.engines.spark._pyspark_internals"),
    "dagster": ("dagster", "leanops_dagster._dagster_internals"),
}

#: private attributes of library objects reached through an instance (not an import)
PRIVATE_ATTRIBUTES = {"_collect_as_arrow", "_jvm", "_jsc", "_jdf", "_get_parquet_writer_kwargs"}


def _path(module: str) -> Path:
    return REPO_ROOT / (module.replace(".", "/") + ".py")


@pytest.mark.parametrize("library", sorted(BOUNDARIES))
def test_installed_version_was_checked(library):
    distribution, module = BOUNDARIES[library]
    installed = importlib.metadata.version(distribution)
    checked = importlib.import_module(module).CHECKED_VERSIONS
    assert installed in checked, (
        f"{distribution} {installed} is installed, but {_path(module).relative_to(REPO_ROOT)} "
        f"was checked against {', '.join(checked)} only: read that file, re-check each private "
        f"use it lists against {installed} (or replace it by a public API), then add "
        f"{installed!r} to its CHECKED_VERSIONS."
    )


def _private_uses(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            root = node.module.split(".")[0]
            if root in BOUNDARIES and (
                any(part.startswith("_") for part in node.module.split("."))
                or any(alias.name.startswith("_") for alias in node.names)
            ):
                yield node.lineno, f"from {node.module} import ..."
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in BOUNDARIES and any(p.startswith("_") for p in parts):
                    yield node.lineno, f"import {alias.name}"
        elif isinstance(node, ast.Attribute) and node.attr in PRIVATE_ATTRIBUTES:
            yield node.lineno, f".{node.attr}"


def test_private_library_names_only_in_their_boundary_module():
    boundaries = {_path(module) for _, module in BOUNDARIES.values()}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in boundaries:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found += [f"{path.relative_to(REPO_ROOT)}:{line}: {what}"
                  for line, what in _private_uses(tree)]
    assert not found, (
        "library internals used outside their boundary module (move the use into "
        + ", ".join(str(_path(m).relative_to(REPO_ROOT)) for _, m in BOUNDARIES.values())
        + " with its reason):\n" + "\n".join(found)
    )


def test_no_table_rebuilt_from_metadata_outside_the_pyiceberg_boundary():
    """``Table(...)`` over rewritten metadata and ``FileIO`` subclasses are pyiceberg
    internals too: only ``iceberg/_pyiceberg_internals.py`` builds them."""
    boundary = _path(BOUNDARIES["pyiceberg"][1])
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == boundary:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        iceberg_table = any(
            isinstance(node, ast.ImportFrom) and node.module == "pyiceberg.table"
            and any(alias.name == "Table" for alias in node.names)
            for node in ast.walk(tree)
        )
        for node in ast.walk(tree):
            if iceberg_table and isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id == "Table":
                found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}: Table(...)")
            if isinstance(node, ast.ClassDef) and any(
                isinstance(base, ast.Name) and base.id in {"FileIO", "OutputFile", "InputFile"}
                for base in node.bases
            ):
                found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}: class {node.name}")
            if isinstance(node, ast.Attribute) and node.attr == "model_copy" \
                    and isinstance(node.value, ast.Attribute) and node.value.attr == "metadata":
                found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}: metadata.model_copy")
    assert not found, "pyiceberg internals outside iceberg/_pyiceberg_internals.py:\n" + "\n".join(
        found
    )
