"""Several worker processes behind the same ports (MAILHOST_PROCESSES), supervised.

One Python process serves its connections under one GIL; a machine's other cores stay idle.
With MAILHOST_PROCESSES above 1 (the default is the number of CPUs), `runmail` and the
`run*` commands start this supervisor instead of serving themselves:

- it opens every mail listener's socket once (the families name their ports in PORTS), so a
  port is bound, privileged or not, before any worker exists and stays open while workers
  come and go; the kernel hands each new connection to whichever worker accepts it first;
- it makes what the workers share: the connection counts behind the caps
  (mailhost/listeners.py: SharedCounts) and a datagram socket pair per worker for what one
  worker tells the others (mailhost/fanout.py: change events for IDLE and NOTIFY, the login
  limiter, POP3 takeovers, delivery hints);
- it forks the workers, each with its own event loop running the mail families (SMTP, IMAP,
  POP3, ManageSieve) on the inherited sockets, and its delivery threads (a share of the
  embedded queue's messages, or RQ's queue's jobs). Worker 0 also runs what must run once: the
  web app, the spool sweeper and housekeeping, the full-text indexer and ACME renewal;
- then it becomes mailhost/supervisor.py's small program (exec, the same pid; where the
  system has no memfd for the shared counts, it stays as it is and supervises in process):
  that restarts a worker that dies (its rows of the shared counts cleared first; a fresh
  Python, `resume`, since the image the first workers were forked from is gone), forwards
  SIGHUP (certificates again from their files) to every worker, and on SIGTERM or SIGINT
  asks every worker to drain, as a single process does, and waits for them.

The supervisor itself runs no thread and no event loop, so forking is safe. It logs "ready"
once every worker has started.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import logging
import os
import signal
import socket
import sys
import time

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

PIPE_BUF = 4096  # a write this short reaches a pipe whole, whichever worker writes it
STOP_TIMEOUT_EXTRA = 30.0  # beyond MAILHOST_SHUTDOWN_GRACE, then the stragglers are killed


def bind(name: str, host: str, port: int) -> socket.socket:
    """A listening socket as asyncio's create_server makes one (SO_REUSEADDR; IPv6 only on an
    IPv6 address), for a worker to serve with `create_server(sock=...)`."""
    infos = {
        (family, address)
        for family, _type, _proto, _name, address in socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    }
    if len(infos) != 1:
        raise ImproperlyConfigured(
            f"MAILHOST_BIND={host!r} names {len(infos)} addresses; with MAILHOST_PROCESSES above"
            " 1 it must name one (an IP address, or :: for IPv6 and IPv4)"
        )
    ((family, address),) = infos
    # IPPROTO_TCP named, as getaddrinfo gives it to create_server: asyncio sets TCP_NODELAY only
    # on sockets whose proto says TCP, and an accepted socket takes its listener's. With proto
    # 0, Nagle held each reply's second write until the client's delayed ACK: 40 ms a command.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(settings.MAILHOST_LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class Supervisor:
    def __init__(self, modules: tuple[str, ...], count: int, *, skip_missing: bool) -> None:
        self.modules = modules
        self.count = count
        self.skip_missing = skip_missing
        self.sockets: dict[str, socket.socket] = {}
        self.workers: dict[int, int] = {}  # pid -> slot
        self.started: dict[int, float] = {}  # slot -> when its process started

    # --- the plan

    def families(self, slot: int) -> tuple[str, ...]:
        from mailhost import runner

        if slot == 0:
            return self.modules
        every = (*runner.PER_PROCESS, *runner.EVERY_WORKER)
        return tuple(m for m in self.modules if m in every)

    def open_sockets(self) -> None:
        from mailhost import runner

        for module_name in self.modules:
            if module_name not in runner.PER_PROCESS:
                continue
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if self.skip_missing and exc.name and module_name.startswith(exc.name):
                    continue  # the worker says so
                raise
            for name, setting in module.PORTS.items():
                try:
                    self.sockets[name] = bind(
                        name, settings.MAILHOST_BIND, getattr(settings, setting)
                    )
                except OSError as exc:
                    self.close_sockets()
                    raise runner.cannot_listen(module_name, exc) from None

    def close_sockets(self) -> None:
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()

    # --- running

    def run(self) -> int:
        from django.db import connections

        from mailhost import fanout, listeners, supervisor

        self.open_sockets()
        fanout.prepare(self.count)
        self.shared = listeners.SharedCounts(self.count)
        self.ready_pipe = os.pipe()
        os.set_blocking(self.ready_pipe[0], False)
        self.error_pipe = os.pipe()  # a worker's configuration error, for the supervisor to say
        os.set_blocking(self.error_pipe[0], False)
        connections.close_all()  # a worker opens its own
        # Held until the supervision handles them, after the exec too: one that comes
        # meanwhile waits for it (the workers unblock them for themselves).
        signal.pthread_sigmask(signal.SIG_BLOCK, supervisor.HANDLED)
        logger.info(
            "supervisor %d: %d worker processes on %s",
            os.getpid(),
            self.count,
            ", ".join(f"{name}:{sock.getsockname()[1]}" for name, sock in self.sockets.items()),
        )
        for slot in range(self.count):
            self.workers[self.fork(slot)] = slot
            self.started[slot] = time.monotonic()
        if self.shared.fd is not None:
            self.become_supervisor()  # does not return
        supervision = supervisor.Supervision(
            count=self.count,
            workers=self.workers,
            started=self.started,
            ready_fd=self.ready_pipe[0],
            error_fd=self.error_pipe[0],
            stop_timeout=settings.MAILHOST_SHUTDOWN_GRACE + STOP_TIMEOUT_EXTRA,
            spawn=self.fork,
            clear=self.shared.clear,
            close=self.close_sockets,
        )
        try:
            return supervision.run()
        except supervisor.ConfigurationError as exc:
            raise ImproperlyConfigured(str(exc)) from None

    def become_supervisor(self) -> None:
        """Exec mailhost/supervisor.py's program in this process (same pid, the workers its
        children still): the app's image, whose pages the workers have copied as they wrote
        to them, is gone. The descriptors it needs, and that a worker started afresh
        inherits from it, pass through exec."""
        from mailhost import fanout, supervisor

        worker = {
            "modules": list(self.modules),
            "count": self.count,
            "skip_missing": self.skip_missing,
            "sockets": {name: sock.fileno() for name, sock in self.sockets.items()},
            "counts_fd": self.shared.fd,
            "counts_key": self.shared.key.hex(),
            "fanout": fanout.descriptors(),
            "ready_write": self.ready_pipe[1],
            "error_write": self.error_pipe[1],
        }
        state = {
            "count": self.count,
            "workers": {str(pid): slot for pid, slot in self.workers.items()},
            "started": {str(slot): at for slot, at in self.started.items()},
            "ready_read": self.ready_pipe[0],
            "error_read": self.error_pipe[0],
            "stop_timeout": settings.MAILHOST_SHUTDOWN_GRACE + STOP_TIMEOUT_EXTRA,
            "counts_fd": self.shared.fd,
            "counts_per_worker": self.shared.per_worker(),
            "sockets": worker["sockets"],
            "log_format": settings.LOGGING["formatters"]["plain"]["format"],
            "log_level": logging.getLogger().getEffectiveLevel(),
            "worker": worker,
        }
        descriptors = [
            *worker["sockets"].values(),
            self.shared.fd,
            *(fd for pair in worker["fanout"] for fd in pair),
            *self.ready_pipe,
            *self.error_pipe,
        ]
        for fd in descriptors:
            os.set_inheritable(fd, True)
        argv = supervisor.python("mailhost.supervisor.main", json.dumps(state))
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(argv[0], argv)

    def fork(self, slot: int) -> int:
        """A worker forked from this process's image: the pid."""
        # Everything made so far (Django, the imported families) moves to the collector's
        # permanent generation: a worker's collections never write to those objects' headers,
        # so their pages stay shared with the supervisor and the other workers instead of
        # being copied into each worker at its first full collection (issue 22: 2 workers'
        # PSS at 1000 idle IMAP connections). Python's gc.freeze() documentation advises it.
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            self.child(slot)
        return pid

    def child(self, slot: int) -> None:
        """Worker `slot`'s whole life, in its own process (forked, or started afresh)."""
        code = 1
        try:
            code = self.worker(slot)
        except ImproperlyConfigured as exc:
            # The supervisor stops everything and says it, once (manage.py's one line).
            with contextlib.suppress(OSError):
                os.write(self.error_pipe[1], str(exc).encode()[: PIPE_BUF - 1] + b"\0")
        except BaseException:
            logger.exception("worker %d failed", slot)
        finally:
            logging.shutdown()
            os._exit(code)

    def worker(self, slot: int) -> int:
        from mailhost import eventloop, fanout, listeners, runner, supervisor

        for signum in supervisor.HANDLED:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, supervisor.HANDLED)
        _die_with_parent()
        if self.ready_pipe[0] is not None:
            os.close(self.ready_pipe[0])
        self.shared.slot = slot
        listeners._shared = self.shared
        listeners._inherited = dict(self.sockets)
        fanout.attach(slot)

        def ready() -> None:
            os.write(self.ready_pipe[1], bytes([slot]))

        eventloop.run(
            runner._serve(
                self.families(slot), skip_missing=self.skip_missing, worker=slot, ready=ready
            )
        )
        return 0


