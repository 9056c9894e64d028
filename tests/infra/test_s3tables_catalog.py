"""S3 Tables as the catalog: Settings -> pyiceberg REST properties -> Spark catalog conf.

No network: the one HTTP request pyiceberg makes when it opens the catalog (``GET /v1/config``)
is caught at urllib3 and answered here, after pyiceberg's SigV4 adapter has signed it, so the
test sees what S3 Tables would receive.
"""

from __future__ import annotations

import io
import json

import pytest
import urllib3
from pydantic import ValidationError
from pyiceberg.catalog import load_catalog
from pyiceberg.catalog.rest import SIGV4, SIGV4_REGION, SIGV4_SERVICE, RestCatalog

from leanops_dagster import settings as settings_module
from leanops_dagster.engines.spark.session import catalog_conf, engine_conf
from leanops_dagster.settings import Settings

ARN = "arn:aws:s3tables:eu-west-1:123456789012:bucket/lean-ops-dev-tables"


def _s3tables(**overrides) -> Settings:
    return Settings(catalog_type="s3tables", warehouse=ARN, aws_region="us-east-1", **overrides)


def test_the_property_names_are_pyicebergs():
    assert settings_module.REST_SIGV4_ENABLED == SIGV4
    assert settings_module.REST_SIGNING_NAME == SIGV4_SERVICE
    assert settings_module.REST_SIGNING_REGION == SIGV4_REGION


def test_s3tables_settings_give_the_signed_rest_endpoint_of_the_buckets_region():
    config = _s3tables().catalog_config
    assert config == {
        "type": "rest",
        # the bucket's region (eu-west-1), not aws_region: the endpoint serves its own region
        "uri": "https://s3tables.eu-west-1.amazonaws.com/iceberg",
        "warehouse": ARN,
        "rest.sigv4-enabled": "true",
        "rest.signing-name": "s3tables",
        "rest.signing-region": "eu-west-1",
        "s3.region": "eu-west-1",
    }


def test_an_explicit_uri_and_extra_properties_win():
    config = _s3tables(
        catalog_uri="https://s3tables-fips.eu-west-1.amazonaws.com/iceberg",
        catalog_properties={"rest.sigv4.max-retries": "3"},
    ).catalog_config
    assert config["uri"] == "https://s3tables-fips.eu-west-1.amazonaws.com/iceberg"
    assert config["rest.sigv4.max-retries"] == "3"
    assert config["rest.signing-name"] == "s3tables"


@pytest.mark.parametrize(
    "warehouse",
    [None, "s3://lean-ops-dev-warehouse", "arn:aws:s3:::lean-ops-dev-warehouse",
     "arn:aws:s3tables:eu-west-1:123456789012:bucket/", "arn:aws:s3tables:eu-west-1:1234:bucket/b"],
)
def test_s3tables_refuses_a_warehouse_that_is_not_a_table_bucket_arn(warehouse):
    with pytest.raises(ValidationError, match="table bucket's ARN"):
        Settings(catalog_type="s3tables", warehouse=warehouse)


def test_the_environment_selects_s3tables(monkeypatch):
    monkeypatch.setenv("LEANOPS_CATALOG_TYPE", "s3tables")
    monkeypatch.setenv("LEANOPS_WAREHOUSE", ARN)
    assert Settings().catalog_config["rest.signing-name"] == "s3tables"


def test_the_spark_job_gets_the_same_catalog():
    settings = _s3tables()
    job = Settings(**settings.spark_job_settings())
    assert job.catalog_config == settings.catalog_config


def test_glue_and_sql_are_unchanged(tmp_path):
    glue = Settings(catalog_type="glue", warehouse="s3://w", aws_region="eu-west-1")
    assert glue.catalog_config == {
        "type": "glue", "warehouse": "s3://w", "glue.region": "eu-west-1"
    }
    sql = Settings(home=tmp_path)
    assert sql.catalog_config["type"] == "sql"
    assert not any(k.startswith("rest.") for k in sql.catalog_config)


# --- Spark ---------------------------------------------------------------------------------
def test_spark_catalog_conf_for_s3tables():
    conf = catalog_conf("leanops", _s3tables().catalog_config)
    prefix = "spark.sql.catalog.leanops"
    assert conf == {
        prefix: "org.apache.iceberg.spark.SparkCatalog",
        f"{prefix}.cache-enabled": "false",
        f"{prefix}.type": "rest",
        f"{prefix}.uri": "https://s3tables.eu-west-1.amazonaws.com/iceberg",
        f"{prefix}.warehouse": ARN,
        f"{prefix}.rest.sigv4-enabled": "true",
        f"{prefix}.rest.signing-name": "s3tables",
        f"{prefix}.rest.signing-region": "eu-west-1",
        f"{prefix}.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        f"{prefix}.client.region": "eu-west-1",
    }


def test_the_cluster_session_conf_carries_the_s3tables_catalog():
    conf = engine_conf(_s3tables())
    assert conf["spark.sql.catalog.leanops.rest.signing-name"] == "s3tables"
    assert conf["spark.sql.extensions"].endswith("IcebergSparkSessionExtensions")


def test_an_unsigned_rest_catalog_gets_no_aws_properties():
    conf = catalog_conf("c", {"type": "rest", "uri": "http://localhost:8181", "warehouse": "w"})
    assert conf == {
        "spark.sql.catalog.c": "org.apache.iceberg.spark.SparkCatalog",
        "spark.sql.catalog.c.cache-enabled": "false",
        "spark.sql.catalog.c.type": "rest",
        "spark.sql.catalog.c.uri": "http://localhost:8181",
        "spark.sql.catalog.c.warehouse": "w",
    }


# --- pyiceberg really signs for s3tables ------------------------------------------------------
@pytest.fixture
def captured(monkeypatch):
    """Answer pyiceberg's HTTP requests here; record each (method, url, headers)."""
    requests: list[tuple[str, str, dict[str, str]]] = []

    def urlopen(pool, method, url, body=None, headers=None, **kwargs):
        requests.append((method, f"{pool.scheme}://{pool.host}{url}", dict(headers or {})))
        payload = json.dumps({"defaults": {}, "overrides": {}}).encode()
        return urllib3.HTTPResponse(
            body=io.BytesIO(payload), headers={"Content-Type": "application/json"}, status=200,
            preload_content=False, request_method=method,
        )

    monkeypatch.setattr(urllib3.connectionpool.HTTPConnectionPool, "urlopen", urlopen)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return requests


def test_pyiceberg_opens_s3tables_with_sigv4_for_the_s3tables_service(captured):
    settings = _s3tables()
    catalog = load_catalog(settings.catalog_name, **settings.catalog_config)
    assert isinstance(catalog, RestCatalog)
    (method, url, headers), *_ = captured
    assert method == "GET"
    assert url.startswith("https://s3tables.eu-west-1.amazonaws.com/iceberg/v1/config")
    assert "warehouse=arn%3Aaws%3As3tables%3Aeu-west-1%3A123456789012%3Abucket%2F" in url
    authorization = headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/s3tables/aws4_request" in authorization
