"""RAW zone: written by Firehose outside Dagster, so an external asset the sensor reports on."""

import dagster as dg

from leanops_dagster.assets.keys import RAW_STAGING
from leanops_dagster.partitions import topic_partitions

raw_staging = dg.AssetSpec(
    key=RAW_STAGING,
    description=(
        "RAW landing table `raw.<topic>_staging`: every SQS message body as received "
        "(json_payload), appended by Firehose; partitioned by day(publish_time). Data lands "
        "here whether or not the topic's schema is deployed."
    ),
    partitions_def=topic_partitions,
    group_name="raw",
    kinds={"iceberg", "firehose"},
    owners=["team:data-platform"],
)
