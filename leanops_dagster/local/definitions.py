"""The laptop's Definitions object (``workspace.yaml``): the production definitions
(``leanops_dagster.definitions``) with the local stack's resources (``local.resources``): SQS
at the running stack's moto, the pre-RAW counts from its ledger (``Settings.ingestion_counts``).
"""

from __future__ import annotations

import dagster as dg

from leanops_dagster.definitions import build_definitions
from leanops_dagster.local.resources import local_resources
from leanops_dagster.settings import Settings, get_settings


def build_local_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or get_settings()
    return build_definitions(settings, resources=local_resources(settings))


defs = build_local_definitions()
