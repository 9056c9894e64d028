"""The local ingestion stack (embedded default; no Docker, no AWS account).

- ``stack.LocalStack(settings)``: moto SQS/S3, a queue per topic with redrive to the centralized
  DLQ, event-source pollers invoking the real ``ingestion_lambdas`` handlers;
- ``firehose.LocalFirehose``: the Firehose stand-in writing RAW Iceberg tables;
- ``poller.QueuePoller`` / ``EventSourceMapping``: the Lambda SQS event source mapping;
- ``ledger``: messages sent and Firehose error records per topic, for the pre-RAW balance;
- ``inspect``: read-only catalog views for ``leanops raw`` / ``leanops info``;
- ``aws``: the moto endpoint and boto3 clients for it;
- ``launcher``: the local run launcher that forks each run from a warm worker;
- ``injector``: deterministic test data (generators, the scenario configs of ``tests/configs``,
  the demo mix) for ``leanops inject`` and ``tools/data_injector/main.py``;
- ``demo``: the main job, ``leanops demo`` (the stack, the daemon, the schema gate, the report);
- ``accountability_report``: the equations per topic and layer as ``leanops report`` and the
  demo print them.

Submodules are imported on use so that reading the ledger does not import moto.
"""
