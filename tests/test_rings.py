"""The rings: dependencies point inward, and this test is where the map lives.

- **core**: the rules and the Iceberg mechanics (constants, settings, schemas, transforms,
  iceberg, pipeline, the engines: the Spark engine's job-side modules). It runs
  where neither Dagster nor moto is installed (a Glue or EMR worker): it imports nothing of
  Dagster (``dagster_pipes`` excepted: the Spark job reports through it), moto, click, rich or
  the rings outside it.
- **dagster**: definitions, assets, checks, sensors, schedules, jobs, resources, partitions, the
  instance, the Spark launcher. It imports only the core (and dagster, dagster-aws, boto3...),
  never moto (the production image has none) nor the local ring.
- **local**: the local stack (moto, pollers, Firehose stand-in, ledger), the injector, the
  demo and the accountability report (all in ``local/``) and the CLI (``cli/``); it may import
  everything, but not ``tools`` (the wheel does not ship it: ``tools/data_injector/main.py``
  is a thin entry over ``leanops_dagster.local``).
- **lambdas**: ``ingestion_lambdas`` deploys alone (boto3 + powertools), so it imports nothing
  of the rest.

Every module must be in exactly one ring (the longest matching prefix of ``RINGS`` wins). Two
checks per ring: every import statement of its modules (lazy ones included) is read from the
source, and every module is imported in a fresh interpreter where the ring's absent packages
cannot be imported at all, so an indirect dependency fails too.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("leanops_dagster", "ingestion_lambdas")

CORE, DAGSTER, LOCAL, LAMBDAS = "core", "dagster", "local", "lambdas"

#: module prefix -> ring; the longest matching prefix decides.
RINGS: dict[str, str] = {
    "leanops_dagster": CORE,
    "leanops_dagster.constants": CORE,
    "leanops_dagster.engines": CORE,
    "leanops_dagster.iceberg": CORE,
    "leanops_dagster.pipeline": CORE,
    "leanops_dagster.schemas": CORE,
    "leanops_dagster.settings": CORE,
    "leanops_dagster.transforms": CORE,
    "leanops_dagster._dagster_internals": DAGSTER,
    "leanops_dagster.assets": DAGSTER,
    "leanops_dagster.checks": DAGSTER,
    "leanops_dagster.definitions": DAGSTER,
    "leanops_dagster.instance": DAGSTER,
    "leanops_dagster.jobs": DAGSTER,
    "leanops_dagster.lanes": DAGSTER,
    "leanops_dagster.partitions": DAGSTER,
    "leanops_dagster.resources": DAGSTER,
    "leanops_dagster.schedules": DAGSTER,
    "leanops_dagster.sensors": DAGSTER,
    "leanops_dagster.cli": LOCAL,
    "leanops_dagster.local": LOCAL,
    "ingestion_lambdas": LAMBDAS,
}

#: Packages that are not installed where the ring runs: unimportable in its interpreter, for
#: third-party code too. (``dagster`` also covers dagster_aws, dagster_pyspark, ...)
_DAGSTER_FAMILY = (
    "dagster",
    "dagster_aws",
    "dagster_postgres",
    "dagster_pyspark",
    "dagster_webserver",
    "dagster_graphql",
)
ABSENT: dict[str, tuple[str, ...]] = {
    CORE: (*_DAGSTER_FAMILY, "moto", "tools"),
    DAGSTER: ("moto", "tools"),
    LOCAL: ("tools",),
    LAMBDAS: (*_DAGSTER_FAMILY, "moto", "tools", "leanops_dagster", "click", "rich"),
}


def _ring_modules(ring: str) -> tuple[str, ...]:
    return tuple(prefix for prefix, r in RINGS.items() if r == ring and "." in prefix)


#: What the ring's own modules must not import (third-party code may: dagster imports click).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    CORE: (*ABSENT[CORE], "click", "rich", *_ring_modules(DAGSTER), *_ring_modules(LOCAL)),
    DAGSTER: (*ABSENT[DAGSTER], "click", "rich", *_ring_modules(LOCAL)),
    LOCAL: ABSENT[LOCAL],
    LAMBDAS: ABSENT[LAMBDAS],
}


def _matches(name: str, prefixes: tuple[str, ...]) -> str | None:
    return next((p for p in prefixes if name == p or name.startswith(p + ".")), None)


def ring_of(module: str) -> str | None:
    best = max(
        (p for p in RINGS if module == p or module.startswith(p + ".")), key=len, default=None
    )
    return RINGS[best] if best else None


def all_modules() -> list[tuple[str, Path]]:
    found = []
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found.append((".".join(parts), path))
    return found


def _imported_names(tree: ast.AST, module: str, is_package: bool):
    """(line, absolute module name) of every import statement, lazy ones included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            yield node.lineno, base
            for alias in node.names:  # ``from leanops_dagster import local``
                yield node.lineno, f"{base}.{alias.name}"


