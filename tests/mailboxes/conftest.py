"""Fixtures for the mail store tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from mailboxes import events, services
from tests.support.s3 import s3_blobs, s3_server  # noqa: F401 - fixtures of test_s3.py

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("worker.py")


def make_raw(
    subject: str = "Hello", *, body: bytes = b"Hi there.\r\n", spam: bool = False
) -> bytes:
    spam_header = b"X-Spam: Yes\r\n" if spam else b""
    return (
        b"From: Bob <bob@remote.example>\r\n"
        b"To: alice@example.org\r\n"
        b"Subject: " + subject.encode() + b"\r\n"
        b"Date: Sun, 29 Nov 2026 01:00:00 +0000\r\n"
        b"Message-ID: <"
        + subject.replace(" ", ".").encode()
        + b"@remote.example>\r\n"
        + spam_header
        + b"\r\n"
        + body
    )


@pytest.fixture(scope="session")
def _one_dkim_key():
    return services.generate_dkim_key()


@pytest.fixture(autouse=True)
def _reuse_dkim_key(monkeypatch, _one_dkim_key):
    # A 2048-bit RSA key per domain costs a good part of a second; one real key serves all.
    monkeypatch.setattr(services, "generate_dkim_key", lambda: _one_dkim_key)


@pytest.fixture
def raw():
    return make_raw


@pytest.fixture
def published(settings):
    """Every ChangeEvent published while the test runs, dispatched in-process at commit (the
    Redis path, which is asynchronous, has its own tests in test_events)."""
    settings.REDIS_URL = None
    seen: list[events.ChangeEvent] = []
    unsubscribe = events.subscribe(seen.append)
    yield seen
    unsubscribe()


def database_url() -> str:
    """A DATABASE_URL naming the database this test session uses (the test database)."""
    from django.db import connection

    sd = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{sd['NAME']}"
    user = quote(sd.get("USER") or "")
    password = quote(sd.get("PASSWORD") or "")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    port = f":{sd['PORT']}" if sd.get("PORT") else ""
    return f"postgres://{auth}{sd.get('HOST') or ''}{port}/{sd['NAME']}"


@pytest.fixture
def child_env(blob_dir, settings):
    """Environment for a child process sharing this test's database, blob directory and
    inline-blob limit (blob_files, when the test uses it, comes first)."""
    env = dict(os.environ)
    env["MAILHOST_BLOB_INLINE_MAX"] = str(settings.MAILHOST_BLOB_INLINE_MAX)
    env["DATABASE_URL"] = database_url()
    # The blob_dir fixture puts blobs in <tmp_path>/blobs, where MAILHOST_DATA_DIR puts them.
    env["MAILHOST_DATA_DIR"] = str(blob_dir.parent)
    env["DJANGO_SETTINGS_MODULE"] = "mailhost.settings"
    env["PYTHONPATH"] = str(REPO)
    return env


def run_worker(env: dict, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )
