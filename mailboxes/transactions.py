"""Transactions whose commit need not reach the disk before the reply.

Mail is durable before it is acknowledged (APPEND OK, SMTP 250: synchronous=FULL on SQLite,
synchronous_commit on PostgreSQL). Flag changes, \\Recent claims, login times and protocol
caches are not mail: like Dovecot, which does not fsync its index for flag updates, Mailhost
commits them without waiting for the sync. The database stays consistent whatever happens (in
WAL mode a commit that was not synced is either wholly there or wholly gone after a power
loss); what a power loss may cost is the last fraction of a second of such changes. Any later
synced commit (the next APPEND or delivery) syncs them too, since the log is written in order.
A clean shutdown or a crash of the process alone loses nothing: the commit is in the
operating system's hands before this returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction


@contextmanager
def unsynced_atomic() -> Iterator[None]:
    """transaction.atomic() whose commit does not wait for the disk (see the module's text).
    Inside another transaction it is a savepoint of that one, synced as that one is."""
    if connection.in_atomic_block:
        with transaction.atomic():
            yield
        return
    if connection.vendor == "sqlite":
        # Set outside the transaction, restored after it: the pragma belongs to the
        # connection, which the next (synced) writer of this thread uses as it is. The level
        # to restore is the connection's configured one (its init_command, the same on every
        # reconnect): read once per connection object, not on every STORE.
        # The pragmas go to the sqlite3 connection itself: through Django's cursor wrappers
        # they cost more than the STORE's own statements.
        connection.ensure_connection()
        previous = getattr(connection, "mailhost_synchronous", None)
        if previous is None:
            (previous,) = connection.connection.execute("PRAGMA synchronous").fetchone()
            connection.mailhost_synchronous = previous
        connection.connection.execute("PRAGMA synchronous=NORMAL")
        try:
            with transaction.atomic():
                yield
        finally:
            # A connection closed meanwhile (an error) comes back with its configured level.
            if connection.connection is not None:
                connection.connection.execute(f"PRAGMA synchronous={int(previous)}")
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # For this transaction only (SET LOCAL ends with it).
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        yield
