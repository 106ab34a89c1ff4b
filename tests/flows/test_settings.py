"""Settings come from ARCHIVE_* variables with nested groups; secrets stay secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flows.settings import Settings


def test_nested_groups_from_the_environment(monkeypatch):
    monkeypatch.setenv("ARCHIVE_DB__URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("ARCHIVE_STORE__ENDPOINT_URL", "http://minio:9000")
    monkeypatch.setenv("ARCHIVE_STORE__SECRET_ACCESS_KEY", "hunter2")
    monkeypatch.setenv("ARCHIVE_INGEST__CONCURRENCY", "3")
    monkeypatch.setenv("ARCHIVE_DEVICE__DEVICE", "cuda:1")
    s = Settings()
    assert s.db.url == "postgresql+psycopg://u@h/db"
    assert s.store.endpoint_url == "http://minio:9000"
    assert s.ingest.concurrency == 3 and s.device.device == "cuda:1"
    assert s.store.secret_access_key.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(s) and "hunter2" not in s.model_dump_json()


def test_defaults_are_the_embedded_ones(monkeypatch):
    for name in ("ARCHIVE_DB__URL", "ARCHIVE_STORE__OUTPUT"):
        monkeypatch.delenv(name, raising=False)
    s = Settings()
    assert s.db.url == "sqlite:///./archive.db"
    assert s.store.output.startswith("file://")


def test_invalid_values_are_refused(monkeypatch):
    monkeypatch.setenv("ARCHIVE_INGEST__BATCH_SIZE", "0")
    with pytest.raises(ValidationError):
        Settings()
