"""The local stack's resources: what the local definitions put in place of the AWS ones.

- ``LocalSqsResource``: the runbook's SQS at the moto endpoint of the stack running under
  LEANOPS_HOME (``leanops demo`` or ``leanops inject`` start one; its state file names it);
- ``LedgerIngestionCounts``: the pre-RAW counts from the stack's ingestion ledger.

``local_resources(settings)`` chooses them from the settings (``environment`` and
``ingestion_counts``); ``local.definitions`` applies them.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from leanops_dagster.resources.ingestion import CloudWatchIngestionCounts, IngestionCountsResource
from leanops_dagster.resources.sqs import SqsResource
from leanops_dagster.settings import Settings


class LocalSqsResource(SqsResource):
    """``SqsResource`` at the running local stack's moto, unless ``endpoint_url`` is set."""

    home: str = Field(description="LEANOPS_HOME: use the local stack running under it")

    @classmethod
    def from_settings(cls, settings: Settings, **fields: object) -> LocalSqsResource:
        return super().from_settings(settings, home=str(settings.home), **fields)

    def endpoint(self) -> str | None:
        if self.endpoint_url:
            return self.endpoint_url
        from leanops_dagster.local.stack import running_stack

        state = running_stack(Settings(home=self.home))
        if state is None:
            raise RuntimeError(
                "no local stack is running under LEANOPS_HOME: start `leanops demo` or "
                "`leanops inject`, or set LEANOPS_AWS_ENDPOINT_URL"
            )
        return state["endpoint_url"]


class LedgerIngestionCounts(IngestionCountsResource):
    """Reads the local stack's ingestion ledger (``<home>/ingestion/ledger.jsonl``)."""

    home: str = Field(description="LEANOPS_HOME of the local stack")

    def sent(self) -> dict[str, int]:
        from leanops_dagster.local import ledger

        return ledger.sent_counts(Path(self.home))

    def firehose_errors(self) -> dict[str, int]:
        from leanops_dagster.local import ledger

        return ledger.firehose_error_counts(Path(self.home))

    def describe(self) -> str:
        from leanops_dagster.local import ledger

        return f"the local stack's ingestion ledger ({ledger.ledger_path(Path(self.home))})"


def counts_source(settings: Settings) -> IngestionCountsResource:
    """The pre-RAW count source ``settings.ingestion_counts`` names."""
    if settings.ingestion_counts == "ledger":
        return LedgerIngestionCounts(home=str(settings.home))
    return CloudWatchIngestionCounts.from_settings(settings)


def sqs_resource(settings: Settings) -> SqsResource:
    """The runbook's SQS: the running local stack's in the local environment."""
    if settings.environment == "local":
        return LocalSqsResource.from_settings(settings)
    return SqsResource.from_settings(settings)


def local_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The resources the local definitions put over the production ones."""
    return {"sqs": sqs_resource(settings), "ingestion_counts": counts_source(settings)}
