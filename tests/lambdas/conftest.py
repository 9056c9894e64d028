from __future__ import annotations

import pytest


@pytest.fixture
def aws_env(monkeypatch):
    """Fake credentials and no endpoint overrides, so moto's in-process mock serves boto3."""
    for key in list(__import__("os").environ):
        if key.startswith("AWS_ENDPOINT_URL"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
