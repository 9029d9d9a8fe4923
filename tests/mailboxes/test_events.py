"""Change events: published on commit, in-process or through Redis pub/sub."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from django.db import transaction

from mailboxes import events, services
from mailboxes.events import ChangeEvent
from mailboxes.selectors import folder_get
from tests.mailboxes.conftest import make_raw, run_worker

pytestmark = pytest.mark.django_db(transaction=True)

REDIS_URL = os.environ.get("REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set")


class Collector:
    def __init__(self):
        self.events: list[ChangeEvent] = []
        self.threads: set[str] = set()
        self.cond = threading.Condition()

    def __call__(self, event: ChangeEvent) -> None:
        with self.cond:
            self.events.append(event)
            self.threads.add(threading.current_thread().name)
            self.cond.notify_all()

    def wait_for(self, predicate, timeout: float = 10.0) -> list[ChangeEvent]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self.events):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching event; got {self.events}")
                self.cond.wait(left)
            return list(self.events)


@pytest.fixture
def collector():
    c = Collector()
    unsubscribe = events.subscribe(c)
    yield c
    unsubscribe()


def kinds_for(evs, folder, *, with_folders: bool = False):
    return [
        (e.kind, e.uids)
        for e in evs
        if e.folder_id == folder.pk and (with_folders or e.kind != "folders")
    ]


def exercise(alice) -> tuple:
    """One of every write, each in its own transaction."""
    inbox = folder_get(alice, "INBOX")
    trash = folder_get(alice, "Trash")
    services.message_deliver(raw=make_raw("a"), recipients=["alice@example.org"])
    services.message_append(folder=inbox, raw=make_raw("b"))
    services.messages_store_flags(folder=inbox, uids=[1], flags=["\\Deleted"], mode="add")
    services.messages_copy(source=inbox, uids=[2], target=trash)
    services.messages_move(source=inbox, uids=[2], target=trash)
    services.messages_expunge(folder=inbox)
    folder = services.folder_create(mailbox=alice, name="New")
    services.folder_rename(folder=folder, new_name="Newer")
    services.folder_delete(folder=folder)
    return inbox, trash, folder


EXPECTED_INBOX = [
    ("exists", (1,)),
    ("exists", (2,)),
    ("flags", (1,)),
    ("expunge", (2,)),
    ("expunge", (1,)),
]
EXPECTED_TRASH = [("exists", (1,)), ("exists", (2,))]
EXPECTED_NEW = [("folders", ()), ("folders", ()), ("folders", ())]


def test_in_process_events_for_every_write(settings, make_mailbox, collector):
    settings.REDIS_URL = None
    alice = make_mailbox("alice@example.org")
    inbox, trash, new = exercise(alice)
    evs = collector.events
    assert kinds_for(evs, inbox) == EXPECTED_INBOX
    assert kinds_for(evs, trash) == EXPECTED_TRASH
    assert kinds_for(evs, new, with_folders=True) == EXPECTED_NEW
    assert all(e.mailbox_id == alice.pk for e in evs)
    # MODSEQs in events are the folder's new HIGHESTMODSEQ, increasing.
    inbox_modseqs = [e.modseq for e in evs if e.folder_id == inbox.pk]
    assert inbox_modseqs == sorted(set(inbox_modseqs))


def test_no_event_before_commit_and_none_after_rollback(settings, make_mailbox, collector):
    settings.REDIS_URL = None
    alice = make_mailbox("alice@example.org")
    inbox = folder_get(alice, "INBOX")
    collector.events.clear()
    with transaction.atomic():
        services.message_append(folder=inbox, raw=make_raw())
        assert collector.events == []
    assert [e.kind for e in collector.events] == ["exists"]
    collector.events.clear()
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            services.message_append(folder=inbox, raw=make_raw())
            raise RuntimeError("roll back")
    assert collector.events == []


def test_event_json_round_trip():
    event = ChangeEvent(1, 2, "flags", (3, 4), 5)
    assert ChangeEvent.from_json(event.to_json()) == event
    assert json.loads(event.to_json())["uids"] == [3, 4]


def test_an_events_redis_message_is_its_fields_and_origin():
    from dataclasses import asdict

    for event in (
        ChangeEvent(1, 2, "exists", (3,), 4),
        ChangeEvent(7, 0, events.SIGN_OUT, modseq=1_700_000_000_000_000_000),
        ChangeEvent(1, 2, "expunge", tuple(range(5000)), 2**40),
        ChangeEvent(3, 4, "folders"),
    ):
        wire = events._wire(event)
        assert wire == json.dumps(dict(asdict(event), origin=events._origin()))
        assert ChangeEvent.from_json(wire) == event


@needs_redis
def test_redis_events_for_every_write(settings, make_mailbox, collector):
    settings.REDIS_URL = REDIS_URL
    events.subscribe(lambda e: None)()  # make sure the listener runs for this URL
    import redis

    raw_listener = redis.Redis.from_url(REDIS_URL).pubsub(ignore_subscribe_messages=True)
    raw_listener.subscribe(events.channel())
    raw_listener.get_message(timeout=1)
    alice = make_mailbox("alice@example.org")
    inbox, trash, new = exercise(alice)
    evs = collector.wait_for(lambda evs: len(kinds_for(evs, new, with_folders=True)) >= 3)
    assert kinds_for(evs, inbox) == EXPECTED_INBOX
    assert kinds_for(evs, trash) == EXPECTED_TRASH
    # Heard in this process at once, by the thread that committed, and not again when the
    # Redis listener gets this process's own event back.
    assert collector.threads == {threading.current_thread().name}
    # And the events really travel through Redis, on this database's channel.
    seen = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(seen) < len(evs):
        message = raw_listener.get_message(timeout=0.5)
        if message:
            seen.append(ChangeEvent.from_json(message["data"]))
    raw_listener.close()
    assert [e for e in seen if e.mailbox_id == alice.pk] == [
        e for e in evs if e.mailbox_id == alice.pk
    ]
    assert events.channel() == f"mailhost:changes:{REDIS_URL.rsplit('/', 1)[-1]}"


@needs_redis
def test_events_published_on_a_lost_redis_connection_go_on_a_new_one(settings):
    """The pooled connection that PUBLISHes was closed by the server since its last use:
    the events are sent again on a new one, in order (as redis-py retries a command)."""
    import redis

    from mailhost import redisconn

    settings.REDIS_URL = REDIS_URL
    listener = redis.Redis.from_url(REDIS_URL).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(events.channel())
    listener.get_message(timeout=1)
    sent = [ChangeEvent(1, 2, "exists", (n,), n) for n in range(1, 4)]
    events._publish([events._wire(sent[0])])  # a connection made and pooled
    pool = redisconn.client().connection_pool
    connection = pool.get_connection()
    try:
        connection.send_command("CLIENT", "ID")
        client_id = connection.read_response()
    finally:
        pool.release(connection)
    assert redis.Redis.from_url(REDIS_URL).client_kill_filter(_id=client_id) == 1
    events._publish([events._wire(event) for event in sent[1:]])
    heard = []
    deadline = time.monotonic() + 5
    while len(heard) < 3 and time.monotonic() < deadline:
        message = listener.get_message(timeout=0.5)
        if message:
            heard.append(ChangeEvent.from_json(message["data"]))
    listener.close()
    assert heard == sent


@needs_redis
def test_redis_events_from_another_process(settings, make_mailbox, collector, child_env):
    """A delivery in one process wakes a listener (IMAP IDLE) in another."""
    settings.REDIS_URL = REDIS_URL
    alice = make_mailbox("alice@example.org")
    inbox = folder_get(alice, "INBOX")
    child_env["REDIS_URL"] = REDIS_URL
    child = run_worker(child_env, "deliver", "alice@example.org", "3", "remote")
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    evs = collector.wait_for(lambda evs: len(kinds_for(evs, inbox)) >= 3)
    assert kinds_for(evs, inbox) == [("exists", (1,)), ("exists", (2,)), ("exists", (3,))]
