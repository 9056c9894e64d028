"""Run lanes: ingestion first, housekeeping beside it, never in front of it (brief rule 10).

Every job's runs carry a lane tag and a Dagster run priority (``dagster/priority``):

- *ingestion*: ``topic_pipeline`` (sensor, backlog and schema-gate runs), priority 10;
- *housekeeping*: the all-time checks, table maintenance, schema rebuilds and DLQ replays,
  priority -10, and at most ``HOUSEKEEPING_RUN_LIMIT`` housekeeping run at a time.

The run queue (``QueuedRunCoordinator``, configured in ``instance.DAGSTER_YAML`` locally and
``infra/dagster/dagster.yaml`` in AWS, both with ``tag_concurrency_limits(...)``) then:

1. dequeues a waiting topic run before any waiting housekeeping run, whenever each was queued
   (the coordinator sorts the queue by priority; equal priorities keep their queue order);
2. keeps separate slots: housekeeping gets one run slot at most and ingestion the others, and
   ``max_concurrent_runs`` is ingestion's slots plus housekeeping's (locally 2 + 1, in AWS
   10 + 1), so a housekeeping run never takes a slot a topic run could use;
3. runs one run per topic partition at a time (``dagster/partition``, rule 8), and a topic's
   next run (its backlog follow-up, its next RAW commit) queues behind the runs other topics
   already have waiting: every topic gets its turn, so one topic's backlog cannot starve the
   others (fair share, round robin among topics at the same priority).

Why run tags and priority rather than Dagster pools: a pool limits *steps* of runs that are
already launched, so a housekeeping run waiting for a pool slot would still hold a run slot (and
in AWS a Fargate task) while topic runs wait in the queue; the run queue decides before a run
takes a slot.
"""

from __future__ import annotations

LANE_TAG = "leanops/lane"
INGESTION = "ingestion"
HOUSEKEEPING = "housekeeping"
#: Dagster's run priority tag: the run queue dequeues higher values first (default 0)
PRIORITY_TAG = "dagster/priority"
INGESTION_PRIORITY = 10
HOUSEKEEPING_PRIORITY = -10
#: housekeeping runs in progress at once, whatever the number of topics
HOUSEKEEPING_RUN_LIMIT = 1
#: Dagster's run tag of a run's partition
PARTITION_TAG = "dagster/partition"

#: threads that submit one sensor tick's run requests (``sensors.num_submit_workers`` of both
#: instances). Dagster creates each requested run inside the tick (its snapshots and planned
#: events written), so a tick takes about one run creation per round of this pool.
SENSOR_SUBMIT_WORKERS = 4
#: run requests per sensor tick: one round of the pool, so a tick stays short (brief rule 10);
#: the other changed topics are requested by the next tick, 5 s later
RUN_REQUESTS_PER_TICK = SENSOR_SUBMIT_WORKERS

#: topic runs at once: on this project's 2-core laptop, and in AWS (one Fargate task each)
LOCAL_INGESTION_RUNS = 2
AWS_INGESTION_RUNS = 10


def tag_concurrency_limits(ingestion_runs: int) -> list[dict]:
    """The run coordinator's ``tag_concurrency_limits`` for ``ingestion_runs`` topic runs at
    once (its ``max_concurrent_runs`` is that plus ``HOUSEKEEPING_RUN_LIMIT``)."""
    return [
        {"key": PARTITION_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
        {"key": LANE_TAG, "value": INGESTION, "limit": ingestion_runs},
        {"key": LANE_TAG, "value": HOUSEKEEPING, "limit": HOUSEKEEPING_RUN_LIMIT},
    ]


def ingestion_tags() -> dict[str, str]:
    return {LANE_TAG: INGESTION, PRIORITY_TAG: str(INGESTION_PRIORITY)}


def housekeeping_tags() -> dict[str, str]:
    return {LANE_TAG: HOUSEKEEPING, PRIORITY_TAG: str(HOUSEKEEPING_PRIORITY)}


def is_housekeeping(tags: dict[str, str]) -> bool:
    return tags.get(LANE_TAG) == HOUSEKEEPING