def resume(encoded: str) -> None:
    """A worker started afresh by the supervisor (mailhost/supervisor.py) in place of one that
    died: the app imported anew (nothing is left to fork it from), the supervisor's sockets,
    shared counts and fan-out pairs taken from the descriptors it inherited. Never returns."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")
    import django

    django.setup()
    from mailhost import fanout, listeners
    from mailhost.logformat import lean_records

    lean_records()
    state = json.loads(encoded)
    worker = Supervisor(tuple(state["modules"]), state["count"], skip_missing=state["skip_missing"])
    worker.sockets = {name: socket.socket(fileno=fd) for name, fd in state["sockets"].items()}
    worker.shared = listeners.SharedCounts(
        state["count"], fd=state["counts_fd"], key=bytes.fromhex(state["counts_key"])
    )
    fanout.adopt(state["fanout"])
    worker.ready_pipe = (None, state["ready_write"])
    worker.error_pipe = (None, state["error_write"])
    worker.child(state["slot"])


def _die_with_parent() -> None:
    """A worker whose supervisor is gone (killed, even with -9) goes too: orphans would keep
    the ports, and the next start could not bind them (Linux: PR_SET_PDEATHSIG)."""
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the supervisor died before prctl took effect
        os._exit(1)


def supervise(modules: tuple[str, ...], count: int, *, skip_missing: bool) -> None:
    code = Supervisor(modules, count, skip_missing=skip_missing).run()
    if code:
        raise SystemExit(code)
