"""Schema gate: a topic becomes a partition when its schema is deployed (Day 1 / Day 2).

Day 1: a topic without a deployed schema still lands in RAW; it has no partition, so no sensor
requests work for it. Day 2: its schema is deployed, this sensor adds the partition and
requests a run that processes everything buffered in RAW. A redeployed (changed) schema
requests a run too. Cursor: ``{topic: deployed schema version}``.
"""


import json

import dagster as dg

from leanops_dagster.jobs import TOPIC_TAG, topic_pipeline_job
from leanops_dagster.partitions import topic_partitions
from leanops_dagster.resources.schema_registry import SchemaRegistryResource


@dg.sensor(
    job=topic_pipeline_job,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a topic partition when the topic's schema is deployed (the schema gate).",
)
def schema_gate_sensor(
    context: dg.SensorEvaluationContext, schema_registry: SchemaRegistryResource
) -> dg.SensorResult | dg.SkipReason:
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    deployed = schema_registry.deployed_versions()
    partitions = set(context.instance.get_dynamic_partitions(topic_partitions.name))
    new_topics = sorted(t for t in deployed if t not in partitions)
    changed = sorted(t for t, v in deployed.items() if seen.get(t) != v)
    if not new_topics and not changed:
        return dg.SkipReason("no schema deployed or changed")
    return dg.SensorResult(
        dynamic_partitions_requests=[topic_partitions.build_add_request(new_topics)]
        if new_topics
        else [],
        run_requests=[
            dg.RunRequest(
                run_key=f"schema:{topic}:{deployed[topic]}",
                partition_key=topic,
                tags={TOPIC_TAG: topic},
            )
            for topic in changed
        ],
        cursor=json.dumps(deployed, sort_keys=True),
    )
