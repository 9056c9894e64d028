"""Iceberg catalog resource: pyiceberg catalog chosen by properties (SQL, Glue or REST)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table

from leanops_dagster import constants
from leanops_dagster.iceberg.catalog import ensure_namespace, load_catalog_from_properties
from leanops_dagster.settings import Settings


class IcebergCatalogResource(dg.ConfigurableResource):
    """Opens the pyiceberg catalog; the same code runs on SQLite, PostgreSQL, Glue or REST."""

    catalog_name: str = Field(description="pyiceberg catalog name")
    properties: dict[str, str] = Field(description="pyiceberg catalog properties")
    namespace_prefix: str = Field(default="", description="environment prefix of namespaces")

    @classmethod
    def from_settings(cls, settings: Settings) -> IcebergCatalogResource:
        return cls(
            catalog_name=settings.catalog_name,
            properties=dict(settings.catalog_config),
            namespace_prefix=settings.namespace_prefix,
        )

    def load(self) -> Catalog:
        catalog = load_catalog_from_properties(self.catalog_name, self.properties)
        for zone in constants.ZONES:
            ensure_namespace(catalog, self.namespace(zone))
        return catalog

    def namespace(self, zone: str) -> str:
        return constants.namespace(zone, self.namespace_prefix)

    def raw_table(self, catalog: Catalog, topic: str) -> Table | None:
        identifier = (self.namespace(constants.RAW_ZONE), constants.raw_table_name(topic))
        try:  # one load (``table_exists`` would load the table a first time)
            return catalog.load_table(identifier)
        except NoSuchTableError:
            return None
