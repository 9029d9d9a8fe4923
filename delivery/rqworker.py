"""RQ workers of Mailhost's delivery jobs: `manage.py rqworker`'s (settings.RQ["WORKER_CLASS"])
and the threads runmail runs with REDIS_URL (delivery/worker.py). Apart from delivery/worker.py
so that a process without REDIS_URL never imports RQ and the Redis client."""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from rq.exceptions import StopRequested
from rq.timeouts import TimerDeathPenalty
from rq.worker import SimpleWorker

from delivery.outreports import tlsrpt
from delivery.worker import NO_REDIS, Sweeper
from mailboxes import fulltext
from mailhost.config import require_server_name


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


class ThreadRQWorker(MailhostWorker):
    """An RQ worker inside runmail's process: a thread, stopped by its owner, not by signals."""

    run_sweeper = False  # runmail runs one sweeper for all its threads
    death_penalty_class = TimerDeathPenalty

    def __init__(self, *args, stop_event: threading.Event, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._stop_event = stop_event

    def _install_signal_handlers(self) -> None:
        pass  # only the main thread may install them; the runner handles SIGTERM

    def heartbeat(self, *args, **kwargs):
        # Called on every pass of the dequeue loop (each dequeue timeout): the place to stop.
        if self._stop_event.is_set():
            raise StopRequested()
        return super().heartbeat(*args, **kwargs)
