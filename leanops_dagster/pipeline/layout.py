"""Table identifiers of one topic across the zones."""

from __future__ import annotations

from dataclasses import dataclass

from leanops_dagster import constants

Identifier = tuple[str, str]


@dataclass(frozen=True)
class TopicTables:
    topic: str
    namespace_prefix: str = ""

    def __post_init__(self) -> None:
        constants.validate_topic(self.topic)

    def _ns(self, zone: str) -> str:
        return constants.namespace(zone, self.namespace_prefix)

    @property
    def raw(self) -> Identifier:
        return (self._ns(constants.RAW_ZONE), constants.raw_table_name(self.topic))

    @property
    def dlq_errors(self) -> Identifier:
        return (self._ns(constants.RAW_ZONE), constants.DLQ_ERRORS_TABLE)

    @property
    def standardized(self) -> Identifier:
        return (self._ns(constants.STANDARDIZED_ZONE), self.topic)

    @property
    def parse_errors(self) -> Identifier:
        return (self._ns(constants.STANDARDIZED_ZONE), constants.PARSE_ERRORS_TABLE)

    @property
    def curated(self) -> Identifier:
        return (self._ns(constants.CURATED_ZONE), self.topic)

    @property
    def curated_errors(self) -> Identifier:
        return (self._ns(constants.CURATED_ZONE), constants.CURATED_ERRORS_TABLE)

    @property
    def drift_log(self) -> Identifier:
        return (self._ns(constants.CURATED_ZONE), constants.DRIFT_LOG_TABLE)
