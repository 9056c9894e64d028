"""The ``leanops`` command line: one click group, commands registered from per-concern modules."""

from __future__ import annotations

import importlib

import click

# Each module exposes ``register(group)``; one module per concern keeps this file stable.
_COMMAND_MODULES = ("ingest", "schema", "pipeline")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Lean-Ops on Dagster: a fail-aware event pipeline on Apache Iceberg.

    All local state lives under LEANOPS_HOME (default ./.leanops).
    """


for _name in _COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as exc:  # a concern not yet in this checkout
        if exc.name != f"{__name__}.{_name}":
            raise
        continue
    _module.register(main)
