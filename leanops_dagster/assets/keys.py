"""Asset keys of the three zones (one asset per zone, partitioned by topic)."""

import dagster as dg

RAW_STAGING = dg.AssetKey(["raw", "staging"])
STANDARDIZED = dg.AssetKey(["standardized", "records"])
CURATED = dg.AssetKey(["curated", "records"])
#: Optional: the Snowflake Iceberg table over Curated (only when Snowflake is configured).
SNOWFLAKE_CURATED = dg.AssetKey(["snowflake", "curated"])
