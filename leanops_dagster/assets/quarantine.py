"""The ``quarantined_rows`` check of both layer assets (the safety net: ``pipeline.quarantine``)."""

import dagster as dg

from leanops_dagster.checks import messages

QUARANTINED_ROWS_CHECK = "quarantined_rows"


def quarantined_rows_spec(asset: dg.AssetKey, errors_table: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        name=QUARANTINED_ROWS_CHECK,
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


def quarantined_rows_result(
    *, read: int, quarantined: int, errors_table: str
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=QUARANTINED_ROWS_CHECK,
        passed=quarantined == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=messages.quarantined_rows(
            read=read, quarantined=quarantined, errors_table=errors_table
        ),
        metadata={"quarantined": quarantined, "rows_read": read},
    )
