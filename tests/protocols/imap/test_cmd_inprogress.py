"""Transcripts: INPROGRESS (RFC 9585): a long FETCH reports how far it is, a long SEARCH that
it is still at work."""

from __future__ import annotations

import time

import pytest

from mailboxes import services
from protocols.imap import search as search_keys
from protocols.imap import session as imap_session

pytestmark = pytest.mark.django_db(transaction=True)

RAW = b"From: bob@example.net\r\nSubject: s\r\n\r\nbody\r\n"


def test_fetch_reports_progress(client, monkeypatch):
    for _ in range(450):
        services.message_deliver(raw=RAW, recipients=["alice@example.org"])
    c = client()
    assert b"INPROGRESS" in c.cmd("c1", "CAPABILITY")[0].split()
    c.cmd("s1", "SELECT INBOX")
    monkeypatch.setattr(imap_session, "PROGRESS_INTERVAL", 3600.0)
    lines = c.cmd("f0", "FETCH 1:* (BODY.PEEK[])")
    assert not any(b"INPROGRESS" in line for line in lines)  # within the interval: nothing
    monkeypatch.setattr(imap_session, "PROGRESS_INTERVAL", 0.0)
    lines = c.cmd("f1", "FETCH 1:* (BODY.PEEK[])")
    progress = [line for line in lines if b"INPROGRESS" in line]
    assert progress == [
        b'* OK [INPROGRESS ("f1" 200 450)] Still working',
        b'* OK [INPROGRESS ("f1" 400 450)] Still working',
    ]
    assert lines[-1] == b"f1 OK Completed"


def test_slow_search_says_it_is_at_work(client, monkeypatch):
    services.message_deliver(raw=RAW, recipients=["alice@example.org"])
    real = search_keys.search_full

    def slow(*args, **kwargs):
        time.sleep(0.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(search_keys, "search_full", slow)
    monkeypatch.setattr(imap_session, "PROGRESS_INTERVAL", 0.1)
    c = client()
    c.cmd("s1", "SELECT INBOX")
    lines = c.cmd("q1", "SEARCH SUBJECT s")
    progress = [line for line in lines if b"INPROGRESS" in line]
    assert 1 <= len(progress) <= 6
    assert set(progress) == {b'* OK [INPROGRESS ("q1" NIL NIL)] Still working'}
    assert lines[-2:] == [b"* SEARCH 1", b"q1 OK Completed"]
