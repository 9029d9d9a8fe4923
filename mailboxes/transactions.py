"""Transactions whose commit need not reach the disk before the reply.

Mail is durable before it is acknowledged (APPEND OK, SMTP 250: the WAL synced after the commit
on SQLite, mailhost/sqlite3; synchronous_commit on PostgreSQL). Flag changes, \\Recent claims,
login times and protocol caches are not mail: like Dovecot, which does not fsync its index for
flag updates, Mailhost commits them without waiting for the sync. Nor is an expunge (a power
loss may bring the messages back, as Dovecot's unsynced unlinks and index may), unless it
removes blob files: those go only after a synced commit (sync_this_transaction), so that no
row that a power loss brings back names a file already gone. The database stays consistent
whatever happens (in WAL mode a commit that was not synced is either wholly there or wholly
gone after a power loss); what a power loss may cost is the last fraction of a second of such
changes. Any later synced commit (the next APPEND or delivery) syncs them too, since the log is
written in order. A clean shutdown or a crash of the process alone loses nothing: the commit is
in the operating system's hands before this returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, connections, transaction


@contextmanager
def unsynced_atomic(*, statements_together: bool = False) -> Iterator[None]:
    """transaction.atomic() whose commit does not wait for the disk (see the module's text).
    Inside another transaction it is a savepoint of that one, synced as that one is.
    `statements_together`: the block makes statements together (connection.
    statements_together), with which PostgreSQL's BEGIN and SET LOCAL then go instead of in
    a round trip of their own (mailhost/postgresql)."""
    # The connection taken once: each read of django.db.connection goes through the proxy's
    # __getattribute__ and connections[alias] (four to six a transaction).
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.in_atomic_block:
        with transaction.atomic():
            yield
        return
    if connection.vendor == "sqlite":
        # The backend (mailhost/sqlite3) runs every transaction at synchronous=NORMAL and
        # syncs the WAL after a durable commit, outside the writer lock: this one it skips.
        connection.synced_commit = False
        try:
            with transaction.atomic():
                yield
        finally:
            connection.synced_commit = True
        return
    connection.synced_commit = False
    try:
        with transaction.atomic(), connection.begin_with_first_statement(unsynced=True):
            if not statements_together:
                # For this transaction only (SET LOCAL ends with it), sent with its BEGIN: one
                # round trip for both, where psycopg makes two.
                with connection.statements_together():
                    pass
            yield
    finally:
        connection.synced_commit = True


def sync_this_transaction() -> None:
    """The transaction in progress, an unsynced_atomic one, commits synced after all: for work
    that follows its commit outside the database (a blob file removed once no row names it),
    which must not happen before the rows are on the disk. Nothing to do in a synced one."""
    connection = connections[DEFAULT_DB_ALIAS]
    if getattr(connection, "synced_commit", True):
        return
    if connection.vendor != "sqlite":
        connection.commit_synced()  # its SET LOCAL undone, or never sent
    connection.synced_commit = True
