"""The PII masking key reaches the pipeline resource as a Dagster EnvVar: the UI (the
repository snapshot it reads) shows the variable's name, the resource resolves the key."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import (
    RepositorySnap,
    ResourceConfigEnvVarSnap,
)

from leanops_dagster.definitions import build_definitions
from leanops_dagster.settings import PII_HASH_KEY_ENV, Settings, get_settings


@pytest.fixture
def no_key_in_env(monkeypatch):
    """LEANOPS_PII_HASH_KEY unset, and restored after the test (the resource exports it)."""
    monkeypatch.setenv(PII_HASH_KEY_ENV, "placeholder")
    monkeypatch.delenv(PII_HASH_KEY_ENV)


def _resolved_key(definitions: dg.Definitions) -> bytes:
    with dg.build_resources({"pipeline": definitions.resources["pipeline"]}) as built:
        return built.pipeline.pii_key_bytes()


def _pipeline_snapshot(definitions: dg.Definitions):
    snap = RepositorySnap.from_def(definitions.get_repository_def())
    return next(r for r in snap.resources if r.name == "pipeline")


def test_the_ui_sees_the_variable_name_not_the_key(settings, no_key_in_env):
    definitions = build_definitions(settings)
    configured = _pipeline_snapshot(definitions).configured_values
    assert configured["pii_hash_key"] == ResourceConfigEnvVarSnap(name=PII_HASH_KEY_ENV)
    shown = repr(configured)
    assert settings.pii_hash_key.get_secret_value() not in shown


def test_with_nothing_set_the_embedded_development_key_resolves(settings, no_key_in_env):
    default = Settings.model_fields["pii_hash_key"].default.get_secret_value()
    assert _resolved_key(build_definitions(settings)) == default.encode()


def test_the_variable_set_in_the_environment_is_the_key(settings, monkeypatch):
    monkeypatch.setenv(PII_HASH_KEY_ENV, "a-key-from-secrets-manager")
    from_env = get_settings(home=settings.home)
    assert from_env.pii_hash_key.get_secret_value() == "a-key-from-secrets-manager"
    assert _resolved_key(build_definitions(from_env)) == b"a-key-from-secrets-manager"


def test_the_variable_name_is_the_settings_field(monkeypatch):
    """PII_HASH_KEY_ENV is what pydantic-settings reads for Settings.pii_hash_key."""
    monkeypatch.setenv(PII_HASH_KEY_ENV, "k1")
    assert get_settings().pii_hash_key.get_secret_value() == "k1"
