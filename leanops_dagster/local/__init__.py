"""The local ingestion stack (embedded default; no Docker, no AWS account).

- ``stack.LocalStack(settings)``: moto SQS/S3, queue per topic with redrive to the centralized
  DLQ, event-source pollers invoking the real ``ingestion_lambdas`` handlers, and
- ``firehose.LocalFirehose``: the Firehose stand-in writing RAW Iceberg tables;
- ``ledger``: messages sent and Firehose error records per topic, for the pre-RAW balance.

Submodules are imported on use so that reading the ledger does not import moto.
"""
