"""A delivery in another process wakes an IDLE session here (Redis pub/sub change events)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from protocols.imap import responses as r

pytestmark = pytest.mark.django_db(transaction=True)

DELIVER = """
import time, django
django.setup()
from mailboxes import services
services.message_deliver(raw=b"Subject: x\\r\\n\\r\\nhi\\r\\n", recipients=["alice@example.org"])
print(time.monotonic(), flush=True)
"""


def deliver_elsewhere(tmp_path) -> subprocess.Popen:
    """message_deliver in another process (against the same PostgreSQL and Redis); it prints
    the monotonic time of the delivery."""
    if connection.vendor != "postgresql":
        pytest.skip("the other process needs the same server database")
    db = connection.settings_dict
    url = (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "MAILHOST_DATA_DIR": str(tmp_path / "other"),
        "DJANGO_SETTINGS_MODULE": "mailhost.settings",
    }
    root = Path(__file__).resolve().parents[3]
    return subprocess.Popen(
        [sys.executable, "-c", DELIVER], env=env, cwd=root, stdout=subprocess.PIPE, text=True
    )


@pytest.mark.skipif(not settings.REDIS_URL, reason="change events cross processes via Redis")
def test_idle_woken_by_delivery_in_another_process(client, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the other process needs the same server database")
    c = client()
    c.cmd("a0", "SELECT INBOX")
    c.send("a1 IDLE\r\n")
    assert c.line() == r.CONTINUE_IDLE.rstrip(b"\r\n")
    other = deliver_elsewhere(tmp_path)
    try:
        delivered_at = float(other.stdout.readline())
        assert c.line() == b"* 1 EXISTS"
        assert time.monotonic() - delivered_at < 1.0
    finally:
        other.wait(60)
    assert other.returncode == 0
    c.send("DONE\r\n")
    assert c.until("a1")[-1] == r.OK_IDLE_DONE.tagged("a1").rstrip(b"\r\n")


@pytest.mark.skipif(not settings.REDIS_URL, reason="change events cross processes via Redis")
def test_search_context_updated_by_delivery_in_another_process(client, tmp_path):
    """RFC 5267 4.3: an UPDATE context hears of an arrival filed by another process."""
    if connection.vendor != "postgresql":
        pytest.skip("the other process needs the same server database")
    c = client()
    c.cmd("a0", "SELECT INBOX")
    assert c.cmd("s1", "UID SEARCH RETURN (UPDATE COUNT) UNSEEN") == [
        b'* ESEARCH (TAG "s1") UID COUNT 0',
        b"s1 OK Completed",
    ]
    c.send("a1 IDLE\r\n")
    assert c.line() == r.CONTINUE_IDLE.rstrip(b"\r\n")
    other = deliver_elsewhere(tmp_path)
    try:
        float(other.stdout.readline())
        assert c.line() == b"* 1 EXISTS"
        assert c.line() == b"* 1 RECENT"
        assert c.line() == b'* ESEARCH (TAG "s1") UID ADDTO (0 1)'
    finally:
        other.wait(60)
    assert other.returncode == 0
    c.send("DONE\r\n")
    assert c.until("a1")[-1] == r.OK_IDLE_DONE.tagged("a1").rstrip(b"\r\n")
