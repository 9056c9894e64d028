"""The local event-source mapping honours batchItemFailures, batch size and the event shape."""

from __future__ import annotations

import threading
import time

from leanops_dagster.local.poller import EventSourceMapping, QueuePoller


def _queue(stack, name: str, visibility_s: int = 1) -> tuple[str, str]:
    url = stack.sqs.create_queue(
        QueueName=name, Attributes={"VisibilityTimeout": str(visibility_s)}
    )["QueueUrl"]
    arn = stack.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    return url, arn


def _wait(predicate, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_failed_items_reappear_and_successes_are_deleted(stack):
    url, arn = _queue(stack, "poller-partial-test")
    seen: list[tuple[str, str]] = []
    events: list[dict] = []
    lock = threading.Lock()

    def handler(event, context):
        assert context.get_remaining_time_in_millis() > 0
        with lock:
            events.append(event)
            failures = []
            for record in event["Records"]:
                seen.append((record["body"], record["attributes"]["ApproximateReceiveCount"]))
                if record["body"].startswith("fail") and \
                        record["attributes"]["ApproximateReceiveCount"] == "1":
                    failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    bodies = [f"ok-{i}" for i in range(6)] + ["fail-a", "fail-b"]
    stack.sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)]
    )
    poller = QueuePoller(stack.sqs, url, arn, handler,
                         EventSourceMapping(batch_size=10, maximum_concurrency=1),
                         visibility_timeout_s=1).start()
    try:
        _wait(lambda: len(seen) >= 10)
        time.sleep(1.5)  # nothing else may come back
    finally:
        poller.stop()
    assert sorted(seen) == sorted(
        [(b, "1") for b in bodies] + [("fail-a", "2"), ("fail-b", "2")]
    )
    assert poller.stats.deleted == 8 and poller.stats.item_failures == 2
    record = events[0]["Records"][0]
    assert set(record) >= {"messageId", "receiptHandle", "body", "attributes",
                           "messageAttributes", "md5OfBody", "eventSource", "eventSourceARN",
                           "awsRegion"}
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == arn
    assert {"SentTimestamp", "ApproximateReceiveCount"} <= set(record["attributes"])


def test_handler_exception_and_unknown_ids_fail_the_whole_batch(stack):
    url, arn = _queue(stack, "poller-error-test")
    calls = []

    def handler(event, context):
        calls.append(len(event["Records"]))
        if len(calls) == 1:
            raise RuntimeError("function error")
        if len(calls) == 2:
            return {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}
        return {"batchItemFailures": []}

    stack.sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(3)]
    )
    poller = QueuePoller(stack.sqs, url, arn, handler,
                         EventSourceMapping(batch_size=10, maximum_concurrency=1),
                         visibility_timeout_s=1).start()
    try:
        _wait(lambda: poller.stats.deleted == 3)
    finally:
        poller.stop()
    assert poller.stats.batch_failures == 2
    assert sum(calls) == 9  # every message three times: twice failed as a batch, then deleted


def test_batch_size_and_window_gather_more_than_one_receive(stack):
    url, arn = _queue(stack, "poller-window-test", visibility_s=30)
    sizes: list[int] = []
    for start in range(0, 40, 10):
        stack.sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "MessageBody": f"m{start + i}"} for i in range(10)],
        )
    poller = QueuePoller(
        stack.sqs, url, arn, lambda e, c: sizes.append(len(e["Records"])) or {},
        EventSourceMapping(batch_size=25, batching_window_s=0.5, maximum_concurrency=1),
        visibility_timeout_s=30,
    ).start()
    try:
        _wait(lambda: sum(sizes) == 40)
    finally:
        poller.stop()
    assert max(sizes) == 25
    assert all(n <= 25 for n in sizes)
