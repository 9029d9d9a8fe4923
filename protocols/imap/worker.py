"""The hop from the event loop to the database: IMAP's own worker threads (a leaf module)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import queue
import threading
import time

from django.conf import settings
from django.db import close_old_connections

from mailboxes.groupcommit import shared_where_writers_take_turns

NO_CONTEXT = contextvars.Context()  # _settle reads no context variable: no copy per hop


class DbPool:
    """MAILHOST_IMAP_WORKER_THREADS threads, started as calls need them (one more while every
    thread has a call), that run each call handed to them and give its result to the loop's
    future with one call_soon_threadsafe. run_in_executor on a ThreadPoolExecutor does the
    same through a concurrent Future chained to the loop's (their locks, conditions and
    callbacks at each end of every hop, and the pool's idle semaphore): an empty call's hop
    took 23 µs of the process's CPU, this one 11 (issue 22). The threads are daemons: a
    worker process ends by os._exit, after the servers' shutdown closed the threads'
    connections (close_db_connections)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.calls: queue.SimpleQueue = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        self.handed = 0  # calls handed over, counted on the loop's thread
        self.finished = 0  # calls finished, counted by the threads under `lock`
        self.lock = threading.Lock()

    def run(self, loop: asyncio.AbstractEventLoop, fn) -> asyncio.Future:  # noqa: ANN001
        """fn() in a thread of the pool; its result (or exception) in the future returned."""
        future = loop.create_future()
        self.handed += 1
        # A call that finds every thread busy starts another (up to `size`); a thread counts
        # its call as finished before it hands the result over.
        if self.handed - self.finished > len(self.threads) < self.size:
            thread = threading.Thread(
                target=self._work, name=f"imap-db_{len(self.threads)}", daemon=True
            )
            self.threads.append(thread)
            thread.start()
        self.calls.put((loop, future, fn))
        return future

    def _work(self) -> None:
        calls, lock = self.calls, self.lock
        while True:
            loop, future, fn = calls.get()
            if future is None:  # close_db_connections' call: not one of the calls counted
                fn()
                continue
            # A future cancelled before its call began (its session ended): not run, as
            # run_in_executor's would not be.
            outcome = None
            if not future.cancelled():
                try:
                    outcome = (True, fn())
                except BaseException as exc:  # handed to the awaiting coroutine, as a pool's
                    outcome = (False, exc)
            # Counted before the loop hears of it: the loop's next call, made on this one's
            # result, finds this thread free and starts none.
            with lock:
                self.finished += 1
            if outcome is not None:
                try:
                    loop.call_soon_threadsafe(_settle, future, *outcome, context=NO_CONTEXT)
                except RuntimeError:
                    pass  # the loop closed meanwhile
            del loop, future, fn, outcome


def _settle(future: asyncio.Future, ok: bool, value) -> None:  # noqa: ANN001
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


_pool: DbPool | None = None


def _db_executor() -> DbPool:
    # IMAP's own pool (MAILHOST_IMAP_WORKER_THREADS): under runmail, SMTP and POP3 do not
    # compete with it for the loop's small default executor.
    global _pool
    if _pool is None:
        _pool = DbPool(settings.MAILHOST_IMAP_WORKER_THREADS)
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
    pool = _pool
    count = len(pool.threads) if pool is not None else 0
    if not count:
        return
    # Each call waits for the others, so every thread runs exactly one of them.
    barrier = threading.Barrier(count)
    closed = threading.Semaphore(0)

    def close() -> None:
        from django.db import connections

        try:
            connections.close_all()
            try:
                barrier.wait(5)
            except threading.BrokenBarrierError:
                pass
        finally:
            closed.release()

    for _ in range(count):
        pool.calls.put((None, None, close))
    deadline = time.monotonic() + 10
    for _ in range(count):
        if not closed.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return
