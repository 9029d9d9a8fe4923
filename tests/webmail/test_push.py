"""New mail pushed to the page: the long-poll answers when a change event names the mailbox."""

from __future__ import annotations

import threading
import time

import pytest

from tests.webmail.conftest import deliver, make_raw
from webmail import push

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_stale_version_is_answered_at_once(web, inbox):
    started = time.perf_counter()
    data = web.get("/api/wait/?v=old").json()
    assert time.perf_counter() - started < 1
    assert data["held"] is True and data["retry"] == 0
    assert any(f["id"] == inbox.pk for f in data["folders"])
    assert data["v"] == web.get("/api/status/").json()["v"]


def test_delivery_ends_the_wait_at_once(web, inbox):
    version = web.get("/api/status/").json()["v"]
    timer = threading.Timer(0.5, lambda: deliver(make_raw(subject="live")))
    timer.start()
    started = time.perf_counter()
    data = web.get(f"/api/wait/?v={version}").json()
    waited = time.perf_counter() - started
    timer.join()
    assert 0.4 < waited < 2, waited  # the event, not the 20 s hold, ended it
    entry = next(f for f in data["folders"] if f["id"] == inbox.pk)
    assert entry["total"] == 1 and entry["unseen"] == 1 and data["v"] != version


def test_nothing_new_is_answered_after_the_hold(web, inbox, monkeypatch):
    monkeypatch.setattr(push, "HOLD_SECONDS", 0.3)
    version = web.get("/api/status/").json()["v"]
    started = time.perf_counter()
    data = web.get(f"/api/wait/?v={version}").json()
    assert 0.3 <= time.perf_counter() - started < 2
    assert data["v"] == version and data["held"] is True


def test_another_mailbox_does_not_wake_the_wait(web, inbox, bob, monkeypatch):
    monkeypatch.setattr(push, "HOLD_SECONDS", 1.0)
    version = web.get("/api/status/").json()["v"]
    timer = threading.Timer(0.2, lambda: deliver(make_raw(to="bob@example.org"), "bob@example.org"))
    timer.start()
    started = time.perf_counter()
    data = web.get(f"/api/wait/?v={version}").json()
    timer.join()
    assert time.perf_counter() - started >= 1.0
    assert data["v"] == version


def test_waits_are_capped_per_mailbox_and_per_process(settings):
    settings.MAILHOST_WEB_THREADS = 8
    assert push.process_cap() == 4
    with push.waiter(1) as a, push.waiter(1) as b, push.waiter(1) as c:
        assert a is not None and b is not None and c is None  # two tabs held, the third not
        with push.waiter(2) as d, push.waiter(3) as e, push.waiter(4) as f:
            assert d is not None and e is not None and f is None  # half the pool in all
            assert push.held_now() == 4
    assert push.held_now() == 0
    with push.waiter(1) as again:
        assert again is not None


def test_capped_wait_tells_the_page_to_come_back_later(web, inbox, alice, monkeypatch):
    monkeypatch.setattr(push, "PER_MAILBOX_CAP", 0)
    version = web.get("/api/status/").json()["v"]
    started = time.perf_counter()
    data = web.get(f"/api/wait/?v={version}").json()
    assert time.perf_counter() - started < 1
    assert data["held"] is False and data["retry"] == push.FALLBACK_SECONDS


def test_wait_needs_a_session(client):
    assert client.get("/api/wait/").status_code in {302, 401}
