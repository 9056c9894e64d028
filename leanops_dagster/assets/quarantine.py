"""The ``quarantined_rows`` check of both layer assets (the safety net: ``pipeline.quarantine``)."""

import dagster as dg

from leanops_dagster.pipeline.materialization import QUARANTINED_ROWS


def quarantined_rows_spec(asset: dg.AssetKey, errors_table: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        name=QUARANTINED_ROWS,
        asset=asset,
        blocking=False,
        description=(
            "Rows of this run that made the layer raise (a case no rule foresaw) and that the "
            f"safety net moved to `{errors_table}` with reason "
            "`internal:<ExceptionClass>` and the message; every other row was committed with "
            "the watermark. A warning, not blocking: failing means a rule or the writer needs "
            "a fix for those rows (they are kept and can be replayed once fixed); the topic "
            "keeps flowing."
        ),
    )

