"""Running listener families in one asyncio process, with clean shutdown on SIGTERM.

Each family is a module with `async def start() -> list[Listener]` (mailhost/listeners.py),
binding the ports its settings name (0 picks a free port, as tests do). `runmail` starts every
family; `runsmtp`, `runimap`, `runpop3`, `runmanagesieve` start one.
"""

from __future__ import annotations

import asyncio
import faulthandler
import importlib
import logging
import os
import pickle
import signal
import sys
from collections.abc import Callable

from django.core.management.base import BaseCommand

logger = logging.getLogger(__name__)

SMTP = "protocols.smtp.server"
IMAP = "protocols.imap.server"
POP3 = "protocols.pop3.server"
MANAGESIEVE = "protocols.managesieve.server"
WEB = "mailhost.web"
DELIVERY = "delivery.worker"
ALL = (SMTP, IMAP, POP3, MANAGESIEVE, WEB, DELIVERY)
# With MAILHOST_PROCESSES above 1, these run in every worker process on shared sockets; the
# others (and ACME renewal) in worker 0 only (mailhost/processes.py).
PER_PROCESS = (SMTP, IMAP, POP3, MANAGESIEVE)
# These run in every worker process too, without ports: the delivery threads (their sweeper,
# housekeeping and indexer in worker 0 only: delivery/worker.py).
EVERY_WORKER = (DELIVERY,)
ACME_RETRY_SECONDS = 3600  # after a failed ACME check, sooner than MAILHOST_ACME_CHECK_INTERVAL
# How long a stop may take before every thread's stack goes to standard error (_serve).
SHUTDOWN_STACKS_AFTER = 20.0


def run(modules: tuple[str, ...], *, skip_missing: bool = False) -> None:
    from mailhost.config import require_server_name
    from mailhost.database import require_schema
    from mailhost.logformat import lean_records

    lean_records()
    require_server_name()
    require_schema()
    from django.conf import settings

    limit_malloc_arenas(settings.MAILHOST_MALLOC_ARENA_MAX)
    count = settings.MAILHOST_PROCESSES
    if count > 1 and any(module in PER_PROCESS for module in modules):
        from mailhost import processes

        processes.supervise(modules, count, skip_missing=skip_missing)
        return
    from mailhost import eventloop

    eventloop.run(_serve(modules, skip_missing=skip_missing))


M_ARENA_MAX = -8  # glibc's malloc.h


def limit_malloc_arenas(arenas: int) -> None:
    """MAILHOST_MALLOC_ARENA_MAX: at most this many glibc malloc arenas in this process and in
    the workers it forks (set before any thread allocates: glibc fixes the limit once it has
    more than 8 arenas), and in the processes it starts (MALLOC_ARENA_MAX, read by glibc at a
    program's start: delivery processes). 0, or a C library other than glibc: unchanged."""
    if arenas <= 0:
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return  # not glibc (musl has one heap: nothing to limit)
    if mallopt(M_ARENA_MAX, arenas) == 1:
        os.environ["MALLOC_ARENA_MAX"] = str(arenas)


class ServerCommand(BaseCommand):
    """A command that runs listeners (runmail, runsmtp, runimap, runpop3, runmanagesieve).

    Its system checks run apart(), in a child process: they import the URLconf, so every
    view and template tag, and the admin's checks, which neither the listeners nor delivery
    use. Imported here, before the workers are forked, they would sit in every worker's image
    and in the supervisor's (issue 22: about 10 MiB of it); worker 0 imports the web app
    itself when it starts it."""

    def check(self, *args, **kwargs):  # noqa: ANN201 - BaseCommand's
        apart(lambda: super(ServerCommand, self).check(*args, **kwargs))


def apart(work: Callable[[], object]) -> None:
    """Run `work` in a forked child and wait for it: what it imports and allocates goes with
    the child. Its exception, if any, is raised here (what cannot be pickled, as a
    RuntimeError naming it); what it prints reaches the same standard output and error."""
    from django.db import connections

    connections.close_all()  # the child's queries open connections of its own
    sys.stdout.flush()
    sys.stderr.flush()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        code = 0
        try:
            work()
        except BaseException as exc:
            code = 1
            try:
                failure = pickle.dumps(exc)
            except Exception:
                failure = pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
            os.write(write, failure)  # a pipe: blocks until the parent has read it all
        finally:
            connections.close_all()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        failure = pipe.read()
    _, status = os.waitpid(pid, 0)
    if failure:
        raise pickle.loads(failure)
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise RuntimeError(f"the child process (pid {pid}) exited with {code}")


