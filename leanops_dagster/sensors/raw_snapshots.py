"""RAW snapshot sensor: records new RAW data commits per onboarded topic and requests runs.

Cursor: ``{topic: {"metadata": RAW metadata location, "snapshot": snapshot id, "ts": its
commit time (ms)}}``, the table as last seen. A tick first lists the current metadata location
of every RAW table from the catalog alone (``iceberg.catalog.metadata_locations``: one query on
the SQL catalog, one paginated ``GetTables`` on Glue) and opens only the tables whose location
differs from the cursor: a topic whose table did not change costs a dictionary look-up, however
long its history and however many topics there are (brief rule 10).

A changed table requests a run only for a *data commit* (``append``, ``overwrite`` or
``delete``, ``iceberg.changes``) newer than the cursor. A foreign commit on RAW (a compaction's
``replace`` snapshot, ``rewrite_manifests``, ``expire_snapshots``, a tag or a property) moves the
cursor and requests nothing: it changed no data, so a run would only find nothing new.

No new data -> no run. The run key is the data snapshot's id, so re-evaluating the same snapshot
never requests a second run, and a topic that already has a run waiting in the queue gets no
other: that run will read everything new when it starts (watermarks), so a second trigger would
only be a no-op run. (A legacy cursor ``{topic: snapshot id}`` is read as a table not yet seen
at that snapshot.) A tick requests at most ``lanes.RUN_REQUESTS_PER_TICK`` runs (Dagster creates
each requested run inside the tick); the other changed topics keep their cursor and are
requested by the next tick, 5 s later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import dagster as dg

from leanops_dagster import constants
from leanops_dagster.assets.keys import RAW_STAGING
from leanops_dagster.assets.reporting import table_metadata
from leanops_dagster.iceberg.catalog import metadata_locations
from leanops_dagster.iceberg.changes import newest_data_commit
from leanops_dagster.jobs import TOPIC_TAG, topic_pipeline_job
from leanops_dagster.lanes import RUN_REQUESTS_PER_TICK
from leanops_dagster.partitions import topic_partitions
from leanops_dagster.resources.catalog import IcebergCatalogResource


@dataclass(frozen=True)
class Seen:
    """A RAW table as the sensor last saw it."""

    metadata: str | None = None
    snapshot: int | None = None
    ts: int | None = None

    @classmethod
    def parse(cls, value: object) -> Seen:
        if isinstance(value, dict):
            return cls(value.get("metadata"), value.get("snapshot"), value.get("ts"))
        return cls(snapshot=value if isinstance(value, int) else None)  # legacy cursor

    def as_json(self) -> dict:
        return {"metadata": self.metadata, "snapshot": self.snapshot, "ts": self.ts}


@dg.sensor(
    job=topic_pipeline_job,
    # The sensor daemon looks at sensors every 5 s at most (its loop), so this is as often as
    # it gets; a tick lists the RAW metadata locations once, opens only the changed tables and
    # makes one query of queued runs.
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches each onboarded topic's RAW Iceberg table for new data commits "
    "(not for compactions or other metadata-only commits).",
)
def raw_snapshot_sensor(
    context: dg.SensorEvaluationContext, catalog: IcebergCatalogResource
) -> dg.SensorResult | dg.SkipReason:
    topics = context.instance.get_dynamic_partitions(topic_partitions.name)
    if not topics:
        return dg.SkipReason("no onboarded topic: deploy a schema first")
    raw_cursor = json.loads(context.cursor) if context.cursor else {}
    cursor = {topic: Seen.parse(value) for topic, value in raw_cursor.items()}
    iceberg = catalog.load()
    locations = metadata_locations(iceberg, catalog.namespace(constants.RAW_ZONE))
    changed = []
    for topic in sorted(topics):
        seen = cursor.get(topic, Seen())
        if locations is not None:
            location = locations.get(constants.raw_table_name(topic))
            if location is None or location == seen.metadata:
                continue  # no table yet, or not changed: nothing is read
        changed.append(topic)
    if not changed:
        return dg.SkipReason("no RAW table changed")
    waiting = _topics_with_waiting_runs(context.instance)
    events: list[dg.AssetMaterialization] = []
    runs: list[dg.RunRequest] = []
    foreign: list[str] = []
    for topic in changed:
        if len(runs) >= RUN_REQUESTS_PER_TICK:
            break  # the rest keep their cursor: the next tick requests them
        table = catalog.raw_table(iceberg, topic)
        current = table.current_snapshot() if table is not None else None
        if table is None or current is None:
            continue
        seen = cursor.get(topic, Seen())
        if seen.metadata == table.metadata_location:
            continue  # only reached without a listing (REST): the table did not change
        data = newest_data_commit(table, seen.snapshot, seen.ts)
        cursor[topic] = Seen(table.metadata_location, current.snapshot_id, current.timestamp_ms)
        if data is None:
            foreign.append(topic)  # a compaction or a metadata-only commit: no new data
            continue
        summary = data.summary.additional_properties if data.summary else {}
        events.append(
            dg.AssetMaterialization(
                asset_key=RAW_STAGING,
                partition=topic,
                description="New RAW snapshot written by Firehose",
                metadata={
                    "snapshot_id": dg.MetadataValue.text(str(data.snapshot_id)),
                    "added_records": int(summary.get("added-records", 0)),
                    **table_metadata(table, data.snapshot_id),
                },
            )
        )
        if topic in waiting:
            continue
        runs.append(
            dg.RunRequest(
                run_key=f"{topic}:{data.snapshot_id}",
                partition_key=topic,
                tags={TOPIC_TAG: topic},
            )
        )
    if foreign:
        context.log.info("RAW commits without new data (compaction, metadata only), no run: "
                         + ", ".join(foreign))
    new_cursor = json.dumps({t: s.as_json() for t, s in sorted(cursor.items())})
    return dg.SensorResult(
        run_requests=runs, asset_events=events, cursor=new_cursor,
        skip_reason=None if events else "no new RAW data commit",
    )


def _topics_with_waiting_runs(instance: dg.DagsterInstance) -> set[str]:
    runs = instance.get_runs(
        filters=dg.RunsFilter(
            job_name=topic_pipeline_job.name,
            statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED],
        )
    )
    return {run.tags["dagster/partition"] for run in runs if "dagster/partition" in run.tags}
