"""Delivery workers and the spool sweeper.

Under `runmail` (the "worker" listener family, `start()` below):
- without REDIS_URL, MAILHOST_DELIVERY_THREADS threads run delivery jobs from the in-process
  queue; a thread that finds a backlog takes its share of it (batch_size) and claims and
  records those messages together (delivery.jobs.deliver_messages);
- with REDIS_URL, the same number of threads take the same shares from RQ's "default" queue
  (delivery.rqworker.JobTaker: the jobs' function called with their ids, without RQ's
  per-job bookkeeping), so a batch is claimed and recorded together as well (0 threads
  leaves the jobs to `manage.py rqworker` processes).
With MAILHOST_PROCESSES above 1, every worker process runs its MAILHOST_DELIVERY_THREADS
threads (without REDIS_URL on its share of the messages, id modulo the workers:
delivery/queue.py), and worker 0 the sweeper and the indexer for all of them.
Either way a sweeper thread re-enqueues, every MAILHOST_SWEEP_INTERVAL seconds, every message
whose recipients are due and not held by a worker: the database is the queue's truth.

`python manage.py rqworker` (django-rq) runs delivery/rqworker.py's `MailhostWorker`
(settings.RQ["WORKER_CLASS"]): an RQ worker that performs jobs in its own process (no fork per
job) and runs the sweeper beside them, so a deployment of SMTP front ends plus rqworker
processes needs nothing else. RQ, django-rq and the Redis client are imported only with
REDIS_URL: without it a worker process never uses them (issue 22: about 10 MiB of a runmail
tree's memory).
`python manage.py runworker` runs this module's family alone (embedded or RQ threads).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import close_old_connections, connections

from delivery import housekeeping, queue
from delivery.leader import Leadership
from delivery.outreports import tlsrpt
from mailboxes import fulltext
from mailhost import fanout
from mailhost.listeners import Listener

if TYPE_CHECKING:
    from delivery.jobs import Results

logger = logging.getLogger(__name__)

# `manage.py rqworker` without REDIS_URL: django-rq would take 127.0.0.1:6379, whoever's Redis
# that is.
NO_REDIS = (
    "REDIS_URL is unset: `manage.py rqworker` needs the Redis the server enqueues to; without"
    " REDIS_URL, runmail or runworker deliver from the embedded queue"
)

# Seconds between housekeeping passes: DSNs a crashed job left unsent, then removal of
# finished spool entries.
PRUNE_INTERVAL = 600


class Sweeper(threading.Thread):
    """Re-enqueue what the spool says is due, every MAILHOST_SWEEP_INTERVAL seconds, and
    keep house: in one process at a time among several (delivery/leader.py)."""

    def __init__(self, interval: float | None = None) -> None:
        super().__init__(name="delivery-sweeper", daemon=True)
        self.interval = settings.MAILHOST_SWEEP_INTERVAL if interval is None else interval
        self.stopping = threading.Event()
        self.leadership = Leadership()

    def run(self) -> None:
        last_prune = 0.0
        try:
            while not self.stopping.is_set():
                try:
                    close_old_connections()
                    tlsrpt.flush()  # this process's TLS session counts, for the daily report
                    if not self.leadership.hold():
                        self.stopping.wait(self.interval)
                        continue
                    count = housekeeping.sweep()
                    if count:
                        logger.info("sweeper enqueued %d message(s)", count)
                    share = settings.MAILHOST_DELIVERY_SHARE
                    if share and share[0] != 0:
                        pass  # housekeeping is the first delivery process's
                    elif time.monotonic() - last_prune >= PRUNE_INTERVAL:
                        last_prune = time.monotonic()
                        housekeeping.housekeep()
                except Exception:
                    logger.exception("sweep failed; trying again in %ss", self.interval)
                self.stopping.wait(self.interval)
        finally:
            self.leadership.release()
            tlsrpt.flush()
            connections.close_all()

    def stop(self) -> None:
        self.stopping.set()


# How long a delivery thread that has run out of work keeps its last results unwritten, so
# that its next claim carries them (delivery.jobs.deliver_batch): the write transactions of a
# delivered message go from two (its claim, its results) to one while jobs keep coming, even
# to threads that each take one message at a time. On SQLite every write transaction of every
# process queues on the one writer lock (mailhost/sqlite3), which submission's spool commits
# need too. Never longer than delivery.jobs.RECORD_WITHIN after the first outcome.
RESULTS_HOLD = 0.5

# The most messages an embedded worker thread takes at once from its backlog (one claim and
# one write of the results for all of them: delivery.jobs.deliver_messages).
BATCH_MAX = 8


def batch_size(backlog: int, threads: int) -> int:
    """How many more ids a thread takes besides the one it got: its share of the backlog
    beyond one each, so that every thread still gets work while there is a message for it,
    and a batch only when there are more messages queued than threads."""
    return max(0, min(BATCH_MAX - 1, backlog // max(threads, 1)))


def _delivery_thread(stop: threading.Event, threads: int = 1) -> None:
    """A delivery thread of runmail (or runworker): takes its share of the queued messages
    (batch_size; from the embedded queue, or with REDIS_URL from RQ's queue through
    delivery.rqworker.JobTaker) and claims, attempts and records them together."""
    from delivery.jobs import deliver_batch

    source = _RQSource(threads) if settings.REDIS_URL else _EmbeddedSource(threads)
    # The last batch's results, written with the next claim (one commit a batch instead of
    # two) when a next batch comes within RESULTS_HOLD (and RECORD_WITHIN of the first
    # outcome), else once that wait is over.
    pending = None
    try:
        while not stop.is_set():
            wait = 1.0 if pending is None else min(RESULTS_HOLD, pending.seconds_left())
            try:
                message_ids = source.next_batch(timeout=wait)
            except Exception:  # Redis unreachable: the sweeper re-enqueues once it is back
                logger.exception("could not take delivery jobs; trying again in 5s")
                stop.wait(5)
                continue
            if not message_ids or stop.is_set():
                pending = _written(pending)
                continue
            try:
                _, pending = deliver_batch(message_ids, previous=pending, carry=True)
            except Exception:
                logger.exception("delivery job for messages %s failed", message_ids)
    finally:
        _written(pending)
        connections.close_all()


class _EmbeddedSource:
    def __init__(self, threads: int) -> None:
        self.threads = threads

    def next_batch(self, timeout: float) -> list[int]:
        message_id = queue.embedded.get(timeout=timeout)
        if message_id is None:
            return []  # none came, or a stop request
        more = batch_size(queue.embedded.backlog(), self.threads)
        message_ids = [message_id, *queue.embedded.take(more)] if more else [message_id]
        queue.jobs_started(message_ids)
        return message_ids


class _RQSource:
    def __init__(self, threads: int) -> None:
        from delivery.rqworker import JobTaker  # RQ and Redis only with REDIS_URL

        self.taker = JobTaker(queue.rq_queue())
        self.threads = threads

    def next_batch(self, timeout: float) -> list[int]:
        # A second at most: nothing wakes a thread waiting in BLPOP when the service stops.
        first, backlog = self.taker.pop(min(timeout, 1.0))
        if first is None:
            return []
        more = batch_size(backlog, self.threads)
        return self.taker.message_ids([first, *self.taker.pop_more(more)] if more else [first])


def _written(pending: Results | None) -> Results | None:
    """None once `pending` is written; kept when writing failed
    (tried again with the next batch, or lost with the process: the lease runs out and the
    recipients are due again, as after a crash)."""
    if pending is None:
        return None
    try:
        pending.flush()
    except Exception:
        logger.exception("delivery results could not be written")
        return pending
    return None


def _handed(fd: int) -> None:
    """In a delivery process of several: queue the ids its parent hands it (one a line),
    until the parent closes the pipe (then the sweep alone finds its messages)."""
    pending = b""
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            return
        if not data:
            os.close(fd)
            return
        *lines, pending = (pending + data).split(b"\n")
        for line in lines:
            try:
                queue.embedded.put(int(line))
            except ValueError:
                logger.warning("ignoring malformed delivery hand-off %r", line)


class DeliveryService:
    """Threads of the "worker" family, stopped together; the runner's close/wait_closed."""

    port = None

    def __init__(self, threads: int | None = None, *, threads_only: bool = False) -> None:
        self.count = settings.MAILHOST_DELIVERY_THREADS if threads is None else threads
        self.stop_event = threading.Event()
        self.sweeper = Sweeper()
        self.indexer = fulltext.Indexer(gate=self.sweeper.leadership.is_leading)
        # Without the sweeper and the indexer (another worker process runs them).
        self.background = [] if threads_only else [self.sweeper, self.indexer]
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for thread in self.background:
            thread.start()
        if settings.MAILHOST_DELIVERY_WAKE_FD >= 0 and not settings.REDIS_URL:
            threading.Thread(
                target=_handed,
                args=(settings.MAILHOST_DELIVERY_WAKE_FD,),
                name="delivery-handed",
                daemon=True,
            ).start()
        for index in range(self.count):
            thread = threading.Thread(
                target=_delivery_thread,
                args=(self.stop_event, self.count),
                name=f"delivery-{index}",
                daemon=True,
            )
            thread.start()
            self.threads.append(thread)
        mode = "RQ" if settings.REDIS_URL else "embedded"
        beside = " and the sweeper" if self.background else ""
        logger.info("delivery: %d %s worker thread(s)%s", self.count, mode, beside)

    def close(self) -> None:
        self.stop_event.set()
        self.sweeper.stop()
        self.indexer.stop()
        if not settings.REDIS_URL:
            queue.embedded.wake(len(self.threads))

    def join(self, timeout: float = 30) -> None:
        from delivery.client import connection_cache

        for thread in [*self.background, *self.threads]:
            thread.join(timeout)
        connection_cache.close_all()  # QUIT to the peers, rather than dropped sessions

    async def wait_closed(self) -> None:
        # A job in flight finishes its current exchange (bounded by the SMTP timeouts).
        await asyncio.to_thread(self.join)


