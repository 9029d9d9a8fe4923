"""The hop from a front end's event loop to its database threads (SMTP's and IMAP's pools)."""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
import time
from collections.abc import Callable

NO_CONTEXT = contextvars.Context()  # _settle reads no context variable: no copy per hop
_END = object()  # stop()'s call: the thread ends after it


class DbPool:
    """Up to `size` threads, started as calls need them (one more while every thread has a
    call), that run each call handed to them and give its result to the loop's future with one
    call_soon_threadsafe. run_in_executor on a ThreadPoolExecutor does the same through a
    concurrent Future chained to the loop's (their locks, conditions and callbacks at each end
    of every hop, and the pool's idle semaphore): an empty call's hop took 23 µs of the
    process's CPU, this one 11 (issue 22). The threads are daemons: a worker process ends by
    os._exit, after the servers' shutdown closed the threads' connections (close_connections),
    or stop() ended them."""

    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self.name = name
        self.calls: queue.SimpleQueue = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        self.handed = 0  # calls handed over, counted on the loop's thread
        self.finished = 0  # calls finished, counted by the threads under `lock`
        self.lock = threading.Lock()

    def run(self, loop: asyncio.AbstractEventLoop, fn: Callable[[], object]) -> asyncio.Future:
        """fn() in a thread of the pool; its result (or exception) in the future returned."""
        future = loop.create_future()
        self.handed += 1
        # A call that finds every thread busy starts another (up to `size`); a thread counts
        # its call as finished before it hands the result over.
        if self.handed - self.finished > len(self.threads) < self.size:
            thread = threading.Thread(
                target=self._work, name=f"{self.name}_{len(self.threads)}", daemon=True
            )
            self.threads.append(thread)
            thread.start()
        self.calls.put((loop, future, fn))
        return future

    def _work(self) -> None:
        calls, lock = self.calls, self.lock
        while True:
            loop, future, fn = calls.get()
            if future is None:  # close_connections' or stop's call: not one of the calls counted
                fn()
                if loop is _END:
                    return
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

    def close_connections(self, *, end: bool = False, timeout: float = 10) -> None:
        """Close every thread's database connection (at shutdown; blocking), each thread
        after the calls handed to it before; `end`: the threads end too, and the pool is not
        to be used again (its queued calls after this one would never run)."""
        count = len(self.threads)
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
            self.calls.put((_END if end else None, None, close))
        deadline = time.monotonic() + timeout
        for _ in range(count):
            if not closed.acquire(timeout=max(0.0, deadline - time.monotonic())):
                return
        if end:
            for thread in self.threads:
                thread.join(max(0.0, deadline - time.monotonic()))


def _settle(future: asyncio.Future, ok: bool, value) -> None:  # noqa: ANN001
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