def test_every_module_is_in_a_ring():
    unmapped = [module for module, _ in all_modules() if ring_of(module) is None]
    assert not unmapped, f"modules in no ring (add them to RINGS): {unmapped}"


@pytest.mark.parametrize("ring", [CORE, DAGSTER, LOCAL, LAMBDAS])
def test_no_import_statement_crosses_the_ring(ring):
    violations: dict[tuple[str, int], str] = {}
    for module, path in all_modules():
        if ring_of(module) != ring:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in _imported_names(tree, module, path.name == "__init__.py"):
            if _matches(name, FORBIDDEN[ring]) and not _matches(name, (module,)):
                violations.setdefault((module, line), name)
    assert not violations, f"{ring} ring imports outside it:\n" + "\n".join(
        f"{module} (line {line}) -> {name}" for (module, line), name in sorted(violations.items())
    )


_HARNESS = r"""
import importlib, json, sys, traceback

absent, forbidden, project, modules = json.loads(sys.argv[1])


class RingViolation(ImportError):
    pass


def _match(name, prefixes):
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _importer():
    frame = sys._getframe(2)
    while frame is not None and (frame.f_code.co_filename.startswith("<frozen")
                                 or frame.f_globals.get("__name__") == __name__):
        frame = frame.f_back
    return frame


class Blocker:
    def find_spec(self, name, path=None, target=None):
        if not _match(name, absent) and not _match(name, forbidden):
            return None
        frame = _importer()
        importer = frame.f_globals.get("__name__", "?") if frame else "?"
        if _match(name, absent):
            raise RingViolation(f"{importer} -> {name}: not installed where this ring runs")
        if _match(importer, project) and not _match(name, (importer,)):
            raise RingViolation(f"{importer} -> {name}: outside this ring")
        return None


sys.meta_path.insert(0, Blocker())
failures = {}
for module in modules:
    try:
        importlib.import_module(module)
    except Exception as exc:
        where = [f"{f.filename}:{f.lineno}" for f in traceback.extract_tb(exc.__traceback__)
                 if not f.filename.startswith("<frozen") and f.filename != "<string>"]
        failures[module] = f"{type(exc).__name__}: {exc} (at {where[-1] if where else '?'})"
print(json.dumps(failures))
"""


