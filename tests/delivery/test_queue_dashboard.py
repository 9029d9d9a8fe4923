"""The admin's queue dashboard without REDIS_URL: the embedded queue's state, never whatever
Redis answers on 127.0.0.1:6379 (somebody else's), and no 500 when none does."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# In a process whose environment has no REDIS_URL (settings are read once, at start): a staff
# user gets the admin's queue pages while every socket connection is recorded.
SCRIPT = r"""
import json, socket, threading
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth.models import User
from django.test import Client
from delivery.worker import DeliveryService
from mailboxes import services
from delivery.models import OutboundMessage, OutboundRecipient

blob = services.blob_store(b"Subject: x\r\n\r\nx\r\n")
message = OutboundMessage.objects.create(queue_id="Q1", blob=blob, mail_from="a@example.org")
OutboundRecipient.objects.create(message=message, address="b@example.net", status="deferred")
OutboundRecipient.objects.create(message=message, address="c@example.net")
service = DeliveryService(threads=2)
service.start()

connections = []
real_connect = socket.socket.connect
def recording_connect(self, address):
    connections.append(list(address) if isinstance(address, tuple) else address)
    return real_connect(self, address)
socket.socket.connect = recording_connect

client = Client()
client.force_login(User.objects.create_superuser("admin", "a@example.org", "x" * 20))
pages = {}
for path in ("/admin/rq/", "/admin/", "/admin/delivery/outboundmessage/",
             "/admin/django_rq/dashboard/", "/admin/rq/queues/0/"):
    response = client.get(path)
    pages[path] = [response.status_code, response.content.decode(errors="replace")]
service.close()
service.join(10)
print(json.dumps({"pages": pages, "connections": connections}))
"""


def redis_listening(port: int = 6379) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def run_script(script: str, tmp_path: Path, **env: str) -> dict:
    """`script` in a Django process of its own without REDIS_URL (unless `env` names one) on
    SQLite in `tmp_path`: the JSON of its last line."""
    environment = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    environment.update(
        MAILHOST_DATA_DIR=str(tmp_path),
        MAILHOST_HOSTNAME="mx.test.example",
        DJANGO_SETTINGS_MODULE="mailhost.settings",
        **env,
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=environment,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_without_redis_url_the_dashboard_shows_the_embedded_queue(tmp_path):
    # The sweeper must not deliver the rows under test.
    outcome = run_script(SCRIPT, tmp_path, MAILHOST_SWEEP_INTERVAL="3600")
    pages = outcome["pages"]
    status, body = pages["/admin/rq/"]
    assert status == 200, body[:2000]
    assert "embedded" in body and 'id="spool-counts"' in body
    # One queued and one deferred recipient, two delivery threads of this process.
    assert "<td>1</td><td>1</td>" in body, body
    assert "delivery-0, delivery-1" in body
    assert pages["/admin/delivery/outboundmessage/"][0] == 200
    assert 'href="/admin/rq/"' in pages["/admin/delivery/outboundmessage/"][1]
    assert pages["/admin/"][0] == 200
    # django-rq's own views, which would connect to 127.0.0.1:6379, are not there.
    assert pages["/admin/django_rq/dashboard/"][0] == 404
    assert pages["/admin/rq/queues/0/"][0] == 404
    redis_ports = [c for c in outcome["connections"] if isinstance(c, list) and c[1] == 6379]
    assert not redis_ports, outcome["connections"]
    if not redis_listening():  # CI has one; the page must not depend on it either way
        print("no Redis on 127.0.0.1:6379 here: checked that no connection was tried")


def test_rqworker_without_redis_url_refuses_rather_than_use_127_0_0_1_6379(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(MAILHOST_DATA_DIR=str(tmp_path), MAILHOST_HOSTNAME="mx.test.example")
    result = subprocess.run(
        [sys.executable, "manage.py", "rqworker", "--burst"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "mailhost: configuration error: REDIS_URL is unset"
    )


LOADED = r"""
import importlib, json, sys
import django
django.setup()
from django.core.management import get_commands
from mailhost import runner
for family in runner.ALL:
    importlib.import_module(family)
loaded = sorted(m for m in ("redis", "rq", "django_rq") if m in sys.modules)
print(json.dumps({"loaded": loaded, "rqworker": get_commands()["rqworker"]}))
"""


@pytest.mark.parametrize("redis_url", [None, "redis://127.0.0.1:6379/15"])
def test_rq_and_the_redis_client_are_loaded_only_with_redis_url(tmp_path, redis_url):
    # Issue 22: without REDIS_URL no process uses them (about 10 MiB of a runmail tree).
    # With it, nothing connects at import time.
    outcome = run_script(LOADED, tmp_path, **({"REDIS_URL": redis_url} if redis_url else {}))
    if redis_url:
        assert "django_rq" in outcome["loaded"] and outcome["rqworker"] == "django_rq"
    else:
        assert outcome == {"loaded": [], "rqworker": "delivery"}
