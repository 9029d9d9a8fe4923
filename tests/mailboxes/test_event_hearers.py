"""Change events between worker processes go only where something hears them (issue 22):
a delivery to a mailbox that no IMAP session or webmail long-poll of another worker watches
sends it nothing, and wakes no event loop here. Two workers' fan-out sockets and shared
counts, as the supervisor makes them, in this process: worker 0 sends, the test reads
worker 1's socket (a real datagram socket)."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from django.db import transaction

from mailboxes import events, selectors, services
from mailboxes.events import ChangeEvent
from mailhost import fanout, listeners


@pytest.fixture
def two_workers(monkeypatch, settings):
    """This process as worker 0 of two; `as_worker(1)` runs a block as the other worker.
    Without Redis (the workers' fan-out carries the events)."""
    settings.REDIS_URL = ""
    monkeypatch.setattr(fanout, "_pairs", [])
    fanout.prepare(2)
    shared = listeners.SharedCounts(2)
    other = listeners.SharedCounts(2, fd=shared.fd, key=shared.key)
    other.slot = 1
    monkeypatch.setattr(listeners, "_shared", shared)
    monkeypatch.setattr(fanout, "_slot", 0)
    receive = fanout._pairs[1][0]
    receive.setblocking(False)

    @contextlib.contextmanager
    def as_worker(slot: int):
        monkeypatch.setattr(listeners, "_shared", other if slot else shared)
        monkeypatch.setattr(fanout, "_slot", slot)
        try:
            yield
        finally:
            monkeypatch.setattr(listeners, "_shared", shared)
            monkeypatch.setattr(fanout, "_slot", 0)

    def heard() -> list[dict]:
        """What worker 1 was sent (the datagrams waiting on its socket)."""
        messages = []
        while True:
            try:
                topic, message = json.loads(receive.recv(fanout.MAX_DATAGRAM))
            except BlockingIOError:
                return messages
            assert topic == events.TOPIC
            messages.append(message)

    yield as_worker, heard
    for receive_end, send_end in fanout._pairs:
        receive_end.close()
        send_end.close()


def test_an_event_nobody_watches_is_not_sent(two_workers):
    """Before: every event went to every other worker."""
    _, heard = two_workers
    events._send(ChangeEvent(7, 70, "exists", (1,), 5))
    events._send(ChangeEvent(7, 70, "flags", (1,), 6))
    assert heard() == []


def test_an_event_reaches_the_worker_that_watches_its_mailbox(two_workers):
    as_worker, heard = two_workers
    with as_worker(1):
        events.watch(7)
    events._send(ChangeEvent(7, 70, "exists", (1,), 5))
    events._send(ChangeEvent(8, 80, "exists", (1,), 5))  # another mailbox: not sent
    assert [m["mailbox_id"] for m in heard()] == [7]
    with as_worker(1):
        events.unwatch(7)
    events._send(ChangeEvent(7, 70, "exists", (2,), 6))
    assert heard() == []


def test_a_sign_out_reaches_every_worker(two_workers):
    """POP3 and ManageSieve sessions hear sign-outs without watching."""
    _, heard = two_workers
    events._send(ChangeEvent(7, 0, events.SIGN_OUT, modseq=1))
    assert [m["kind"] for m in heard()] == [events.SIGN_OUT]


def test_a_waiting_indexer_is_woken_once(two_workers):
    """The indexer of worker 1, about to look for new mail, is sent the next delivery's
    event, not every one after it, until it looks again."""
    as_worker, heard = two_workers
    with as_worker(1):
        events.wake_on_exists()
    events._send(ChangeEvent(7, 70, "flags", (1,), 5))
    events._send(ChangeEvent(7, 70, "exists", (1,), 6))
    events._send(ChangeEvent(7, 70, "exists", (2,), 7))
    assert [m["modseq"] for m in heard()] == [6]


def test_a_watcher_that_registers_after_the_commit_reads_the_change(
    two_workers, make_mailbox, django_capture_on_commit_callbacks
):
    """The ordering that makes skipping safe: the sender reads the counts after the commit;
    a watcher registers before it reads. Registered between the commit and the sender's
    check, it is sent the event; registered after the check, its read sees the message."""
    as_worker, heard = two_workers
    alice = make_mailbox("alice@example.org")
    inbox = selectors.folder_get(alice, "INBOX")
    counts = []

    def register_and_read() -> None:  # runs after the COMMIT, before the event is sent
        with as_worker(1):
            events.watch(alice.pk)
        counts.append(selectors.folder_get(alice, "INBOX").message_count)

    with django_capture_on_commit_callbacks(execute=True):  # in order, as after a COMMIT
        transaction.on_commit(register_and_read)
        services.message_deliver(raw=b"Subject: a\r\n\r\nhi\r\n", recipients=[alice.address])
    assert counts == [inbox.message_count + 1]
    assert [m["kind"] for m in heard()] == ["exists"]
    with as_worker(1):
        events.unwatch(alice.pk)
    with django_capture_on_commit_callbacks(execute=True):
        services.message_deliver(raw=b"Subject: b\r\n\r\nhi\r\n", recipients=[alice.address])
    assert heard() == []
    with as_worker(1):
        events.watch(alice.pk)  # after the event was not sent: the read sees the message
        assert selectors.folder_get(alice, "INBOX").message_count == inbox.message_count + 2
        events.unwatch(alice.pk)


def test_imap_wakes_its_loop_only_for_a_watched_mailbox():
    """Before: every event, of any mailbox, was a call_soon_threadsafe (a write to the loop's
    self-pipe and a wake-up of the loop)."""
    from protocols.imap.server import ImapServer

    loop = asyncio.new_event_loop()
    woken = []
    original = loop.call_soon_threadsafe
    loop.call_soon_threadsafe = lambda *args: woken.append(args) or original(*args)
    server = ImapServer(loop)
    try:
        server._on_event_threadsafe(ChangeEvent(9, 90, "exists", (1,), 5))
        assert woken == []
        events.watch(9)
        try:
            server._on_event_threadsafe(ChangeEvent(9, 90, "exists", (1,), 5))
            server._on_event_threadsafe(ChangeEvent(10, 100, events.SIGN_OUT))
        finally:
            events.unwatch(9)
        assert len(woken) == 2
    finally:
        server.unsubscribe()
        loop.close()
