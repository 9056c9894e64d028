"""Two code locations, one definitions builder: the laptop's workspace loads the local
definitions (the local stack's SQS and ledger), the image's the production ones (CloudWatch)."""

from __future__ import annotations

import importlib

import dagster as dg
import pytest
import yaml

from leanops_dagster.local.resources import LedgerIngestionCounts, LocalSqsResource
from leanops_dagster.resources.ingestion import CloudWatchIngestionCounts
from leanops_dagster.resources.sqs import SqsResource
from leanops_dagster.settings import REPO_ROOT


def _module_of(workspace: str) -> str:
    (location,) = yaml.safe_load((REPO_ROOT / workspace).read_text())["load_from"]
    return location["python_module"]["module_name"]


@pytest.mark.parametrize(("workspace", "module", "counts", "sqs"), [
    ("workspace.yaml", "leanops_dagster.local.definitions", LedgerIngestionCounts,
     LocalSqsResource),
    ("infra/dagster/workspace.yaml", "leanops_dagster.definitions", CloudWatchIngestionCounts,
     SqsResource),
])
def test_each_workspace_loads_its_definitions(settings, workspace, module, counts, sqs):
    assert _module_of(workspace) == module
    defs = importlib.import_module(module).defs
    dg.Definitions.validate_loadable(defs)
    assert type(defs.resources["ingestion_counts"]) is counts
    assert type(defs.resources["sqs"]) is sqs
