"""Schema gate: a topic becomes a partition when its schema is deployed (Day 1 / Day 2).

Day 1: a topic without a deployed schema still lands in RAW; it has no partition, so no sensor
requests work for it. Day 2: its schema is deployed, this sensor adds the partition and
requests a run that processes everything buffered in RAW. A redeployed (changed) schema
requests a run too. A topic with no RAW table yet gets its partition and no run (no data, no
run): the RAW sensor requests its first run when its first data lands. The RAW tables are known
from one catalog listing per tick (``iceberg.catalog.metadata_locations``; a catalog without a
listing, REST, requests the run as before).

Cursor: ``{"stamps": {topic: stamp}, "versions": {topic: deployed schema version}}``. A tick
lists the deployed store once (a stamp per document: mtime and size locally, the ETag on S3) and
reads only the documents whose stamp changed, so an unchanged topic costs no read (brief rule
10). A tick requests at most ``lanes.RUN_REQUESTS_PER_TICK`` runs; the other topics are
requested by the next ticks. A legacy cursor ``{topic: version}`` is read as versions without
stamps.
"""


import json

import dagster as dg

from leanops_dagster import constants
from leanops_dagster.iceberg.catalog import metadata_locations
from leanops_dagster.jobs import TOPIC_TAG, topic_pipeline_job
from leanops_dagster.lanes import RUN_REQUESTS_PER_TICK
from leanops_dagster.partitions import topic_partitions
from leanops_dagster.resources.catalog import IcebergCatalogResource
from leanops_dagster.resources.schema_registry import SchemaRegistryResource


def _parse(cursor: str | None) -> tuple[dict[str, str], dict[str, str]]:
    state = json.loads(cursor) if cursor else {}
    if "stamps" in state and "versions" in state:
        return dict(state["stamps"]), dict(state["versions"])
    return {}, {t: v for t, v in state.items() if isinstance(v, str)}  # legacy: versions only


@dg.sensor(
    job=topic_pipeline_job,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a topic partition when the topic's schema is deployed (the schema gate).",
)
def schema_gate_sensor(
    context: dg.SensorEvaluationContext,
    schema_registry: SchemaRegistryResource,
    catalog: IcebergCatalogResource,
) -> dg.SensorResult | dg.SkipReason:
    stamps, seen = _parse(context.cursor)
    now_stamps = schema_registry.deployed_stamps()
    deployed: dict[str, str] = {}
    for topic, stamp in now_stamps.items():
        if stamps.get(topic) == stamp and topic in seen:
            deployed[topic] = seen[topic]  # unchanged document: not read
        elif (version := schema_registry.deployed_version(topic)) is not None:
            deployed[topic] = version
    partitions = set(context.instance.get_dynamic_partitions(topic_partitions.name))
    new_topics = sorted(t for t in deployed if t not in partitions)
    changed = sorted(t for t, v in deployed.items() if seen.get(t) != v)
    # a run only where RAW holds data; at most RUN_REQUESTS_PER_TICK runs per tick: the others
    # stay out of the cursor, so the next tick finds them changed (partitions: all at once)
    to_run = sorted(_topics_with_raw_table(catalog, changed))
    to_run, later = to_run[:RUN_REQUESTS_PER_TICK], set(to_run[RUN_REQUESTS_PER_TICK:])
    recorded = {t: v for t, v in deployed.items() if t not in later}
    cursor = json.dumps({"stamps": {t: now_stamps[t] for t in recorded}, "versions": recorded},
                        sort_keys=True)
    if not new_topics and not to_run:
        if {t: now_stamps[t] for t in recorded} == stamps:
            return dg.SkipReason("no schema deployed or changed")
        # a document rewritten with the same version: remember its stamp, nothing to do
        return dg.SensorResult(cursor=cursor, skip_reason="no schema deployed or changed")
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
            for topic in to_run
        ],
        cursor=cursor,
    )


def _topics_with_raw_table(catalog: IcebergCatalogResource, topics: list[str]) -> set[str]:
    """The topics of ``topics`` whose RAW table exists (all of them where the catalog cannot
    list its tables without loading each)."""
    if not topics:
        return set()
    locations = metadata_locations(catalog.load(), catalog.namespace(constants.RAW_ZONE))
    if locations is None:
        return set(topics)
    return {t for t in topics if constants.raw_table_name(t) in locations}
