"""The schema registry: the repository's schema files (source) and what is deployed.

``deploy(topic)`` validates the source files and publishes one JSON document
``<store>/<topic>.json`` holding both schemas, the content hash (``version``) and
``deployed_at``. Deploying unchanged content is a no-op (same version, same deployed_at), so the
schema gate's cursor (topic -> version) only moves when a schema really changes. The deployed
store is a local directory (default ``$LEANOPS_HOME/registry``) or ``s3://bucket/prefix``; a
document is written whole (local: temp file + rename; S3: one PUT), never half.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from leanops_dagster.constants import TOPIC_PATTERN, validate_topic
from leanops_dagster.schemas.compatibility import (
    BreakingChangeError,
    Change,
    breaking_changes,
    classify,
)
from leanops_dagster.schemas.loader import (
    SchemaFileError,
    SchemaNotFoundError,
    load_topic_dir,
    source_topics,
)
from leanops_dagster.schemas.models import TopicSchema

DEPLOYED_SUFFIX = ".json"


def content_version(schema: TopicSchema) -> str:
    """First 16 hex digits of the SHA-256 of the canonical JSON of the schema content."""
    canonical = json.dumps(schema.content(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DeployResult:
    topic: str
    version: str
    deployed_at: str
    changed: bool
    previous_version: str | None = None


class Store(Protocol):
    uri: str

    def list_names(self) -> list[str]: ...
    def list_stamps(self) -> dict[str, str]: ...
    def read(self, name: str) -> bytes | None: ...
    def write(self, name: str, data: bytes) -> None: ...


class LocalStore:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.uri = str(self.directory)

    def list_names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir() if p.is_file())

    def list_stamps(self) -> dict[str, str]:
        """Name -> a stamp that changes when the file is rewritten (mtime and size)."""
        if not self.directory.is_dir():
            return {}
        stamps = {}
        for path in self.directory.iterdir():
            with contextlib.suppress(FileNotFoundError):
                stat = path.stat()
                if path.is_file():
                    stamps[path.name] = f"{stat.st_mtime_ns}:{stat.st_size}"
        return stamps

    def read(self, name: str) -> bytes | None:
        try:
            return (self.directory / name).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, self.directory / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class S3Store:
    def __init__(self, uri: str, client: Any | None = None, **client_kwargs: Any) -> None:
        if not uri.startswith("s3://"):
            raise ValueError(f"not an S3 URI: {uri!r}")
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"S3 URI without a bucket: {uri!r}")
        self.uri = uri
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if client is None:
            import boto3

            client = boto3.client("s3", **{k: v for k, v in client_kwargs.items() if v})
        self.client = client

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def list_names(self) -> list[str]:
        names: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        start = f"{self.prefix}/" if self.prefix else ""
        for page in paginator.paginate(Bucket=self.bucket, Prefix=start, Delimiter="/"):
            for item in page.get("Contents", []):
                names.append(item["Key"][len(start):])
        return sorted(names)

    def list_stamps(self) -> dict[str, str]:
        """Name -> ETag, from the same listing (a rewritten object gets a new ETag)."""
        stamps: dict[str, str] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        start = f"{self.prefix}/" if self.prefix else ""
        for page in paginator.paginate(Bucket=self.bucket, Prefix=start, Delimiter="/"):
            for item in page.get("Contents", []):
                stamps[item["Key"][len(start):]] = f"{item.get('ETag', '')}:{item.get('Size', '')}"
        return stamps

    def read(self, name: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(name))
        except self.client.exceptions.NoSuchKey:
            return None
        return response["Body"].read()

    def write(self, name: str, data: bytes) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=self._key(name), Body=data, ContentType="application/json"
        )


class SchemaRegistry:
    """Source schema files + deployed store. Nothing here reads the environment."""

    def __init__(
        self,
        source_dir: str | Path,
        deployed_uri: str | Path,
        *,
        s3_client: Any | None = None,
        aws_region: str | None = None,
        aws_endpoint_url: str | None = None,
    ) -> None:
        self.source_dir = Path(source_dir)
        uri = str(deployed_uri)
        self.store: Store = (
            S3Store(uri, client=s3_client, region_name=aws_region, endpoint_url=aws_endpoint_url)
            if uri.startswith("s3://")
            else LocalStore(uri)
        )

    @classmethod
    def from_settings(cls, settings: Any, *, s3_client: Any | None = None) -> SchemaRegistry:
        """Source: ``settings.schema_registry`` when it is a directory (else the repository's
        ``schemas/``); deployed store: ``settings.schema_store`` if that field exists and is
        set, else ``settings.schema_registry`` when it is an ``s3://`` URI, else
        ``<home>/registry``."""
        from leanops_dagster.settings import REPO_ROOT

        registry = str(settings.schema_registry)
        explicit = getattr(settings, "schema_store", None)
        if registry.startswith("s3://"):
            source, deployed = REPO_ROOT / "schemas", registry
        else:
            source, deployed = Path(registry), str(settings.home / "registry")
        return cls(
            source,
            explicit or deployed,
            s3_client=s3_client,
            aws_region=getattr(settings, "aws_region", None),
            aws_endpoint_url=getattr(settings, "aws_endpoint_url", None),
        )

    @property
    def deployed_uri(self) -> str:
        return self.store.uri

    # --- source ----------------------------------------------------------------------------
    def source_topics(self) -> list[str]:
        return source_topics(self.source_dir)

    def load_source(self, topic: str) -> TopicSchema:
        """The source schema of ``topic``, validated (``SchemaFileError`` names file + field)."""
        return load_topic_dir(self.source_dir, validate_topic(topic))

    # --- deployed --------------------------------------------------------------------------
    def deploy(
        self, topic: str, *, now: dt.datetime | None = None, allow_breaking: bool = False
    ) -> DeployResult:
        """Validate and publish ``topic``'s source schema (no-op when unchanged).

        A breaking change (``schemas.compatibility``) raises ``BreakingChangeError`` unless
        ``allow_breaking``: only a rebuild of the topic's tables may publish one
        (``pipeline.rebuild``). This publishes the document only; ``leanops schema deploy``
        also evolves the Curated table for compatible changes (``pipeline.curated_evolution``)."""
        schema = self.load_source(topic)
        version = content_version(schema)
        current = self.deployed(topic)
        if current is not None and current.version == version:
            return DeployResult(topic, version, current.deployed_at or "", False, version)
        if not allow_breaking:
            refused = breaking_changes(classify(current, schema))
            if refused:
                raise BreakingChangeError({topic: refused})
        deployed_at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).isoformat()
        document = schema.model_copy(update={"version": version, "deployed_at": deployed_at})
        data = json.dumps(document.model_dump(mode="json"), indent=2, sort_keys=True).encode()
        self.store.write(f"{topic}{DEPLOYED_SUFFIX}", data + b"\n")
        return DeployResult(
            topic, version, deployed_at, True, current.version if current else None
        )

    def versioned_source(self, topic: str) -> TopicSchema:
        """The source schema with the version a deployment would give it."""
        schema = self.load_source(topic)
        return schema.model_copy(update={"version": content_version(schema)})

    def deploy_all(self, *, now: dt.datetime | None = None) -> list[DeployResult]:
        """Validate every source topic and refuse breaking changes first, then publish (all
        or nothing on errors)."""
        topics = self.check_all()
        return [self.deploy(topic, now=now) for topic in topics]

    def check_all(self) -> list[str]:
        """The source topics, once every one is valid and has no breaking change
        (``SchemaFileError`` / ``BreakingChangeError`` naming every problem otherwise)."""
        topics = self.source_topics()
        problems: list[str] = []
        refused: dict[str, list[Change]] = {}
        for topic in topics:
            try:
                breaking = breaking_changes(self.changes(topic))
            except SchemaFileError as exc:
                problems.append(str(exc))
                continue
            if breaking:
                refused[topic] = breaking
        if problems:
            raise SchemaFileError(self.source_dir, [("", "\n".join(problems))])
        if refused:
            raise BreakingChangeError(refused)
        return topics

    def deployed_topics(self) -> list[str]:
        return sorted(
            name.removesuffix(DEPLOYED_SUFFIX)
            for name in self.store.list_names()
            if name.endswith(DEPLOYED_SUFFIX)
            and TOPIC_PATTERN.fullmatch(name.removesuffix(DEPLOYED_SUFFIX))
        )

    def deployed(self, topic: str) -> TopicSchema | None:
        """The deployed schema of ``topic`` (with version, deployed_at), or None."""
        data = self.store.read(f"{validate_topic(topic)}{DEPLOYED_SUFFIX}")
        if data is None:
            return None
        where = f"{self.store.uri}/{topic}{DEPLOYED_SUFFIX}"
        try:
            return TopicSchema.model_validate_json(data)
        except ValidationError as exc:
            raise SchemaFileError(
                where, [(".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]
            ) from None

    def deployed_stamps(self) -> dict[str, str]:
        """Topic -> a stamp of its deployed document that changes when it is redeployed, from
        one listing of the store (no document is read): the schema gate reads only the
        documents whose stamp changed."""
        return {
            name.removesuffix(DEPLOYED_SUFFIX): stamp
            for name, stamp in self.store.list_stamps().items()
            if name.endswith(DEPLOYED_SUFFIX)
            and TOPIC_PATTERN.fullmatch(name.removesuffix(DEPLOYED_SUFFIX))
        }

    def deployed_versions(self) -> dict[str, str]:
        """Topic -> deployed version (what the schema gate sensor polls)."""
        out: dict[str, str] = {}
        for topic in self.deployed_topics():
            schema = self.deployed(topic)
            if schema is not None and schema.version:
                out[topic] = schema.version
        return out

    def load(self, topic: str) -> TopicSchema:
        """The deployed schema of ``topic``; ``SchemaNotFoundError`` if not deployed."""
        schema = self.deployed(topic)
        if schema is None:
            raise SchemaNotFoundError(
                f"topic {topic!r} has no deployed schema in {self.store.uri}: run "
                f"`leanops schema deploy {topic}`"
            )
        return schema

    def diff(self, topic: str) -> list[str]:
        """Human-readable differences, deployed -> source (empty list: identical)."""
        from leanops_dagster.schemas.diff import diff_schemas

        source = self.load_source(topic)
        return diff_schemas(self.deployed(topic), source)

    def changes(self, topic: str) -> list[Change]:
        """Every change deployed -> source, labelled compatible or breaking (empty: none)."""
        return classify(self.deployed(topic), self.load_source(topic))
