"""The hop from the event loop to the database: IMAP's own worker threads (a leaf module)."""

from __future__ import annotations

import asyncio
import threading
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections

_executor: ThreadPoolExecutor | None = None


def _db_executor() -> ThreadPoolExecutor:
    # IMAP's own pool (MAILHOST_IMAP_WORKER_THREADS): under runmail, SMTP and POP3 do not
    # compete with it for the loop's small default executor.
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(
            settings.MAILHOST_IMAP_WORKER_THREADS, thread_name_prefix="imap-db"
        )
    return _executor


def db(fn, *args, **kwargs):
    """Run a sync service/selector in a worker thread (never on the event loop), on a usable
    database connection: one left broken by a dropped backend or a database restart is
    replaced first, as SMTP and POP3 do."""

    def call():
        close_old_connections()
        return fn(*args, **kwargs)

    # The loop's own hand-off, not asgiref's sync_to_async: that one copies and restores
    # the context around every call, a cost paid on each of a command's database hops, for
    # context these calls do not use.
    return asyncio.get_running_loop().run_in_executor(_db_executor(), call)


def close_db_connections() -> None:
    """Close every worker thread's database connection (at shutdown; blocking)."""
    pool = _executor
    count = len(getattr(pool, "_threads", ())) if pool is not None else 0
    if not count:
        return
    # Each task waits for the others, so every thread runs exactly one of them.
    barrier = threading.Barrier(count)

    def close() -> None:
        from django.db import connections

        connections.close_all()
        try:
            barrier.wait(5)
        except threading.BrokenBarrierError:
            pass

    futures.wait([pool.submit(close) for _ in range(count)], timeout=10)
