"""Fixtures of the operations tests: a fresh LEANOPS_HOME (tests/dagster) and moto SNS with an
SQS queue subscribed to the alarm topic, to read back exactly what was published."""

from __future__ import annotations

import json
from dataclasses import dataclass

import boto3
import pytest
from moto import mock_aws

from tests.dagster.conftest import catalog, registry, settings, tmp_schemas  # noqa: F401

REGION = "us-east-1"


@dataclass
class Inbox:
    """What SNS delivered to the subscribed queue (the standard SNS envelope, decoded)."""

    topic_arn: str
    queue_url: str

    def read(self) -> list[dict]:
        sqs = boto3.client("sqs", region_name=REGION)
        messages: list[dict] = []
        while True:
            batch = sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                messages.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url,
                                   ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def aws(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


@pytest.fixture
def inbox(aws) -> Inbox:
    sns = boto3.client("sns", region_name=REGION)
    topic_arn = sns.create_topic(Name="lean-ops-dev-alarms")["TopicArn"]
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="on-call")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return Inbox(topic_arn, queue_url)
