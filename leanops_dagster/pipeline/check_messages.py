"""One-line explanations of the per-run checks and of a failed step: the single wording.

The assets put these sentences in ``AssetCheckResult(description=...)`` (what the Dagster UI
shows next to the check's name); ``leanops run`` prints ``<check name> <sentence>`` from the
check evaluation it got back. Pure functions of the numbers: no Dagster, no tables.

An empty run (nothing read since the watermark) passes its per-run checks: a balance over no
rows holds and no error rate is measured; the sentence says "nothing read" so the pass is not
mistaken for a verdict on data.
"""

from __future__ import annotations

from collections.abc import Sequence

#: at most this many drift column names in the sentence (the metadata lists all of them)
DRIFT_NAMES_SHOWN = 8
#: a step's exception message is cut here so the explanation stays one line
MESSAGE_MAX_CHARS = 300


def _n(value: int) -> str:
    return f"{value:,}"


def _percent(value: float, *, versus: float | None = None) -> str:
    """``value`` (a fraction) as a percentage with the fewest decimals (at least one) that keep
    it visibly different from ``versus``: 5.04 % against a 5 % threshold is not "5.0 %"."""
    for decimals in range(1, 7):
        text = f"{value * 100:.{decimals}f}"
        if versus is None or value == versus or float(text) != round(versus * 100, decimals):
            return f"{text} %"
    return f"{value * 100} %"


def _threshold(value: float) -> str:
    return f"{round(value * 100, 6):g} %"


def busy(topic: str, layer: str) -> str:
    """The run found another run holding the topic's lease for ``layer`` and did nothing."""
    return f"another run of {topic} {layer} is in progress; nothing to do"


def not_evaluated(reason: str) -> str:
    return f"not evaluated: {reason}"


def post_raw_balance(
    *, read: int, written: int, parse_errors: int, duplicates: int, quarantined: int,
    errors_table: str,
) -> str:
    """RAW rows read = Standardized rows written + parse errors + duplicates + quarantined."""
    if read == 0 and written + parse_errors + duplicates + quarantined == 0:
        return "nothing read: no RAW rows since the watermark (a balance over no rows holds)"
    right = written + parse_errors + duplicates + quarantined
    terms = (
        f"{_n(written)} written + {_n(parse_errors)} parse errors + {_n(duplicates)} "
        f"duplicates + {_n(quarantined)} quarantined"
    )
    if read == right:
        return f"balanced: {_n(read)} RAW rows read = {terms}"
    return (
        f"off by {_n(read - right)}: {_n(read)} RAW rows read != {terms} (= {_n(right)}); "
        f"Standardized is committed, Curated does not run in this run; see {errors_table}"
    )


def curated_balance(
    *, read: int, inserted: int, updated: int, superseded: int, cde_error_rows: int,
    quarantined: int,
) -> str:
    """Standardized rows read = inserts + updates + superseded + CDE error rows + quarantined."""
    right = inserted + updated + superseded + cde_error_rows + quarantined
    if read == 0 and right == 0:
        return (
            "nothing read: no Standardized rows since the watermark "
            "(a balance over no rows holds)"
        )
    terms = (
        f"{_n(inserted)} inserted + {_n(updated)} updated + {_n(superseded)} superseded + "
        f"{_n(cde_error_rows)} CDE error rows + {_n(quarantined)} quarantined"
    )
    if read == right:
        return f"balanced: {_n(read)} Standardized rows read = {terms}"
    return (
        f"off by {_n(read - right)}: {_n(read)} Standardized rows read != {terms} "
        f"(= {_n(right)}); the MERGE is committed"
    )


def cde_error_rate(
    *, error_rows: int, rows_read: int, threshold: float, errors_table: str
) -> str:
    """Share of this run's rows failing a CDE against the schema's threshold."""
    if rows_read == 0:
        return (
            "nothing read: no Standardized rows since the watermark, no error rate to "
            f"measure (threshold {_threshold(threshold)})"
        )
    rate = error_rows / rows_read
    shown = _percent(rate, versus=threshold)
    counts = f"{_n(error_rows)} of {_n(rows_read)} rows"
    if rate <= threshold:
        return f"{shown} <= {_threshold(threshold)} threshold: {counts}"
    return (
        f"{shown} > {_threshold(threshold)} threshold: {counts}; rows are committed; "
        f"see {errors_table}"
    )


def schema_drift(columns: Sequence[str], *, drift_log_table: str) -> str:
    """The drift the topic has (every logged column the curated schema does not declare),
    whatever this run read."""
    if not columns:
        return "no drift: every Standardized column is declared by the curated schema"
    names = ", ".join(columns[:DRIFT_NAMES_SHOWN])
    more = len(columns) - DRIFT_NAMES_SHOWN
    if more > 0:
        names += f" and {more} more"
    noun = "column" if len(columns) == 1 else "columns"
    return (
        f"{len(columns)} Standardized {noun} the curated schema does not declare "
        f"({names}); they stay in Standardized; see {drift_log_table}, extend the curated "
        "schema to promote them"
    )


def one_line(text: str, limit: int = MESSAGE_MAX_CHARS) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def step_raised(step: str, exception_class: str, message: str) -> str:
    """A step that raised: the step, the exception class and its message, on one line."""
    text = one_line(message)
    raised = f"{step} raised {exception_class}"
    return f"{raised}: {text}" if text else raised


def quarantined_rows(*, read: int, quarantined: int, errors_table: str) -> str:
    """Rows the safety net moved to the layer's error table because the run raised on them."""
    if quarantined == 0:
        if read == 0:
            return "nothing read: no rows since the watermark"
        return f"no row of {_n(read)} made the layer raise"
    return (
        f"{_n(quarantined)} of {_n(read)} rows made the layer raise and were quarantined "
        f"(reason internal:<Exception>); every other row is committed; see {errors_table}"
    )
