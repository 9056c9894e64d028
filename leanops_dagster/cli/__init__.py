"""The ``leanops`` command line: one click group, commands registered from per-concern modules."""

from __future__ import annotations

import click

from leanops_dagster.cli import ingest, ops, pipeline, schema


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Lean-Ops on Dagster: a fail-aware event pipeline on Apache Iceberg.

    All local state lives under LEANOPS_HOME (default ./.leanops).
    """


# Each module owns its commands (ingestion, schemas, the Dagster side, the runbook).
for _module in (ingest, schema, pipeline, ops):
    _module.register(main)
