"""Delivery workers and the spool sweeper.

Under `runmail` (the "worker" listener family, `start()` below):
- without REDIS_URL, MAILHOST_DELIVERY_THREADS threads run delivery jobs from the in-process
  queue: one of them at a time (Claimer) takes what is queued (batch_size) and claims it in
  one transaction for all of them, with the results they have kept since the last claim;
- with REDIS_URL, the same from RQ's "default" queue (delivery.rqworker.JobTaker: the jobs'
  function called with their ids, without RQ's per-job bookkeeping; 0 threads leaves the
  jobs to `manage.py rqworker` processes).
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
import collections
import functools
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import close_old_connections, connections

from delivery import housekeeping, queue
from delivery.jobs import Results, claim_batch, deliver_claim
from delivery.leader import Leadership
from delivery.outreports import tlsrpt
from mailboxes import fulltext
from mailhost import fanout
from mailhost.listeners import Listener

if TYPE_CHECKING:
    from delivery.services import Claim

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


# How long the results of a process's delivery threads wait unwritten for the next claim
# (delivery.worker.Claimer), which carries them: while jobs keep coming a delivered message
# costs one write transaction (its share of a claim), not two (its claim and its results).
# On SQLite every write transaction of every process queues on the one writer lock
# (mailhost/sqlite3), which submission's spool commits need too. Never longer than
# delivery.jobs.RECORD_WITHIN after the first outcome. It is also the claimer's longest
# wait for a job: a stop is seen within it.
RESULTS_HOLD = 0.5

# The most messages a claim takes for each delivery thread free to attempt them (one claim
# and one write of the results for all of them).
BATCH_MAX = 8


# The messages of a claim that failed, taken off the queue and not claimed, are queued again
# this many seconds later rather than left to the sweeper (MAILHOST_SWEEP_INTERVAL): not at
# once, where a database that refuses every claim would have the claimer fail in a loop.
CLAIM_RETRY = 1.0


def claim_limit(idle: int) -> int:
    """The most messages a claim takes: BATCH_MAX for each of the process's `idle` threads
    (those not attempting a claim), so that a process does not hold messages its threads
    will not get to soon (with REDIS_URL other processes take from the same queue)."""
    return BATCH_MAX * max(idle, 1)


def batch_size(backlog: int, idle: int) -> int:
    """How many more ids the claimer takes besides the one it got: what is queued, up to
    claim_limit."""
    return max(0, min(claim_limit(idle) - 1, backlog))


class Claimer:
    """The delivery threads of one process, fed by one claim at a time (issue 20).

    Each thread used to take its own share of the queue and claim it in a write
    transaction of its own, and to write its own results: with more threads the shares
    were smaller (one message each) and the transactions more, each a turn of SQLite's
    writer lock that submission's spool commits wait behind. Here one thread at a time,
    the claimer, waits for jobs (from the embedded queue or, with REDIS_URL, RQ's), takes
    what is queued (batch_size) and claims it in one transaction that also writes the
    results every thread has kept since the last claim (`results`, shared; those that may
    owe a DSN are written at once by their thread: delivery.jobs.deliver_claim); the
    claimed messages go to the idle threads one each, the one idle last first, and the
    claimer claims on; it takes one itself only when there are more than idle threads for
    (see next()). A thread done with its message takes the next claimed one, or becomes
    the claimer when there is none and no other thread is claiming, or waits. The results wait RESULTS_HOLD at most for a
    claim: then the waiting claimer writes them. On SQLite the claim (and a write of
    results alone) is a piece of the group committer's transaction, shared with the
    process's submissions meanwhile, and takes the jobs that came while it waited for the
    writer locks (delivery.services.recipients_claim_many)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.source: _RQSource | _EmbeddedSource | None = None
        self.results = Results()
        self.ready: collections.deque[Claim] = collections.deque()
        self.lock = threading.Lock()
        # The idle threads' wake-ups, the one that went idle last at the end: woken first.
        self.waiting: list[threading.Lock] = []
        self.claiming = False
        self.busy = 0  # threads attempting a claim

    def next(self, stop: threading.Event) -> Claim | None:
        """The next claimed message for this thread; None once `stop` is set and no claimed
        message is left (those are attempted first: their leases are held), nor can come:
        a claim under way when the stop came hands its messages to every thread still, not
        to the claimer alone (up to BATCH_MAX for each thread, one after the other).

        The claimer claims on while an idle thread waits for each message claimed (they
        are woken for them), and takes one itself only when they do not (1 thread, or a
        backlog): the claims stay on one thread and its database connection, where the
        claimer's part went to a thread woken for it after every claim, in turn every
        thread of the process, each reading SQLite's schema on its first claim (5.4 M
        instructions) and preparing the claim's statements again."""
        while True:
            with self.lock:
                while True:
                    if self.ready:
                        self.busy += 1
                        return self.ready.popleft()
                    if stop.is_set() and not self.claiming:
                        return None
                    if not self.claiming:
                        self.claiming = True
                        break
                    # Woken for a claimed message, to claim next, or to stop (wake):
                    # the timeout is only a safety net, not a poll.
                    self._wait(5.0)
            claiming = True
            while claiming:
                claims: list[Claim] = []
                claimed = False
                try:
                    claims = self._claim(stop)
                    claimed = True
                finally:
                    with self.lock:
                        self.ready.extend(claims)
                        # Claiming on while every message has a thread waiting for it;
                        # else this thread takes one too and the next free one claims.
                        claiming = (
                            claimed and not stop.is_set() and len(self.ready) <= len(self.waiting)
                        )
                        self.claiming = claiming
                        # A thread for each message ready (or each but the one this thread
                        # takes, and one to claim next); stopping, every thread waiting.
                        self._notify(len(self.waiting) if stop.is_set() else len(self.ready))

    def _wait(self, timeout: float) -> None:
        """Wait, `self.lock` released meanwhile, for a _notify or the timeout; held again on
        return, when the caller looks at what changed."""
        waiter = threading.Lock()
        waiter.acquire()
        self.waiting.append(waiter)
        self.lock.release()
        try:
            waiter.acquire(timeout=timeout)
        finally:
            self.lock.acquire()
            if waiter in self.waiting:  # timed out: not woken
                self.waiting.remove(waiter)

    def _notify(self, count: int) -> None:
        """Wake up to `count` waiting threads, those that went idle last first (a Condition
        wakes the longest waiting first): the messages go to the threads at work lately,
        whose database connections (a results write, a DSN's, an MTA-STS policy read) are
        open, and with a light load the others stay idle, none of their own opened.
        `self.lock` held."""
        for _ in range(min(count, len(self.waiting))):
            self.waiting.pop().release()

    def done(self) -> None:
        """A thread has attempted its claim."""
        with self.lock:
            self.busy -= 1

    def _claim(self, stop: threading.Event) -> list[Claim]:
        if self.source is None:
            self.source = _RQSource() if settings.REDIS_URL else _EmbeddedSource()
        # A second when nothing is held nor can come (a stop is seen within it), else no
        # longer than the results may wait; never nothing: a write that fails is not a spin.
        wait = 1.0
        if self.results.pending():
            wait = max(0.05, min(RESULTS_HOLD, self.results.seconds_left()))
        elif self.busy:
            wait = RESULTS_HOLD
        began = time.monotonic()
        try:
            message_ids = self.source.next_batch(wait, self.threads - self.busy)
        except Exception:  # Redis unreachable: the sweeper re-enqueues once it is back
            logger.exception("could not take delivery jobs; trying again in 5s")
            self.flush()
            stop.wait(5)
            return []
        if not message_ids or stop.is_set():
            # Taken as the stop came: not claimed (the threads are ending), queued again for
            # another process (RQ) or this one's next start, not left for the next sweep.
            for message_id in dict.fromkeys(message_ids or ()):
                queue.enqueue(message_id)
            self.flush()
            # The rest of the wait when the source did not wait (RQ on a Redis before 6, whose
            # BLPOP takes whole seconds: delivery.rqworker.JobTaker.pop).
            stop.wait(max(0.0, wait - (time.monotonic() - began)))
            return []
        taken = list(message_ids)
        more = None
        if isinstance(self.source, _EmbeddedSource):  # RQ's: a round trip under the lock
            limit = claim_limit(self.threads - self.busy) - len(message_ids)
            more = functools.partial(self.source.more, limit, taken)
        try:
            return claim_batch(message_ids, self.results, more)
        except Exception:
            logger.exception("delivery claim of messages %s failed", taken)
            for message_id in dict.fromkeys(taken):
                queue.enqueue_after(message_id, CLAIM_RETRY)
            return []

    def flush(self) -> None:
        """Write the results kept (kept still when that fails: tried again with the next
        claim, or lost with the process: the leases run out and the recipients are due
        again, as after a crash)."""
        try:
            self.results.flush()
        except Exception:
            logger.exception("delivery results could not be written")

    def wake(self) -> None:
        with self.lock:
            self._notify(len(self.waiting))


def _delivery_thread(stop: threading.Event, claimer: Claimer) -> None:
    """A delivery thread of runmail (or runworker): attempts the messages its process's
    Claimer claimed, one at a time, its results kept for the next claim."""
    try:
        while (claim := claimer.next(stop)) is not None:
            try:
                deliver_claim(claim, claimer.results)
            except Exception:
                logger.exception("delivery of message %s failed", claim.message.pk)
            finally:
                claimer.done()
    finally:
        claimer.flush()
        connections.close_all()


class _EmbeddedSource:
    def next_batch(self, timeout: float, idle: int) -> list[int]:
        message_id = queue.embedded.get(timeout=timeout)
        if message_id is None:
            return []  # none came, or a stop request
        more = batch_size(queue.embedded.backlog(), idle)
        message_ids = [message_id, *queue.embedded.take(more)] if more else [message_id]
        queue.jobs_started(message_ids)
        return message_ids

    def more(self, limit: int, taken: list[int]) -> list[int]:
        """Up to `limit` more ids queued now, added to `taken` too."""
        message_ids = queue.embedded.take(limit) if limit > 0 else []
        queue.jobs_started(message_ids)
        taken.extend(message_ids)
        return message_ids


class _RQSource:
    def __init__(self) -> None:
        from delivery.rqworker import JobTaker  # RQ and Redis only with REDIS_URL

        self.taker = JobTaker(queue.rq_queue())

    def next_batch(self, timeout: float, idle: int) -> list[int]:
        # A second at most: nothing wakes a thread waiting in BLPOP when the service stops.
        first, backlog = self.taker.pop(min(timeout, 1.0))
        if first is None:
            return []
        more = batch_size(backlog, idle)
        return self.taker.message_ids([first, *self.taker.pop_more(more)] if more else [first])


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
        self.claimer = Claimer(self.count)

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
                args=(self.stop_event, self.claimer),
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
            queue.embedded.wake(1)  # the claimer's wait; the others wait on the claimer
        self.claimer.wake()

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


# How often DeliveryProcesses.join tells a child that has not stopped to stop again.
TERM_AGAIN = 5.0


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
        self.respawning = threading.Lock()
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
                # Under the lock that close() takes: a child started again after close()
                # told the others to stop would never be told, and join() would wait for it.
                with self.respawning:
                    if self.stopping.is_set():
                        return
                    if child is not None and child.poll() is not None:
                        logger.warning(
                            "delivery process %d exited with %s; starting it again",
                            child.pid,
                            child.returncode,
                        )
                        self.children[index] = self._spawn(index)

    def close(self) -> None:
        with self.respawning:
            self.stopping.set()
        queue.hand_off_to(None)
        for child in self.children:
            if child is not None and child.poll() is None:
                child.terminate()

    def join(self, timeout: float = 30) -> None:
        """Wait for the children to stop, `timeout` seconds for them all, telling one that has
        not stopped to stop again every TERM_AGAIN seconds; one still running then is killed
        (its claimed messages' leases run out and they are due again)."""
        import subprocess

        deadline = time.monotonic() + timeout
        for child in self.children:
            while child is not None:
                left = deadline - time.monotonic()
                try:
                    child.wait(max(0.0, min(left, TERM_AGAIN)))
                    break
                except subprocess.TimeoutExpired:
                    if left > TERM_AGAIN:
                        child.terminate()
                        continue
                logger.warning(
                    "delivery process %d did not stop in %ss; killed", child.pid, timeout
                )
                child.kill()
                child.wait(5)
                break
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
