"""Getting delivery jobs to workers: RQ with REDIS_URL, an in-process queue without it.

Jobs carry only an OutboundMessage id. Enqueueing is a hint, never the record: the sweeper
(delivery.housekeeping.sweep) re-enqueues whatever the spool says is due, so a job lost with
Redis (flushed, restarted) or with a process costs at most one sweep interval. This module
knows no spool and no job code: the spool's services call it, and the job is named by its
dotted path (JOB), as RQ names it.
"""

from __future__ import annotations

import heapq
import logging
import queue as stdlib_queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence

from django.conf import settings
from django.utils.module_loading import import_string

from mailhost import fanout

logger = logging.getLogger(__name__)

JOB = "delivery.jobs.deliver_message"
# While this key exists a job for the message waits in Redis; the sweeper does not add
# another. It expires on its own, so a job lost with a killed worker is re-enqueued after
# PENDING_SWEEPS sweep intervals at worst (a duplicate job is harmless: jobs take a lease).
PENDING_KEY = "mailhost:delivery:pending:{}"
PENDING_SWEEPS = 10


def pending_ttl() -> int:
    return max(5, int(settings.MAILHOST_SWEEP_INTERVAL * PENDING_SWEEPS))


JOB_TIMEOUT = 3600


def enqueue(message_id: int, *, spooled: bool = False) -> bool:
    """Ask a worker to attempt this message's due recipients; False if one is already asked.
    `spooled`: the message was spooled in the transaction that just committed, so nothing
    can have asked yet (with Redis the pending mark is set with the job, not tested first)."""
    if settings.REDIS_URL:
        return _rq_enqueue(message_id, spooled=spooled)
    if settings.MAILHOST_DELIVERY_PROCESSES:
        # The delivery processes are worker 0's children (delivery.worker): it hands them the
        # id (what it cannot hand, their sweep finds).
        if fanout.active() and fanout.worker_slot() != 0:
            fanout.send(TOPIC, {"id": message_id}, to=0)
            return True
        handoff = _handoff
        return handoff(message_id) if handoff is not None else False
    if fanout.active():
        # Several worker processes, each with delivery threads on its own embedded queue
        # (mailhost/processes.py): a message is worker id % N's, whoever spooled or swept it,
        # so one worker's queue de-duplicates its hints and the others' GILs share the work.
        owner = message_id % fanout.worker_count()
        if owner != fanout.worker_slot():
            fanout.send(TOPIC, {"id": message_id}, to=owner)
            return True
    return embedded.put(message_id)


TOPIC = "deliver"

# Set while this process runs MAILHOST_DELIVERY_PROCESSES children: passes an id to the one
# whose share it is (delivery.worker.DeliveryProcesses.hand).
_handoff: Callable[[int], bool] | None = None


def hand_off_to(handoff: Callable[[int], bool] | None) -> None:
    global _handoff
    _handoff = handoff


def _heard(message: dict) -> None:
    try:
        (_handoff or embedded.put)(int(message["id"]))
    except (KeyError, TypeError, ValueError):
        logger.warning("ignoring malformed delivery hint %r", message)


_rq_lock = threading.Lock()
_rq_queues: dict[str, object] = {}


def rq_queue():  # noqa: ANN201 - an rq.Queue
    """The process's RQ queue of delivery jobs, made once per REDIS_URL: django_rq.get_queue
    makes a new Redis client at each call, so each enqueue and each job's start paid for a
    new connection and its handshake (whose CLIENT SETINFO looks redis-py's version up in
    the installed distributions), then closed it (issue 20). The client is the process's
    (mailhost.redisconn), whose pool is thread-safe and re-made after a fork, and whose
    timeouts keep a Redis that stops answering from holding an enqueue (a port 25 session's
    database thread, after its commit) or a delivery thread's pop for ever: django-rq's
    own client has none."""
    url = settings.REDIS_URL
    with _rq_lock:
        found = _rq_queues.get(url)
        if found is None:
            import django_rq

            from mailhost import redisconn

            found = django_rq.get_queue("default", connection=redisconn.client())
            _rq_queues[url] = found
        return found


# A delivery job's RQ id names its message, so that a thread taking it needs neither its hash
# nor another round trip for the pending mark (delivery.rqworker.JobTaker).
JOB_ID_PREFIX = "mailhost-deliver-"


def job_message(job_id: str) -> int | None:
    """The message of a delivery job's id made here, else None."""
    head, _, tail = job_id.removeprefix(JOB_ID_PREFIX).partition("-")
    if not job_id.startswith(JOB_ID_PREFIX) or not head.isdigit() or not tail:
        return None
    return int(head)


