"""The MERGE and its key index on an S3 warehouse (moto's S3 server, pyarrow's S3 filesystem):
segments are written, read and listed through the table's FileIO, as in AWS."""

from __future__ import annotations

import datetime as dt
import logging

import boto3
import pytest
from moto.server import ThreadedMotoServer
from pyiceberg.catalog.sql import SqlCatalog
from test_merge import SCHEMA, batch, contents

from leanops_dagster.constants import curated_partition_spec
from leanops_dagster.iceberg.key_index import KeyIndex, unreferenced_segments
from leanops_dagster.iceberg.merge import merge_lifo

BUCKET = "leanops-test-warehouse"
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def s3_endpoint():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id="test", aws_secret_access_key="test",
                 ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def rows(keys: range, day: int, value: int):
    when = START + dt.timedelta(days=day)
    return batch(*[(value, f"m{k}-{day}", f"k{k:04d}", when, when) for k in keys])


def test_merge_and_key_index_on_s3(tmp_path, s3_endpoint):
    catalog = SqlCatalog(
        "s3", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=f"s3://{BUCKET}/warehouse",
        **{"s3.endpoint": s3_endpoint, "s3.access-key-id": "test",
           "s3.secret-access-key": "test", "s3.region": "us-east-1",
           "py-io-impl": "pyiceberg.io.pyarrow.PyArrowFileIO"},
    )
    catalog.create_namespace("curated")
    table = catalog.create_table(("curated", "events"), schema=SCHEMA,
                                 partition_spec=curated_partition_spec(SCHEMA),
                                 properties={"format-version": "2"})
    assert merge_lifo(table, rows(range(100), 0, 1)).inserted == 100
    assert merge_lifo(table, rows(range(100), 0, 1)).stale == 100  # idempotent
    stats = merge_lifo(table, rows(range(50, 150), 2, 2))
    assert (stats.inserted, stats.updated) == (50, 50)
    assert stats.scanned_files == 16  # day 0's buckets, named by the index
    index = KeyIndex.of(table, "idempotency_key")
    assert index is not None and all(s.startswith(f"s3://{BUCKET}/") for s in index.segments)
    assert len(contents(table)) == 150
    assert unreferenced_segments(table, older_than=dt.timedelta(0)) == []
