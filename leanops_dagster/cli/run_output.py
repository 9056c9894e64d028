"""What one in-process run of ``topic_pipeline`` did, read from Dagster's result API.

``summarize`` turns an ``ExecuteInProcessResult`` into per-layer counts (from the
materialization metadata), the check evaluations (their ``description`` is the sentence the UI
shows, built by ``pipeline.check_messages``) and one line per failed step; ``render_*`` make
the Rich tables ``leanops run`` prints instead of Dagster's event log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dagster as dg
from rich.markup import escape
from rich.table import Table

from leanops_dagster.assets.keys import CURATED, STANDARDIZED
from leanops_dagster.pipeline import check_messages as messages

if TYPE_CHECKING:  # the error record Dagster keeps of a failed step (not exported publicly)
    from leanops_dagster._dagster_internals import SerializableErrorInfo

#: Dagster's console logger, quiet: the summary replaces the event stream (--verbose keeps it).
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

#: a step that failed because a blocking check failed: the check's own line says why
_BLOCKING_CHECK_FAILED = "DagsterAssetCheckFailedError"
#: Dagster's wrapper around an exception raised by user code; the cause is the real one
_STEP_WRAPPER = "DagsterExecutionStepExecutionError"


@dataclass(frozen=True)
class _LayerSpec:
    name: str
    asset: dg.AssetKey
    written: tuple[str, ...]
    errors: str
    duplicates: str


#: how each layer's materialization metadata maps onto the table's columns
LAYERS = (
    _LayerSpec("standardized", STANDARDIZED, ("rows_written",), "parse_errors", "duplicates"),
    _LayerSpec("curated", CURATED, ("inserted", "updated"), "cde_error_rows", "superseded"),
)


@dataclass
class LayerOutcome:
    layer: str
    asset: str
    #: done | nothing read | busy | raised | not run
    status: str = "not run"
    read: int | None = None
    written: int | None = None
    errors: int | None = None
    duplicates: int | None = None
    quarantined: int | None = None


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    asset: str
    passed: bool
    severity: str
    why: str

    @property
    def verdict(self) -> str:
        if self.passed:
            return "pass"
        return "WARN" if self.severity == dg.AssetCheckSeverity.WARN.value else "FAIL"

    @property
    def line(self) -> str:
        """``<check name> <sentence>``: the sentence is the description the UI shows."""
        return f"{self.name} {self.why or ('passed' if self.passed else 'failed')}"


@dataclass
class RunSummary:
    topic: str
    run_id: str
    layers: list[LayerOutcome]
    checks: list[CheckOutcome]
    #: one line per step that raised (not counting a blocking check's failure)
    raised: list[str] = field(default_factory=list)
    #: one line per layer that found another run holding the topic's lease
    busy: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        """Why the run failed, one line each: failed ERROR checks, then raised steps."""
        failed = [c.line for c in self.checks if c.verdict == "FAIL"]
        return failed + self.raised


def _int(metadata: dict[str, dg.MetadataValue], key: str) -> int:
    value = metadata.get(key)
    return int(value.value) if value is not None else 0  # type: ignore[arg-type]


def _layer_outcome(spec: _LayerSpec, metadata: dict[str, dg.MetadataValue]) -> LayerOutcome:
    read = _int(metadata, "rows_read")
    if "busy" in metadata:
        status = "busy"
    elif read == 0:
        status = "nothing read"
    else:
        status = "done"
    return LayerOutcome(
        layer=spec.name,
        asset=spec.asset.to_user_string(),
        status=status,
        read=read,
        written=sum(_int(metadata, k) for k in spec.written),
        errors=_int(metadata, spec.errors),
        duplicates=_int(metadata, spec.duplicates),
        quarantined=_int(metadata, "quarantined"),
    )


def _user_error(error: SerializableErrorInfo) -> SerializableErrorInfo:
    """The exception user code raised, below Dagster's step wrapper."""
    while error.cls_name == _STEP_WRAPPER and error.cause is not None:
        error = error.cause
    return error


def _exception_message(error: SerializableErrorInfo) -> str:
    """``SerializableErrorInfo.message`` is ``"<module.Class>: <message>"``: keep the message."""
    text = error.message.strip()
    head, sep, rest = text.partition(": ")
    if sep and head.endswith(error.cls_name):
        return rest
    return "" if text.endswith(error.cls_name) else text  # raised without a message


def summarize(result: dg.ExecuteInProcessResult, topic: str) -> RunSummary:
    layers = {spec.asset: LayerOutcome(spec.name, spec.asset.to_user_string()) for spec in LAYERS}
    specs = {spec.asset: spec for spec in LAYERS}
    summary = RunSummary(topic, result.run_id, [], [])
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        spec = specs.get(materialization.asset_key)
        if spec is None:
            continue
        metadata = dict(materialization.metadata)
        outcome = layers[spec.asset] = _layer_outcome(spec, metadata)
        if outcome.status == "busy":  # the layer's own sentence names the lease's holder
            held = metadata["busy"].value
            summary.busy.append(held if isinstance(held, str) else messages.busy(topic, spec.name))
    for evaluation in result.get_asset_check_evaluations():
        summary.checks.append(
            CheckOutcome(
                name=evaluation.check_name,
                asset=evaluation.asset_key.to_user_string(),
                passed=evaluation.passed,
                severity=evaluation.severity.value,
                why=evaluation.description or "",
            )
        )
    step_assets = {spec.asset.to_python_identifier(): spec.asset for spec in LAYERS}
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        if error is None or error.cls_name == _BLOCKING_CHECK_FAILED:
            continue
        asset = step_assets.get(event.step_key or "")
        step = asset.to_user_string() if asset else (event.step_key or "run")
        if asset is not None:
            layers[asset].status = "raised"
        cause = _user_error(error)
        summary.raised.append(
            messages.step_raised(step, cause.cls_name or "Error", _exception_message(cause))
        )
    summary.layers = list(layers.values())
    return summary


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


_STATUS_STYLE = {"done": "green", "raised": "red", "busy": "yellow", "not run": "dim"}
_VERDICT_STYLE = {"pass": "green", "FAIL": "bold red", "WARN": "yellow"}


#: what the shared columns mean per layer (printed under the layer table)
LAYER_LEGEND = (
    "standardized: errors = parse errors, duplicates = message_id twins dropped\n"
    "curated: written = inserted + updated, errors = CDE error rows, "
    "duplicates = older versions superseded (LIFO)"
)


def render_layers(summary: RunSummary) -> Table:
    table = Table(title=f"leanops run --topic {summary.topic}  (run {summary.run_id})")
    table.add_column("layer")
    table.add_column("status")
    for column in ("read", "written", "errors", "duplicates", "quarantined"):
        table.add_column(column, justify="right")
    for layer in summary.layers:
        style = _STATUS_STYLE.get(layer.status, "")
        table.add_row(
            layer.layer, f"[{style}]{layer.status}[/]" if style else layer.status,
            _count(layer.read), _count(layer.written), _count(layer.errors),
            _count(layer.duplicates), _count(layer.quarantined),
        )
    return table


def render_checks(summary: RunSummary) -> Table:
    table = Table(title="checks")
    table.add_column("check", no_wrap=True)
    table.add_column("asset", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("why")
    for check in summary.checks:
        style = _VERDICT_STYLE[check.verdict]
        table.add_row(
            check.name, check.asset, f"[{style}]{check.verdict}[/]", escape(check.why)
        )
    return table
