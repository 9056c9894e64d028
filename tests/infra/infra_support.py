"""Helpers and fixtures of the static Terraform tests: parse HCL, render simple interpolations.

No Terraform provider can be downloaded here, so these tests read the configuration itself.
Parsing uses the ``hcl2`` module that checkov ships (bc-python-hcl2, a python-hcl2 fork): one
parser for both, and the same one checkov's own results rest on.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TF_ROOT = REPO_ROOT / "infra" / "terraform"
MODULES = TF_ROOT / "modules"
ENVIRONMENTS = TF_ROOT / "environments"

_INTERPOLATION = re.compile(r"\$\{([^{}]+)\}")
_REPLACE_CALL = re.compile(r'^replace\(\s*([\w.]+)\s*,\s*"([^"]*)"\s*,\s*"([^"]*)"\s*\)$')


def tf_files(root: Path = TF_ROOT) -> list[Path]:
    return sorted(p for p in root.rglob("*.tf") if ".terraform" not in p.parts)


@cache
def parse(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return hcl2.load(handle)


def module_blocks(module_dir: Path, kind: str) -> dict[str, Any]:
    """All ``variable`` / ``locals`` / ``output`` / ``module`` blocks of a module, merged."""
    merged: dict[str, Any] = {}
    for path in sorted(module_dir.glob("*.tf")):
        for block in parse(path).get(kind, []):
            merged.update({k: _clean(v) for k, v in block.items() if not k.startswith("__")})
    return merged


def _clean(body: Any) -> Any:
    """Drop the parser's ``__start_line__`` / ``__end_line__`` keys of a block body."""
    if isinstance(body, dict):
        return {k: v for k, v in body.items() if not k.startswith("__")}
    return body


def module_text(module_dir: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(module_dir.glob("*.tf")))


def first(value: Any) -> Any:
    """bc-python-hcl2 wraps attribute values in one-element lists."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def tfvars(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return {k: first(v) for k, v in hcl2.load(handle).items() if not k.startswith("__")}


def render(template: str, context: dict[str, str]) -> str:
    """Render a string whose interpolations are plain references (or ``replace(ref, a, b)``).

    Anything else fails loudly: the names Python and Terraform share must stay this simple.
    """

    def substitute(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        if expression in context:
            return context[expression]
        call = _REPLACE_CALL.match(expression)
        if call and call.group(1) in context:
            return context[call.group(1)].replace(call.group(2), call.group(3))
        raise KeyError(f"cannot render ${{{expression}}} (known: {sorted(context)})")

    previous = None
    while previous != template:
        previous, template = template, _INTERPOLATION.sub(substitute, template)
    return template


@pytest.fixture(scope="session")
def dev_vars() -> dict[str, Any]:
    return tfvars(ENVIRONMENTS / "dev.tfvars")


@pytest.fixture(scope="session")
def root_context(dev_vars: dict[str, Any]) -> dict[str, str]:
    """``var.environment`` and the root locals that names are built from, rendered for dev."""
    context = {"var.environment": dev_vars["environment"]}
    root_locals = module_blocks(TF_ROOT, "locals")
    for name in ("project", "name_prefix", "glue_database_prefix", "namespace_prefix"):
        context[f"local.{name}"] = render(first(root_locals[name]), context)
    return context
