"""Asset keys of the three zones (one asset per zone, partitioned by topic)."""

import dagster as dg

RAW_STAGING = dg.AssetKey(["raw", "staging"])
STANDARDIZED = dg.AssetKey(["standardized", "records"])
CURATED = dg.AssetKey(["curated", "records"])