# How often a delivery process of several sweeps its share of the spool at most: the parent
# hands it the messages spooled under it (DeliveryProcesses.hand), so the sweep is for the
# rest (retries come due, spooled by another program, a hand-off lost with a full pipe or
# a restarted child). It was 0.1 s, as the only wake-up: ~16 ms of CPU a second per idle child.
SHARE_SWEEP_INTERVAL = 5.0


class DeliveryProcesses:
    """MAILHOST_DELIVERY_PROCESSES children, each `manage.py runworker` with
    MAILHOST_DELIVERY_THREADS threads: delivery gets GILs of its own instead of contending
    with the listeners' event loop for this process's (a CPU-bound delivery thread holds the
    GIL for up to the switch interval each time the loop wakes up for a few microseconds of
    I/O, so every thread added slowed the SMTP sessions down more than it delivered).
    Without REDIS_URL each child takes its own share of the spool (message id modulo N): the
    ids this process hands it through a pipe as they are spooled (queue.enqueue, or another
    worker's hint), and a sweep every SHARE_SWEEP_INTERVAL; with it they take their shares
    of RQ's queue (delivery.rqworker.JobTaker). A child that dies is started again."""

    port = None

    def __init__(self, count: int) -> None:
        self.count = count
        self.children: list = [None] * count
        self.pipes: list[int | None] = [None] * count  # write ends, without REDIS_URL
        self.pipes_lock = threading.Lock()  # no write to a descriptor closed (and reused)
        self.stopping = threading.Event()
        self.monitor = threading.Thread(target=self._watch, name="delivery-processes", daemon=True)

    def _spawn(self, index: int):
        import subprocess
        import sys

        env = dict(os.environ)
        env["MAILHOST_DELIVERY_PROCESSES"] = "0"
        env["MAILHOST_DELIVERY_THREADS"] = str(settings.MAILHOST_DELIVERY_THREADS)
        manage = str(settings.BASE_DIR / "manage.py")
        if settings.REDIS_URL:
            return subprocess.Popen([sys.executable, manage, "runworker"], env=env)
        env["MAILHOST_DELIVERY_SHARE"] = f"{index}/{self.count}"
        env["MAILHOST_SWEEP_INTERVAL"] = str(
            min(settings.MAILHOST_SWEEP_INTERVAL, SHARE_SWEEP_INTERVAL)
        )
        read, write = os.pipe()
        env["MAILHOST_DELIVERY_WAKE_FD"] = str(read)
        try:
            child = subprocess.Popen(
                [sys.executable, manage, "runworker"], env=env, pass_fds=(read,)
            )
        except BaseException:
            os.close(write)
            raise
        finally:
            os.close(read)
        os.set_blocking(write, False)  # a full pipe drops the hand-off: the sweep finds it
        with self.pipes_lock:
            old, self.pipes[index] = self.pipes[index], write
            if old is not None:
                os.close(old)
        return child

    def hand(self, message_id: int) -> bool:
        """Pass a spooled message's id to the child whose share it is (queue.enqueue)."""
        with self.pipes_lock:
            pipe = self.pipes[message_id % self.count]
            if pipe is None:
                return False
            try:
                return os.write(pipe, b"%d\n" % message_id) > 0  # whole: under PIPE_BUF
            except OSError:  # full (the child is behind: its sweep finds it), or restarting
                return False

    def start(self) -> None:
        for index in range(self.count):
            self.children[index] = self._spawn(index)
        if not settings.REDIS_URL:
            queue.hand_off_to(self.hand)
        self.monitor.start()
        logger.info(
            "delivery: %d process(es) of %d thread(s)",
            self.count,
            settings.MAILHOST_DELIVERY_THREADS,
        )

    def _watch(self) -> None:
        while not self.stopping.wait(1.0):
            for index, child in enumerate(self.children):
                if child is not None and child.poll() is not None and not self.stopping.is_set():
                    logger.warning(
                        "delivery process %d exited with %s; starting it again",
                        child.pid,
                        child.returncode,
                    )
                    self.children[index] = self._spawn(index)

    def close(self) -> None:
        self.stopping.set()
        queue.hand_off_to(None)
        for child in self.children:
            if child is not None and child.poll() is None:
                child.terminate()

    def join(self, timeout: float = 30) -> None:
        for child in self.children:
            if child is None:
                continue
            try:
                child.wait(timeout)
            except Exception:
                child.kill()
                child.wait(5)
        with self.pipes_lock:
            for index, pipe in enumerate(self.pipes):
                if pipe is not None:
                    os.close(pipe)
                    self.pipes[index] = None

    async def wait_closed(self) -> None:
        await asyncio.to_thread(self.join)


async def start() -> list[Listener]:
    # In worker 1.. of several (MAILHOST_PROCESSES), delivery threads only: worker 0 sweeps,
    # keeps house and indexes for all of them, or runs the delivery processes.
    other_worker = bool(fanout.worker_slot())
    if settings.MAILHOST_DELIVERY_PROCESSES:
        if other_worker:
            return []
        processes = DeliveryProcesses(settings.MAILHOST_DELIVERY_PROCESSES)
        processes.start()
        return [Listener("worker", processes)]
    service = DeliveryService(threads_only=other_worker)
    service.start()
    return [Listener("worker", service)]
