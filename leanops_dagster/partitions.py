"""Topic partitions: a topic exists in Dagster only once its schema is deployed (the gate)."""

import dagster as dg

topic_partitions = dg.DynamicPartitionsDefinition(name="topics")
