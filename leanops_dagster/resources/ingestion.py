"""Ingestion counts for the pre-RAW balance: messages sent and Firehose error records per topic.

Locally the local stack keeps an ingestion ledger under LEANOPS_HOME; in AWS the same numbers
come from CloudWatch (SQS ``NumberOfMessagesSent`` per queue and the Firehose error output).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from leanops_dagster.settings import Settings


class IngestionCountsResource(dg.ConfigurableResource):
    """Reads the local stack's ingestion ledger (``<home>/ingestion``)."""

    home: str = Field(description="LEANOPS_HOME of the local stack")

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestionCountsResource:
        return cls(home=str(settings.home))

    def sent(self) -> dict[str, int]:
        from leanops_dagster.local import ledger

        return ledger.sent_counts(Path(self.home))

    def firehose_errors(self) -> dict[str, int]:
        from leanops_dagster.local import ledger

        return ledger.firehose_error_counts(Path(self.home))
