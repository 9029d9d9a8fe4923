"""/healthz (issue 18): 200 for GET and HEAD while the database answers and the blob storage
takes a probe; 503 naming the failing part otherwise."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from mailhost import health

pytestmark = pytest.mark.django_db


def test_healthy(client, blob_dir):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content.decode().splitlines() == ["ok", "database: ok", "storage: ok"]
    head = client.head("/healthz")
    assert head.status_code == 200
    assert head.content == b""
    assert client.post("/healthz").status_code == 405
    assert list(blob_dir.rglob("probe-*")) == []  # the probe is gone again


def test_storage_unwritable(client, settings, tmp_path):
    # Root may write anywhere, so the blob directory lies under a regular file instead.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings.STORAGES = {
        **settings.STORAGES,
        "blobs": {
            "BACKEND": "mailboxes.storage.DurableFileSystemStorage",
            "OPTIONS": {"location": str(blocker / "blobs")},
        },
    }
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.content.decode().splitlines() == [
        "failing: storage",
        "database: ok",
        "storage: failing",
    ]
    assert client.head("/healthz").status_code == 503


def test_database_down(client, blob_dir, monkeypatch):
    class Unreachable:
        def cursor(self):
            raise OperationalError("connection refused")

    monkeypatch.setattr(health, "connection", Unreachable())
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.content.decode().startswith("failing: database\n")