def cannot_listen(name: str, exc: OSError) -> Exception:
    """Binding failed: the address is not this machine's, the port is taken or needs
    privileges. The operator's fix is a setting, so say which (manage.py prints
    ImproperlyConfigured as one line)."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    return ImproperlyConfigured(
        f"{name} cannot listen: {exc} (MAILHOST_BIND={settings.MAILHOST_BIND};"
        " the ports are the MAILHOST_*_PORT settings)"
    )


async def _serve(
    modules: tuple[str, ...],
    *,
    skip_missing: bool,
    worker: int | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """Run the families until SIGTERM or SIGINT; `worker` (with `ready`, called once they
    all listen) when this is one worker process of several."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    from mailhost import tls

    # SIGHUP: certificates again from their files (e.g. after renewal), sessions kept.
    loop.add_signal_handler(signal.SIGHUP, tls.reload)
    stop_checkpoints = _sqlite_checkpoints()
    services = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if skip_missing and exc.name and name.startswith(exc.name):
                logger.warning("%s is not available; not started", name)
                continue
            raise
        try:
            started = await module.start()
        except OSError as exc:
            await _stop(services)
            raise cannot_listen(name, exc) from None
        services.extend(started)
        logger.info("%s started (%d listener(s))", name, len(started))
    if worker is None:
        logger.info("ready")
    else:
        logger.info("worker %d (pid %d) serving", worker, os.getpid())
        ready()
    from django.conf import settings

    renewal = None
    if settings.MAILHOST_ACME_DIRECTORY and WEB in modules:  # http-01 needs our web port
        renewal = asyncio.create_task(_acme_renewal(tls if worker is None else _Everywhere()))
    await stop.wait()
    # A stop that hangs says where: every thread's stack on standard error once it has taken
    # SHUTDOWN_STACKS_AFTER (the process goes on stopping; nothing is cancelled).
    faulthandler.dump_traceback_later(SHUTDOWN_STACKS_AFTER, exit=False)
    if renewal is not None:
        renewal.cancel()
    logger.info("shutting down: no new connections, finishing what is in flight")
    await _stop(services)
    if stop_checkpoints is not None:
        stop_checkpoints()
    logger.info("stopped")


def _sqlite_checkpoints() -> Callable[[], None] | None:
    """On SQLite, start this process's checkpoint thread (mailhost/sqlite3/base.py; the module
    imported only then) and return what stops it."""
    from django.conf import settings
    from django.db import connection

    if connection.vendor != "sqlite":
        return None
    from mailhost.sqlite3.base import checkpoints

    checkpoints.start(settings.MAILHOST_SQLITE_CHECKPOINT_INTERVAL)
    return checkpoints.stop


async def _acme_renewal(tls) -> None:  # noqa: ANN001
    """MAILHOST_ACME_DIRECTORY: issue or renew now and every MAILHOST_ACME_CHECK_INTERVAL, the
    ACME exchange in a thread; a new certificate reaches every listener through tls.reload()
    on the loop (as SIGHUP does), open sessions kept."""
    from django.conf import settings

    from mailhost import acme

    interval = settings.MAILHOST_ACME_CHECK_INTERVAL
    while True:
        try:
            issued = await asyncio.to_thread(acme.check_in_thread)
        except Exception as exc:
            # Again within the hour (DNS not yet published, the CA down), not a day later.
            logger.error('acme failed error="%s": keeping the current certificate', exc)
            if getattr(exc, "issued", False):  # some were had: serve those now
                tls.reload()
            await asyncio.sleep(min(interval, ACME_RETRY_SECONDS))
            continue
        if issued:
            tls.reload()
        await asyncio.sleep(interval)


class _Everywhere:
    """tls for ACME renewal in worker 0 of several: a new certificate reaches every worker
    through the supervisor's SIGHUP."""

    @staticmethod
    def reload() -> None:
        os.kill(os.getppid(), signal.SIGHUP)


async def _stop(services: list) -> None:
    for service in services:
        service.close()
    await asyncio.gather(*(s.wait_closed() for s in services), return_exceptions=True)
