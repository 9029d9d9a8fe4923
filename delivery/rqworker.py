"""RQ workers of Mailhost's delivery jobs: `manage.py rqworker`'s (settings.RQ["WORKER_CLASS"]),
and what runmail's delivery threads take their jobs from with REDIS_URL (JobTaker; the threads
are delivery/worker.py's). Apart from delivery/worker.py so that a process without REDIS_URL
never imports RQ and the Redis client."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from rq.job import Job
from rq.worker import SimpleWorker

from delivery import queue
from delivery.outreports import tlsrpt
from delivery.worker import NO_REDIS, Sweeper
from mailboxes import fulltext
from mailhost.config import require_server_name

logger = logging.getLogger(__name__)


class MailhostWorker(SimpleWorker):
    """The RQ worker of `manage.py rqworker`: jobs in-process, the sweeper and the full-text
    indexer in threads (working in the leading worker only: delivery/leader.py).

    Jobs run in the worker's own process (SimpleWorker): a delivery job is I/O-bound and
    keeps no state between runs, and not forking keeps Django's database connections sane.
    A killed worker loses nothing: its recipients' leases run out and the sweeper of any
    worker re-enqueues them.
    """

    run_sweeper = True

    def work(self, *args, **kwargs) -> bool:
        require_server_name()  # `manage.py rqworker` sends mail under MAILHOST_HOSTNAME
        if not settings.REDIS_URL:
            raise ImproperlyConfigured(NO_REDIS)
        sweeper = Sweeper() if self.run_sweeper and not kwargs.get("burst") else None
        # The leader's indexer makes the full-text index (fulltext.Indexer); the others idle.
        indexer = fulltext.Indexer(gate=sweeper.leadership.is_leading) if sweeper else None
        if sweeper:
            sweeper.start()
            indexer.start()
        try:
            return super().work(*args, **kwargs)
        finally:
            if sweeper:
                sweeper.stop()
                indexer.stop()
                sweeper.join(10)
                indexer.join(10)
            tlsrpt.flush()  # a burst worker has no sweeper: its counts are stored here
            connections.close_all()


class JobTaker:
    """Delivery jobs out of RQ's queue for runmail's delivery threads (delivery.worker): their
    claimer takes what is queued, as from the embedded queue, and claims those messages
    together (delivery.worker.Claimer).

    The jobs are ordinary RQ jobs (what `manage.py rqworker` runs too), but the threads do
    not run them through RQ's worker: that was about 65 Redis commands a job (its status,
    the started and finished registries, the execution's heartbeats, the result) and most
    of the CPU runmail's process tree spent a delivered message on PostgreSQL with Redis
    (issue 20). Here a batch costs two or three round trips: the pop (with the queue's
    length), the rest of the share, and the jobs and their messages' pending marks deleted
    in one pipeline (a delivery job's id names its message: queue.JOB_ID_PREFIX).
    A job is only a hint (delivery.queue): one lost with the process is swept back, as one
    lost by RQ's worker is, and a failure is logged instead of kept in RQ's failed-job
    registry. A job of another function than the delivery job (put on this queue by someone
    else) is run as RQ would run it, in the thread."""

    def __init__(self, rq_queue) -> None:  # noqa: ANN001 - an rq.Queue
        self.queue = rq_queue
        self.connection = rq_queue.connection
        self._fractional: bool | None = None  # BLPOP waits parts of a second (Redis 6)

    def pop(self, timeout: float) -> tuple[bytes | None, int]:
        """The next job's id, waiting up to `timeout` seconds for it (0: not at all), or
        None; and how many are queued behind it. A wait under a second is one from Redis 6
        on, whose BLPOP takes decimals; before, none (whole seconds only)."""
        if 0 < timeout < 1 and not self.fractional_timeouts():
            timeout = 0
        with self.connection.pipeline(transaction=False) as pipe:
            if timeout > 0:
                pipe.blpop([self.queue.key], timeout=timeout if timeout < 1 else round(timeout))
            else:
                pipe.lpop(self.queue.key)
            pipe.llen(self.queue.key)  # sent with the pop, answered once it returns
            popped, backlog = pipe.execute()
        if popped is None:
            return None, backlog
        return (popped[1] if timeout > 0 else popped), backlog

    def fractional_timeouts(self) -> bool:
        """Whether the server's BLPOP takes a timeout with decimals (Redis 6 and later):
        asked once."""
        if self._fractional is None:
            try:
                version = str(self.connection.info("server").get("redis_version", "0"))
                self._fractional = int(version.split(".")[0]) >= 6
            except Exception:  # an unreachable Redis fails the pop itself, next
                return False
        return self._fractional

    def pop_more(self, count: int) -> list[bytes]:
        """Up to `count` more job ids queued now."""
        return self.connection.lpop(self.queue.key, count) or []

    def message_ids(self, job_ids: list[bytes]) -> list[int]:
        """The messages of these jobs, which are deleted (run: taken off the queue), with
        their pending marks (queue.jobs_started): one round trip for jobs enqueued here,
        whose ids name their messages (queue.JOB_ID_PREFIX)."""
        job_ids = [j.decode() for j in job_ids]
        named = {job_id: queue.job_message(job_id) for job_id in job_ids}
        message_ids = [m for m in named.values() if m is not None]
        others = [job_id for job_id, m in named.items() if m is None]
        with self.connection.pipeline(transaction=False) as pipe:
            for job_id in others:
                pipe.hgetall(Job.key_for(job_id))
            pipe.delete(*(Job.key_for(job_id) for job_id in job_ids))
            if message_ids:
                pipe.delete(*(queue.PENDING_KEY.format(m) for m in message_ids))
            found = pipe.execute()[: len(others)]
        for job_id, raw in zip(others, found, strict=True):
            if raw:  # else deleted or expired meanwhile
                message_ids += self._run(job_id, raw)
        return list(dict.fromkeys(message_ids))  # a message queued twice is attempted once

    def _run(self, job_id: str, raw: dict) -> list[int]:
        """A job whose id does not name its message: a delivery job enqueued otherwise (by
        an earlier version) gives its message (its pending mark cleared here); any other
        function is run now."""
        job = Job(job_id, connection=self.connection, serializer=self.queue.serializer)
        try:
            job.restore(raw)
            if job.func_name == queue.JOB:
                queue.jobs_started([int(job.args[0])])
                return [int(job.args[0])]
            job.perform()
        except Exception:
            logger.exception("RQ job %s failed", job_id)
        return []