def _rq_enqueue(message_id: int, *, spooled: bool) -> bool:
    try:
        q = rq_queue()
        mark = PENDING_KEY.format(message_id)
        if not spooled and not q.connection.set(mark, 1, nx=True, ex=pending_ttl()):
            return False
        # RQ's own pipelines would be two round trips (the queue's name in the set of queues,
        # then the job and its place in the queue): one, on ours, with the pending mark of a
        # message just spooled (the sweeper, the other enqueuer, finds it leased or marked).
        with q.connection.pipeline() as pipe:
            q.enqueue(
                JOB,
                message_id,
                job_id=f"{JOB_ID_PREFIX}{message_id}-{uuid.uuid4().hex}",
                job_timeout=JOB_TIMEOUT,
                result_ttl=300,
                failure_ttl=86400,
                pipeline=pipe,
            )
            if spooled:  # after RQ's commands (it may WATCH first), in the same MULTI
                pipe.set(mark, 1, ex=pending_ttl())
            pipe.execute()
        return True
    except Exception:
        # The spool row is committed; the sweeper will enqueue it once Redis is back.
        logger.exception("could not enqueue delivery of message %s", message_id)
        return False


class _Later:
    """Jobs to enqueue after a delay, from one thread (a destination that was busy or had
    used its rate: the wait is seconds, much shorter than a sweep interval). Lost with the
    process, like any enqueue: the sweeper still finds the recipients due."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, message_id: int, seconds: float) -> None:
        with self._changed:
            heapq.heappush(self._heap, (time.monotonic() + seconds, message_id))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="delivery-later", daemon=True
                )
                self._thread.start()
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._changed.wait(timeout)
                _, message_id = heapq.heappop(self._heap)
            try:
                enqueue(message_id)
            except Exception:
                logger.exception("could not enqueue delivery of message %s", message_id)

    def clear(self) -> None:
        with self._changed:
            self._heap.clear()


later = _Later()


def enqueue_after(message_id: int, seconds: float) -> None:
    """enqueue() in `seconds` (its recipients are due again then)."""
    later.add(message_id, seconds)


def jobs_started(message_ids: Sequence[int]) -> None:
    """A worker took these messages' jobs: a later enqueue (new due recipients) must not be
    skipped. With Redis one DEL for all of them."""
    if not settings.REDIS_URL:
        for message_id in message_ids:
            embedded.taken(message_id)
    elif message_ids:
        try:
            rq_queue().connection.delete(*(PENDING_KEY.format(m) for m in message_ids))
        except Exception:
            logger.warning("could not clear the pending marks of messages %s", message_ids)


class EmbeddedQueue:
    """An in-process FIFO of message ids with de-duplication, for runmail without Redis."""

    def __init__(self) -> None:
        self._queue: stdlib_queue.Queue[int | None] = stdlib_queue.Queue()
        self._pending: set[int] = set()
        self._lock = threading.Lock()

    def put(self, message_id: int) -> bool:
        with self._lock:
            if message_id in self._pending:
                return False
            self._pending.add(message_id)
        self._queue.put(message_id)
        return True

    def taken(self, message_id: int) -> None:
        with self._lock:
            self._pending.discard(message_id)

    def get(self, timeout: float | None = None) -> int | None:
        """The next id; None for a stop request or when `timeout` passes."""
        try:
            return self._queue.get(timeout=timeout)
        except stdlib_queue.Empty:
            return None

    def take(self, limit: int) -> list[int]:
        """Up to `limit` more ids that are queued now, without waiting."""
        taken: list[int] = []
        while len(taken) < limit:
            try:
                message_id = self._queue.get_nowait()
            except stdlib_queue.Empty:
                break
            if message_id is None:
                self._queue.put(None)  # a stop request: another thread's
                break
            taken.append(message_id)
        return taken

    def backlog(self) -> int:
        """Ids queued now (an estimate: other threads take and add meanwhile)."""
        return self._queue.qsize()

    def wake(self, count: int = 1) -> None:
        for _ in range(count):
            self._queue.put(None)

    def clear(self) -> None:
        """Drop every queued job (what a Redis flush does to RQ)."""
        with self._lock:
            self._pending.clear()
            while True:
                try:
                    self._queue.get_nowait()
                except stdlib_queue.Empty:
                    break

    def __len__(self) -> int:
        return len(self._pending)

    def run_burst(self, job: Callable[[int], object] | None = None) -> int:
        """Run every queued job in this thread until the queue is empty (tests, burst mode)."""
        if job is None:
            job = import_string(JOB)  # by name, as RQ finds it: the queue knows no job code
        done = 0
        while True:
            try:
                message_id = self._queue.get_nowait()
            except stdlib_queue.Empty:
                return done
            if message_id is None:
                continue
            job(message_id)
            done += 1


embedded = EmbeddedQueue()


fanout.subscribe(TOPIC, _heard)
