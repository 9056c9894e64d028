"""Pipeline settings the assets need besides the catalog and the schema registry."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from leanops_dagster.settings import Settings


class PipelineConfigResource(dg.ConfigurableResource):
    """Masking key, freshness target and engine (from Settings; the key via an env var in
    AWS)."""

    pii_hash_key: str = Field(description="HMAC key for PII masking in Curated")
    freshness_minutes: int = Field(default=60, description="Curated may lag RAW this much")
    engine: str = Field(
        default="arrow",
        description="engine of the Standardized and Curated runs (LEANOPS_ENGINE: arrow or "
        "spark); a topic's curated schema may override it",
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> PipelineConfigResource:
        return cls(
            pii_hash_key=settings.pii_hash_key.get_secret_value(),
            freshness_minutes=settings.freshness_minutes,
            engine=settings.engine,
        )

    def pii_key_bytes(self) -> bytes:
        return self.pii_hash_key.encode()