@pytest.mark.parametrize("ring", [CORE, DAGSTER, LOCAL, LAMBDAS])
def test_each_ring_imports_in_a_fresh_interpreter_without_its_absent_packages(ring):
    modules = [module for module, _ in all_modules() if ring_of(module) == ring]
    assert modules
    argument = json.dumps([ABSENT[ring], FORBIDDEN[ring], PACKAGES, modules])
    done = subprocess.run(
        [sys.executable, "-c", _HARNESS, argument],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    failures = json.loads(done.stdout.strip().splitlines()[-1])
    assert not failures, f"{ring} ring modules that do not import on their own:\n" + "\n".join(
        f"{module} -> {why}" for module, why in failures.items()
    )


# --- inside the core: an order of layers, no cycles, settings handed in ----------------------
#: the core's units (a package or a top-level module of ``leanops_dagster``) by layer, lowest
#: first: a unit imports only units of its own layer or below.
CORE_LAYERS: tuple[tuple[str, ...], ...] = (
    ("constants", "settings"),
    ("schemas",),
    ("transforms",),
    ("iceberg",),
    ("pipeline",),
    ("engines",),
)

#: the one core module that reads the settings itself: the Spark job is a process of its own
SETTINGS_READERS = {
    "leanops_dagster.engines.spark.job": "the job's entry point (a Pipes or spark-submit process)",
}


def _core_unit(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != "leanops_dagster" or len(parts) < 2:
        return None
    unit = parts[1]
    return unit if any(unit in layer for layer in CORE_LAYERS) else None


def _layer_of(unit: str) -> int:
    return next(i for i, layer in enumerate(CORE_LAYERS) if unit in layer)


def _core_imports() -> list[tuple[str, int, str]]:
    """(importer module, line, imported unit) of every import between two core units."""
    found = []
    for module, path in all_modules():
        unit = _core_unit(module)
        if unit is None or ring_of(module) != CORE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in _imported_names(tree, module, path.name == "__init__.py"):
            target = _core_unit(name)
            if target is not None and target != unit:
                found.append((module, line, target))
    return found


def test_every_core_unit_has_a_layer():
    units = {_core_unit(module) or module.split(".")[1] for module, _ in all_modules()
             if ring_of(module) == CORE and module.count(".") >= 1}
    layered = {unit for layer in CORE_LAYERS for unit in layer}
    assert units <= layered, f"core units in no layer of CORE_LAYERS: {sorted(units - layered)}"


def test_the_core_imports_downward_only():
    """constants -> schemas -> transforms -> iceberg -> pipeline -> engines."""
    violations = sorted(
        f"{module} (line {line}) -> {target}"
        for module, line, target in _core_imports()
        if _layer_of(target) > _layer_of(_core_unit(module) or "")
    )
    assert not violations, "the core imports upward (see CORE_LAYERS):\n" + "\n".join(violations)


def test_no_cycles_between_core_units():
    edges: dict[str, set[str]] = {}
    for module, _, target in _core_imports():
        edges.setdefault(_core_unit(module) or "", set()).add(target)
    cycles = []

    def visit(unit: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(unit, ())):
            if nxt in path:
                cycles.append(" -> ".join([*path[path.index(nxt):], nxt]))
            elif len(path) < len(edges) + 1:
                visit(nxt, [*path, nxt])

    for start in sorted(edges):
        visit(start, [start])
    assert not cycles, "cycles between core units:\n" + "\n".join(sorted(set(cycles)))


def test_the_layer_checks_see_the_core_imports():
    """The two checks above hold with no exception listed, so they must be seen to find
    imports: validate casts with the schemas' rules, the Spark engine runs the pipeline's."""
    imports = {(module, target) for module, _, target in _core_imports()}
    assert ("leanops_dagster.transforms.validate", "schemas") in imports
    assert any(module.startswith("leanops_dagster.engines.spark.") and target == "pipeline"
               for module, target in imports)


def test_the_core_is_handed_its_settings():
    """Only the modules of SETTINGS_READERS call ``get_settings()``; the rest of the core
    receives a ``Settings`` (or plain values) from the ring that runs it."""
    readers = set()
    for module, path in all_modules():
        if ring_of(module) != CORE or module == "leanops_dagster.settings":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        if any(isinstance(node, ast.Call) and getattr(node.func, "id", None) == "get_settings"
               for node in ast.walk(tree)):
            readers.add(module)
    assert readers <= set(SETTINGS_READERS), (
        f"core modules reading the settings themselves: {sorted(readers - set(SETTINGS_READERS))}"
    )
    assert set(SETTINGS_READERS) <= readers, (
        f"no longer read the settings (remove from SETTINGS_READERS): "
        f"{sorted(set(SETTINGS_READERS) - readers)}"
    )
