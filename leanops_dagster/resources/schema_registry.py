"""Dagster resource around ``SchemaRegistry`` (thin: configuration + delegation)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from leanops_dagster.schemas.models import TopicSchema
from leanops_dagster.schemas.registry import SchemaRegistry
from leanops_dagster.settings import Settings


class SchemaRegistryResource(dg.ConfigurableResource):
    """Deployed topic schemas (local directory or S3 prefix) and the repository's sources."""

    source_dir: str = Field(description="directory of schema files (schemas/<topic>/*.json)")
    deployed_uri: str = Field(description="deployed store: a directory or s3://bucket/prefix")
    aws_region: str | None = Field(default=None, description="S3 store region")
    aws_endpoint_url: str | None = Field(default=None, description="S3 endpoint (moto locally)")

    @classmethod
    def from_settings(cls, settings: Settings) -> SchemaRegistryResource:
        registry = SchemaRegistry.from_settings(settings)
        return cls(
            source_dir=str(registry.source_dir),
            deployed_uri=registry.deployed_uri,
            aws_region=settings.aws_region,
            aws_endpoint_url=settings.aws_endpoint_url,
        )

    def registry(self) -> SchemaRegistry:
        return SchemaRegistry(
            self.source_dir,
            self.deployed_uri,
            aws_region=self.aws_region,
            aws_endpoint_url=self.aws_endpoint_url,
        )

    def load(self, topic: str) -> TopicSchema:
        """The deployed schema of ``topic`` (``SchemaNotFoundError`` if not deployed)."""
        return self.registry().load(topic)

    def deployed_versions(self) -> dict[str, str]:
        """Topic -> deployed content version (the schema gate's cursor values)."""
        return self.registry().deployed_versions()

    def deployed_stamps(self) -> dict[str, str]:
        """Topic -> stamp of its deployed document, from one listing (nothing read)."""
        return self.registry().deployed_stamps()

    def deployed_version(self, topic: str) -> str | None:
        """The deployed version of ``topic`` (None: not deployed, or no version)."""
        schema = self.registry().deployed(topic)
        return schema.version if schema is not None else None

    def deployed_topics(self) -> list[str]:
        return self.registry().deployed_topics()
