"""mailhost/dbcursor.py: port 25's path through the database reaches its connection and its
cursor without a lookup that fails first (each failed lookup makes an AttributeError), and the
connections keep asgiref's rules: one per thread, another in a running event loop."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import pytest
from asgiref.local import Local
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends import utils
from django.utils.connection import ConnectionProxy

from delivery import accept
from mailhost.dbcursor import ConnectionStorage, CursorWrapper

# The storage's own attributes: every other name is the connections'.
LOCAL = object.__getattribute__(connections._connections, "_local")
# The classes whose __getattr__ runs only after the ordinary lookup failed.
FALLBACKS = (utils.CursorWrapper, ConnectionProxy, *type(LOCAL).__mro__)


@pytest.fixture
def fallbacks(monkeypatch):
    """Counts the calls of every FALLBACKS class's own __getattr__, by class and name."""
    calls: Counter = Counter()
    for cls in FALLBACKS:
        original = cls.__dict__.get("__getattr__")
        if original is None or cls is object:
            continue

        def counted(self, name, _original=original, _cls=cls):
            calls[(_cls.__name__, name)] += 1
            return _original(self, name)

        monkeypatch.setattr(cls, "__getattr__", counted)
    return calls


@pytest.mark.django_db(transaction=True)
def test_a_stored_message_falls_back_on_no_getattr(make_mailbox, fallbacks):
    make_mailbox("alice@example.org")
    raw = b"From: a@remote.example\r\nTo: alice@example.org\r\nSubject: x\r\n\r\nbody\r\n"

    def one() -> None:
        _, resolution = accept.recipient_verdict(
            "alice@example.org", relay_allowed=False, size=len(raw)
        )
        result = accept.message_accept(
            raw=raw,
            mail_from="a@remote.example",
            recipients=[accept.EnvelopeRecipient("alice@example.org", resolution=resolution)],
            client=accept.ClientInfo(helo="client.example", ip="192.0.2.1"),
        )
        assert result.accepted

    one()  # the first opens what later ones reuse
    fallbacks.clear()
    one()
    assert dict(fallbacks) == {}


def test_the_storage_stands_in_for_the_local():
    assert isinstance(connections._connections, ConnectionStorage)
    assert isinstance(LOCAL, Local)


@pytest.mark.django_db(transaction=True)
def test_one_connection_per_thread_and_another_in_a_running_loop():
    here = connections[DEFAULT_DB_ALIAS]
    assert connections[DEFAULT_DB_ALIAS] is here
    assert isinstance(here.cursor(), CursorWrapper)
    elsewhere = []
    thread = threading.Thread(target=lambda: elsewhere.append(connections[DEFAULT_DB_ALIAS]))
    thread.start()
    thread.join()
    assert elsewhere[0] is not here

    async def in_loop():
        return connections[DEFAULT_DB_ALIAS]

    assert asyncio.run(in_loop()) is not here  # asgiref's context storage, as before
    assert connections[DEFAULT_DB_ALIAS] is here


@pytest.mark.django_db
def test_the_cursor_s_attributes_read_through():
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1, 2 UNION ALL SELECT 3, 4")
        assert len(cursor.description) == 2
        assert cursor.fetchone() == (1, 2)
        assert cursor.fetchmany(5) == [(3, 4)]
        assert cursor.fetchall() == []


@pytest.mark.django_db(transaction=True)
def test_a_stored_message_asks_asyncio_for_no_loop_that_raises(make_mailbox, monkeypatch):
    """Django's async_unsafe check calls asyncio.get_running_loop, which raises (and the
    check catches) a RuntimeError in every database thread; on SQLite cursors and connection
    checks make theirs without it. COMMIT keeps Django's."""
    import django.utils.asyncio

    from mailhost.sqlite3.base import DatabaseWrapper

    if not isinstance(connections[DEFAULT_DB_ALIAS], DatabaseWrapper):
        pytest.skip("mailhost.sqlite3's wrapper")
    make_mailbox("alice@example.org")
    raw = b"From: a@remote.example\r\nTo: alice@example.org\r\nSubject: x\r\n\r\nbody\r\n"
    asked = Counter()
    original = django.utils.asyncio.get_running_loop

    def counted():
        asked["get_running_loop"] += 1
        return original()

    def one() -> None:
        result = accept.message_accept(
            raw=raw,
            mail_from="a@remote.example",
            recipients=["alice@example.org"],
            client=accept.ClientInfo(helo="client.example", ip="192.0.2.1"),
        )
        assert result.accepted

    one()
    monkeypatch.setattr(django.utils.asyncio, "get_running_loop", counted)
    one()
    assert asked["get_running_loop"] <= 2  # the group commit's COMMIT


@pytest.mark.django_db(transaction=True)
def test_a_cursor_in_a_running_event_loop_is_still_refused():
    from django.core.exceptions import SynchronousOnlyOperation

    async def in_loop():
        connections[DEFAULT_DB_ALIAS].cursor()

    with pytest.raises(SynchronousOnlyOperation):
        asyncio.run(in_loop())


@pytest.mark.django_db
def test_booleans_bytes_and_none_are_bound_as_before():
    """mailhost.sqlite3 names adapters for bool, bytes and None (so that the sqlite3 module
    finds them instead of failing a lookup of __adapt__); what is stored does not change."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "sqlite":
        pytest.skip("the sqlite3 module's adapters")
    import sqlite3

    assert {bool, bytes, type(None)} <= {kind for kind, _ in sqlite3.adapters}
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT %s, typeof(%s), %s, typeof(%s), %s, typeof(%s), %s",
            [True, False, b"\x00\xff", b"", None, None, 7],
        )
        assert cursor.fetchone() == (1, "integer", b"\x00\xff", "blob", None, "null", 7)


@pytest.mark.django_db
def test_the_connection_proxy_reads_through_without_failing_first(fallbacks):
    """django.db.connection is our ConnectionProxy: a name of the connection's is read from
    it at once (no AttributeError made first), the proxy's own names are its own, and what is
    set through it is set on the connection, as with Django's proxy."""
    from django.db import connection

    from mailhost.dbcursor import ConnectionProxy as OurProxy

    here = connections[DEFAULT_DB_ALIAS]
    assert type(connection) is OurProxy and isinstance(connection, ConnectionProxy)
    assert connection._alias == DEFAULT_DB_ALIAS and connection._connections is connections
    assert connection.vendor == here.vendor and connection.ops is here.ops
    assert connection.alias == DEFAULT_DB_ALIAS
    with pytest.raises(AttributeError):
        connection.no_such_attribute  # noqa: B018
    fallbacks.clear()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    assert connection.in_atomic_block is here.in_atomic_block
    assert dict(fallbacks) == {}
    connection.mailhost_probe = 1
    try:
        assert here.mailhost_probe == 1
    finally:
        del here.mailhost_probe
    assert connection == here
