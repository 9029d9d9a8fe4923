"""Reaching a thread's database connection and its cursor without raising AttributeError.

Python looks an attribute up on an object whose class defines __getattr__ in two steps: the
ordinary lookup first, which fails and makes an AttributeError (its message formatted), and
only then __getattr__. Django reaches a database through three such classes, so each step of
a statement paid for exceptions nobody sees (74 a message in port 25's RCPT check and
acceptance alone, 7 to 20 us of CPU a lookup on a machine at load 8):

- `connections[alias]` reads the connection from asgiref's Local (`_connections.default`),
  whose __getattr__ also asks asyncio for a running loop, which raises RuntimeError in a
  plain thread: two exceptions per lookup, and the ORM looks up several times a statement;
- the `connection` proxy (`from django.db import connection`): one more, then the lookup
  (about 8 an IMAP command in imaptest's mix: the services and selectors name it);
- the cursor wrapper's close, fetchone, fetchall, fetchmany, rowcount, lastrowid and
  description, all reached through its __getattr__ (fetch* also wrapped in a new function).

ConnectionStorage answers the first from the thread's storage directly (the same storage the
Local would use; in a thread with a running loop it asks the Local, as before), the proxy
becomes a ConnectionProxy of ours that hands a name to the connection without failing first,
CursorWrapper names the cursor's attributes, and the hot paths take `connections[alias]` once
instead of the proxy.

Django's async_unsafe check, before each cursor and connection use, asks asyncio for the
running loop with get_running_loop, which in a plain thread raises the RuntimeError the check
catches (three a cursor); refuse_in_event_loop makes the same check without one.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from asgiref.local import Local
from django.core.exceptions import SynchronousOnlyOperation
from django.db.backends import utils
from django.utils import connection as django_connection

_object_getattribute = object.__getattribute__
_running_loop = asyncio._get_running_loop  # None outside a running loop, without raising


def refuse_in_event_loop() -> None:
    """django.utils.asyncio.async_unsafe's check (SynchronousOnlyOperation in a thread running
    an event loop, unless DJANGO_ALLOW_ASYNC_UNSAFE is set), without raising elsewhere."""
    if _running_loop() is not None and not os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE"):
        raise SynchronousOnlyOperation(
            "You cannot call this from an async context - use a thread or sync_to_async."
        )


class ConnectionStorage:
    """Stands in for asgiref's thread-critical Local as django.db.connections' storage: in a
    thread without a running event loop (every database thread) the Local keeps connections
    in a threading.local, read here without going through its __getattr__; with a loop
    running, the Local's own per-context storage, unchanged."""

    __slots__ = ("_local", "_thread")

    def __init__(self, local: Local) -> None:
        object.__setattr__(self, "_local", local)
        object.__setattr__(self, "_thread", _object_getattribute(local, "_storage"))

    def __getattribute__(self, key: str) -> Any:
        if _running_loop() is None:
            return getattr(_object_getattribute(self, "_thread"), key)
        return getattr(_object_getattribute(self, "_local"), key)

    def __setattr__(self, key: str, value: Any) -> None:
        setattr(_object_getattribute(self, "_local"), key, value)

    def __delattr__(self, key: str) -> None:
        delattr(_object_getattribute(self, "_local"), key)


def install_connection_storage() -> None:
    """Put ConnectionStorage in front of django.db.connections' Local, once, if that Local
    is the thread-critical kind this was written against (asgiref 3.x); else leave it."""
    from django.db import connections

    local = connections._connections
    if isinstance(local, ConnectionStorage):
        return
    storage = getattr(type(local), "__name__", "")
    if storage != "_ThreadCriticalLocal" or not isinstance(local, Local):
        return
    connections._connections = ConnectionStorage(local)


class ConnectionProxy(django_connection.ConnectionProxy):
    """django.db.connection's class once installed (install_connection_proxy): the names the
    proxy has itself (its two attributes, its class's) as before, every other one read from
    the connection at once, where Django's __getattr__ ran only after the ordinary lookup
    had failed and made an AttributeError."""

    def __getattribute__(self, name: str) -> Any:
        if name in _PROXY_OWN:
            return _object_getattribute(self, name)
        own = _object_getattribute(self, "__dict__")
        return getattr(own["_connections"][own["_alias"]], name)


_PROXY_OWN = frozenset(dir(ConnectionProxy)) | {"_connections", "_alias"}


def install_connection_proxy() -> None:
    """Make django.db.connection (the one object every `from django.db import connection`
    holds) a ConnectionProxy of ours, once, if it is Django's own."""
    from django.db import connection

    if type(connection) is django_connection.ConnectionProxy:
        # object's own setattr: the proxy's would set it on the connection
        object.__setattr__(connection, "__class__", ConnectionProxy)


class CursorWrapper(utils.CursorWrapper):
    """Django's cursor wrapper with the DB-API attributes the ORM and the plain statements
    use named, rather than found by __getattr__ after a failed lookup; fetch* still turn the
    driver's errors into Django's."""

    def close(self) -> None:
        self.cursor.close()

    def fetchone(self):  # noqa: ANN201
        with self.db.wrap_database_errors:
            return self.cursor.fetchone()

    def fetchmany(self, size: int | None = None):  # noqa: ANN201
        with self.db.wrap_database_errors:
            if size is None:
                return self.cursor.fetchmany()
            return self.cursor.fetchmany(size)

    def fetchall(self):  # noqa: ANN201
        with self.db.wrap_database_errors:
            return self.cursor.fetchall()

    @property
    def rowcount(self) -> int:
        return self.cursor.rowcount

    @property
    def lastrowid(self):  # noqa: ANN201
        return self.cursor.lastrowid

    @property
    def description(self):  # noqa: ANN201
        return self.cursor.description
