"""One SparkSession configured for the project's Iceberg catalog, from Settings.

The Spark catalog has the same name as pyiceberg's and points at the same catalog store, so
both engines see the same tables: pyiceberg's SQL catalog (SQLAlchemy URL) becomes Iceberg's
JDBC catalog on the same database (``jdbc:sqlite:<path>``, ``jdbc:postgresql://...``); Glue and
REST catalogs map to their Iceberg Java implementations. A SigV4-signed REST catalog (S3 Tables'
Iceberg REST endpoint, ``Settings.catalog_type = "s3tables"``) keeps its signing properties,
which Iceberg's Java REST catalog reads under the same names, and reads and writes the table
files with Iceberg's ``S3FileIO``.

The local session is quiet: its JVM's log4j2 lines, stdout and stderr (Spark's start-up
warnings, the Python workers' stderr) go to ``Settings.spark_log_file`` under LEANOPS_HOME, and
Spark's console progress bars are off, so a Spark run prints what an Arrow run prints. A
cluster's session (Glue, EMR Serverless) keeps the platform's logging.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pyiceberg.catalog import Catalog
from sqlalchemy.engine import make_url

from leanops_dagster.engines.spark import jars
from leanops_dagster.iceberg.catalog import open_catalog
from leanops_dagster.settings import (
    REST_SIGNING_NAME,
    REST_SIGNING_REGION,
    REST_SIGV4_ENABLED,
    Settings,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ICEBERG_EXTENSIONS = "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
SPARK_CATALOG = "org.apache.iceberg.spark.SparkCatalog"
S3_FILE_IO = "org.apache.iceberg.aws.s3.S3FileIO"
#: pyiceberg REST properties that mean the same to Iceberg's Java REST catalog
REST_SIGV4_PROPERTIES = (REST_SIGV4_ENABLED, REST_SIGNING_NAME, REST_SIGNING_REGION)


class UnsupportedCatalog(ValueError):
    """A pyiceberg catalog the Spark engine cannot open with the same tables."""


def jdbc_catalog_properties(sqlalchemy_url: str) -> dict[str, str]:
    """Iceberg JDBC catalog properties for pyiceberg's SQL catalog URL (same database)."""
    url = make_url(sqlalchemy_url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise UnsupportedCatalog("an in-memory SQLite catalog cannot be shared with Spark")
        return {
            "type": "jdbc",
            "uri": f"jdbc:sqlite:{Path(url.database).resolve()}",
            # pyiceberg made the catalog tables (register_catalog opens it first); Iceberg's
            # own check leaves a ResultSet open, whose SQLite read lock would then block every
            # pyiceberg commit ("database is locked") or, in WAL mode, freeze the JVM's view
            "jdbc.init-catalog-tables": "false",
            "jdbc.busy_timeout": "30000",  # a busy writer is waited for, not failed
        }
    if url.get_backend_name() == "postgresql":
        port = f":{url.port}" if url.port else ""
        props = {"type": "jdbc", "uri": f"jdbc:postgresql://{url.host}{port}/{url.database}"}
        if url.username:
            props["jdbc.user"] = url.username
        if url.password:
            props["jdbc.password"] = str(url.password)
        return props
    raise UnsupportedCatalog(
        f"SQL catalog backend {url.get_backend_name()!r}: the Spark engine supports SQLite and "
        "PostgreSQL (the Debian JDBC drivers it loads)"
    )


def spark_catalog_properties(catalog_config: Mapping[str, str]) -> dict[str, str]:
    """Iceberg Spark catalog properties equivalent to pyiceberg's ``catalog_config``."""
    kind = catalog_config.get("type", "sql")
    if kind == "sql":
        props = jdbc_catalog_properties(catalog_config["uri"])
    elif kind == "glue":
        props = {"type": "glue"}
    elif kind == "rest":
        props = {"type": "rest", "uri": catalog_config["uri"]}
        if catalog_config.get(REST_SIGV4_ENABLED, "").lower() == "true":
            # an AWS endpoint (S3 Tables): signed requests, table files through S3FileIO in the
            # signing region
            props.update({k: catalog_config[k] for k in REST_SIGV4_PROPERTIES
                          if k in catalog_config})
            props["io-impl"] = S3_FILE_IO
            if REST_SIGNING_REGION in catalog_config:
                props["client.region"] = catalog_config[REST_SIGNING_REGION]
    else:
        raise UnsupportedCatalog(f"catalog type {kind!r}")
    if "warehouse" in catalog_config:
        props["warehouse"] = catalog_config["warehouse"]
    return props


def catalog_conf(catalog_name: str, catalog_config: Mapping[str, str]) -> dict[str, str]:
    """Spark SQL properties registering pyiceberg's catalog under its own name."""
    prefix = f"spark.sql.catalog.{catalog_name}"
    # no table cache: pyiceberg commits between Spark statements, which must see them
    conf = {prefix: SPARK_CATALOG, f"{prefix}.cache-enabled": "false"}
    for key, value in spark_catalog_properties(catalog_config).items():
        conf[f"{prefix}.{key}"] = value
    return conf


def engine_conf(settings: Settings) -> dict[str, str]:
    """What the engine needs of any session, local or a cluster's: Iceberg's SQL extensions,
    UTC, the catalog."""
    return {
        "spark.app.name": "leanops-spark-engine",
        "spark.sql.extensions": ICEBERG_EXTENSIONS,
        # the Arrow engine and every reader work in UTC: so must Spark's casts and days
        "spark.sql.session.timeZone": "UTC",
        **catalog_conf(settings.catalog_name, settings.catalog_config),
    }


DRIVER_JAVA_OPTIONS = "spark.driver.extraJavaOptions"
EXECUTOR_JAVA_OPTIONS = "spark.executor.extraJavaOptions"
#: JVM options of the local session that ``settings.spark_conf`` adds to rather than replaces
JAVA_OPTIONS = (DRIVER_JAVA_OPTIONS, EXECUTOR_JAVA_OPTIONS)

#: log4j2 configuration of the local session: WARN and above of everything, plus
#: SparkContext's INFO lines (version, one start and end line per job), to ``{log_file}``;
#: the loggers Spark's own defaults (log4j2-defaults.properties) quiet stay quiet.
LOG4J2_PROPERTIES = """\
# written by leanops_dagster/engines/spark/session.py for the local Spark session
rootLogger.level = warn
rootLogger.appenderRef.file.ref = file
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{{yy/MM/dd HH:mm:ss}} %p %c{{1}}: %m%n%ex
logger.context.name = org.apache.spark.SparkContext
logger.context.level = info
logger.jetty.name = org.sparkproject.jetty.util.component.AbstractLifeCycle
logger.jetty.level = error
logger.parquet.name = org.apache.parquet.CorruptStatistics
logger.parquet.level = error
"""


def log4j2_config_file(settings: Settings) -> Path:
    """The log4j2 configuration ``spark_session`` writes beside the log file."""
    return settings.spark_log_file.with_name("spark-log4j2.properties")


def spark_conf(settings: Settings) -> dict[str, str]:
    """The whole Spark configuration of the engine's local session (``settings.spark_conf``
    last: its JVM options are appended to the engine's, any other key replaces)."""
    conf = {
        "spark.master": settings.spark_master,
        **engine_conf(settings),
        # mapInArrow's Python workers run the project's interpreter (its pyarrow, numpy)
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",  # no stage progress bars on the terminal
        "spark.sql.shuffle.partitions": "4",
        DRIVER_JAVA_OPTIONS: "-Duser.timezone=UTC -Dlog4j2.configurationFile="
        + log4j2_config_file(settings).resolve().as_uri(),
        EXECUTOR_JAVA_OPTIONS: "-Duser.timezone=UTC",
    }
    if settings.spark_jars_packages:
        conf["spark.jars.packages"] = settings.spark_jars_packages
    else:
        paths = settings.spark_jars or [str(p) for p in jars.local_jars(
            settings.spark_jars_cache, jdbc=_jdbc_drivers(settings.catalog_config)
        )]
        conf["spark.jars"] = ",".join(paths)
    for key, value in settings.spark_conf.items():
        # JVM options are added after the engine's own: replacing them would drop UTC (the
        # engine's timestamps) and the quiet log configuration
        conf[key] = f"{conf[key]} {value}" if key in JAVA_OPTIONS else value
    return conf


def register_catalog(spark: SparkSession, settings: Settings) -> Catalog:
    """Open ``settings``' pyiceberg catalog and make it known to a running session."""
    catalog = open_catalog(settings)
    register_catalog_of(spark, catalog)
    return catalog


def register_catalog_of(spark: SparkSession, catalog: Catalog) -> None:
    """Make a pyiceberg catalog known to a running session under its name (catalog
    properties are runtime SQL settings): a session made elsewhere (dagster-pyspark, Glue)
    works too. pyiceberg has opened the catalog first, so an embedded catalog's folders and
    tables exist in pyiceberg's layout, which Iceberg's JDBC catalog reads as it is."""
    properties = dict(catalog.properties)
    properties.setdefault("type", _CATALOG_TYPES.get(type(catalog).__name__, ""))
    for key, value in catalog_conf(catalog.name, properties).items():
        if spark.conf.get(key, None) != value:
            spark.conf.set(key, value)


_CATALOG_TYPES = {"SqlCatalog": "sql", "GlueCatalog": "glue", "RestCatalog": "rest"}


def _jdbc_drivers(catalog_config: Mapping[str, str]) -> tuple[Path, ...]:
    uri = catalog_config.get("uri", "") if catalog_config.get("type") == "sql" else ""
    if uri.startswith("sqlite"):
        return (jars.SQLITE_JDBC_JAR,)
    if uri.startswith("postgresql"):
        return (jars.POSTGRESQL_JDBC_JAR,)
    return ()


def cluster_spark_session(settings: Settings) -> SparkSession:
    """The session of a job on a cluster (Glue, EMR Serverless): the platform gives master,
    jars (``--datalake-formats iceberg``, the release's Iceberg) and Python; the engine adds
    only ``engine_conf`` (and ``settings.spark_conf``, last)."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in {**engine_conf(settings), **settings.spark_conf}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    register_catalog(spark, settings)
    return spark


def spark_session(settings: Settings) -> SparkSession:
    """The process's SparkSession for ``settings``: created on first use with its jars;
    Spark keeps one per JVM, so a later call gets the same session with ``settings``'
    catalog registered on it (``register_catalog``)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:  # its jars are fixed: only the catalog may be new
        register_catalog(active, settings)
        return active
    # mapInArrow's Python workers: pyspark takes their interpreter from PYSPARK_PYTHON when
    # set (a user's shell or an IDE may set it to a Python without pyarrow), so the project's
    # interpreter is named there too, not only in spark.pyspark.python
    os.environ["PYSPARK_PYTHON"] = sys.executable
    conf = spark_conf(settings)
    _start_quiet_jvm(conf, settings)
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    register_catalog(spark, settings)
    return spark


def _start_quiet_jvm(conf: Mapping[str, str], settings: Settings) -> None:
    """Start the process's Spark JVM with its log4j2 lines, stdout and stderr appended to
    ``settings.spark_log_file`` (what Spark's defaults print on the terminal), and make the
    SparkContext on it with ``conf``. Spark keeps one JVM per process: once it runs, this does
    nothing (a later context reuses it and its log file)."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is not None:  # pyspark has no public accessor for it
        return
    log_file = settings.spark_log_file
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log4j2_config_file(settings).write_text(LOG4J2_PROPERTIES.format(log_file=log_file.resolve()))
    spark_conf_ = SparkConf(loadDefaults=False).setAll(list(conf.items()))
    with log_file.open("ab") as log:  # the JVM keeps its own copy of the descriptor
        gateway = launch_gateway(spark_conf_, popen_kwargs={"stdout": log, "stderr": log})
    SparkContext(conf=spark_conf_, gateway=gateway)
