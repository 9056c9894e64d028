"""A powertools ``BatchProcessor`` that delivers to Firehose once per invocation.

Powertools calls the record handler once per SQS record and records a success when it returns.
Our record handlers only *build* the Firehose record and return it wrapped in ``ForFirehose``;
this processor collects those, and in ``_clean`` (the hook powertools runs after the last
record, just before it builds the partial batch response) puts them with one batched,
retried ``deliver`` call. Messages whose record was not delivered are moved from the successes
to the failures, so ``batchItemFailures`` holds exactly the messages that were neither
delivered nor otherwise handled: a message is never reported processed unless delivered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ingestion_lambdas.common.config import Config
from ingestion_lambdas.common.firehose import DeliveryReport, deliver


class ForFirehose(NamedTuple):
    """A record handler's result: ``data`` still has to reach Firehose (``malformed``: the
    body was not a JSON object, delivered as received)."""

    data: bytes
    topic: str
    malformed: bool = False


class FirehoseDeliveryError(Exception):
    """The message's Firehose record was not delivered after the bounded retries."""


class FirehoseBatchProcessor(BatchProcessor):
    """``BatchProcessor(event_type=SQS)`` that flushes collected records to Firehose at the end.

    ``deliver`` takes the list of encoded records and returns a ``DeliveryReport``.
    ``raise_on_entire_batch_failure`` is off: failed items are always *reported* (and retried
    by SQS), never turned into an invocation error, so a poller or benchmark can rely on the
    response; the circuit breaker reads the per-topic failure metrics instead of Lambda Errors.
    """

    @classmethod
    def to_stream(
        cls, firehose: Any, stream: str, config: Config, sleep: Callable[[float], None]
    ) -> FirehoseBatchProcessor:
        """The processor of both queue consumers: ``deliver`` to ``stream`` with the
        configured bounded retries."""
        return cls(
            lambda records: deliver(
                firehose, stream, records,
                max_attempts=config.firehose_max_attempts,
                base_delay_s=config.firehose_retry_base_delay_s,
                max_delay_s=config.firehose_retry_max_delay_s,
                sleep=sleep,
            )
        )

    def __init__(self, deliver: Callable[[Sequence[bytes]], DeliveryReport]):
        super().__init__(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        self._deliver = deliver
        #: (record, record handler's result) of every record the handler returned for
        self.handled: list[tuple[dict[str, Any], Any]] = []
        self.pending: list[tuple[dict[str, Any], ForFirehose]] = []
        self.undelivered: list[tuple[dict[str, Any], ForFirehose, str]] = []
        self.delivery: DeliveryReport | None = None

    def _prepare(self) -> None:
        super()._prepare()
        self.handled = []
        self.pending = []
        self.undelivered = []
        self.delivery = None

    def process(self) -> list[tuple]:
        """Powertools' per-record loop; then collect the successes that still need Firehose.

        One pass over the ``("success", result, record)`` entries after the loop instead of an
        overridden ``success_handler`` call per record (the per-record path stays powertools').
        """
        results = super().process()
        self.handled = [(entry[2], entry[1]) for entry in results
                        if entry and entry[0] == "success"]
        self.pending = [(record, item) for record, item in self.handled
                        if type(item) is ForFirehose]
        return results

    def failures(self) -> list[tuple[SQSRecord, BaseException | None]]:
        """Every batch item failure with its exception: the handler's own, or a
        ``FirehoseDeliveryError`` for a record that was not delivered."""
        return [(failure, exc_info[1])
                for failure, exc_info in zip(self.fail_messages, self.exceptions, strict=False)]

    def _clean(self) -> None:
        self._flush()
        super()._clean()

    def _flush(self) -> None:
        if not self.pending:
            return
        report = self._deliver([item.data for _, item in self.pending])
        self.delivery = report
        if not report.failed:
            return
        failed_ids: set[int] = set()
        for index, error in sorted(report.failed.items()):
            record, item = self.pending[index]
            failed_ids.add(id(record))
            self.undelivered.append((record, item, error))
            exc = FirehoseDeliveryError(error)
            self.fail_messages.append(SQSRecord(record))
            self.exceptions.append((FirehoseDeliveryError, exc, None))
        self.success_messages[:] = [m for m in self.success_messages if id(m) not in failed_ids]
