"""The hop from the event loop to the database: IMAP's own worker threads (a leaf module)."""

from __future__ import annotations

import asyncio
import functools

from django.conf import settings
from django.db import close_old_connections

from mailboxes.groupcommit import shared_where_writers_take_turns
from protocols.common.dbpool import DbPool

_pool: DbPool | None = None


def _db_executor() -> DbPool:
    # IMAP's own pool (MAILHOST_IMAP_WORKER_THREADS): under runmail, SMTP and POP3 do not
    # compete with it for the loop's small default executor.
    global _pool
    if _pool is None:
        _pool = DbPool(settings.MAILHOST_IMAP_WORKER_THREADS, "imap-db")
    return _pool


def db(fn, *args, **kwargs) -> asyncio.Future:
    """Run a sync service/selector in a worker thread (never on the event loop), on a usable
    database connection: one left broken by a dropped backend or a database restart is
    replaced first, as SMTP and POP3 do."""

    def call():
        close_old_connections()
        return fn(*args, **kwargs)

    # Not asgiref's sync_to_async: that one copies and restores the context around every
    # call, a cost paid on each of a command's database hops, for context these calls do
    # not use.
    return _db_executor().run(asyncio.get_running_loop(), call)


def together(fn, *, synced: bool):  # noqa: ANN001, ANN201
    """fn(...) for a worker thread, run as a piece of the group committer's transaction
    (mailboxes/groupcommit.py) on SQLite: the writes this process's other sessions make
    meanwhile share its writer lock and its commit (synced when any piece is `synced`),
    instead of each thread waiting its turn for the lock, a hand-off of the lock and of the
    GIL a transaction (issue 22). For a service that is one transaction of its own (a
    savepoint there), and may run twice (a batch is run again, each piece in its own
    savepoint, when one piece fails). On PostgreSQL each runs alone as before
    (groupcommit.shared_where_writers_take_turns)."""

    @functools.wraps(fn)
    def piece(*args, **kwargs):  # noqa: ANN202
        return shared_where_writers_take_turns(
            functools.partial(fn, *args, **kwargs), synced=synced
        )

    return piece


def close_db_connections() -> None:
    """Close every worker thread's database connection (at shutdown; blocking)."""
    if _pool is not None:
        _pool.close_connections()
