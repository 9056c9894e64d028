"""Jobs: the per-topic pipeline (Standardized -> Curated) and the runbook jobs."""

import dagster as dg

from leanops_dagster.assets.keys import CURATED, STANDARDIZED
from leanops_dagster.partitions import topic_partitions

TOPIC_TAG = "leanops/topic"

topic_pipeline_job = dg.define_asset_job(
    name="topic_pipeline",
    description=(
        "Standardized then Curated for one topic partition, reading only what is new since "
        "each layer's watermark. Blocking checks on Standardized stop Curated in the same run. "
        "Launch it by hand for a manual full run of one topic."
    ),
    selection=dg.AssetSelection.assets(STANDARDIZED, CURATED),
    partitions_def=topic_partitions,
)
