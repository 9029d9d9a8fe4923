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
  embedded queue's messages, or RQ workers). Worker 0 also runs what must run once: the
  web app, the spool sweeper and housekeeping, the full-text indexer and ACME renewal;
- it restarts a worker that dies (its rows of the shared counts cleared first), forwards
  SIGHUP (certificates again from their files) to every worker, and on SIGTERM or SIGINT
  asks every worker to drain, as a single process does, and waits for them.

The supervisor itself runs no thread and no event loop, so forking again after a crash is as
safe as the first time. It logs "ready" once every worker has started.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import select
import signal
import socket
import time
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

PIPE_BUF = 4096  # a write this short reaches a pipe whole, whichever worker writes it
RESTART_BACKOFF = 1.0  # seconds before starting again a worker that died soon after its start
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
        self.ready: set[int] = set()  # slots that have started serving, at least once
        self.announced = False
        self.stopping = False
        self.reloading = False

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

        from mailhost import fanout, listeners

        self.open_sockets()
        fanout.prepare(self.count)
        self.shared = listeners.SharedCounts(self.count)
        self.ready_pipe = os.pipe()
        os.set_blocking(self.ready_pipe[0], False)
        self.error_pipe = os.pipe()  # a worker's configuration error, for the supervisor to say
        os.set_blocking(self.error_pipe[0], False)
        connections.close_all()  # a worker opens its own
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        signal.signal(signal.SIGHUP, self._reload)
        logger.info(
            "supervisor %d: %d worker processes on %s",
            os.getpid(),
            self.count,
            ", ".join(f"{name}:{sock.getsockname()[1]}" for name, sock in self.sockets.items()),
        )
        for slot in range(self.count):
            self.spawn(slot)
        code = 0
        while not self.stopping:
            self.wait_ready(0.2)
            if self.reloading:
                self.reloading = False
                logger.info("SIGHUP: workers reload their certificates")
                self.signal_all(signal.SIGHUP)
            failed = self.reap()
            if failed is not None:
                code = failed
                break
        self.shutdown()
        if code:
            try:
                error = (
                    os.read(self.error_pipe[0], PIPE_BUF).split(b"\0")[0].decode(errors="replace")
                )
            except BlockingIOError:
                error = ""
            if error:
                raise ImproperlyConfigured(error)
        return code

    def _stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _reload(self, signum: int, frame: Any) -> None:
        self.reloading = True

    def spawn(self, slot: int) -> None:
        self.shared.clear(slot)
        # Everything made so far (Django, the imported families) moves to the collector's
        # permanent generation: a worker's collections never write to those objects' headers,
        # so their pages stay shared with the supervisor and the other workers instead of
        # being copied into each worker at its first full collection (issue 22: 2 workers'
        # PSS at 1000 idle IMAP connections). Python's gc.freeze() documentation advises it.
        gc.freeze()
        pid = os.fork()
        if pid == 0:  # the worker
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
        self.workers[pid] = slot
        self.started[slot] = time.monotonic()

    def worker(self, slot: int) -> int:
        from mailhost import eventloop, fanout, listeners, runner

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        _die_with_parent()
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

    def wait_ready(self, timeout: float) -> None:
        try:
            readable, _, _ = select.select([self.ready_pipe[0]], [], [], timeout)
        except InterruptedError:
            return
        if not readable:
            return
        try:
            data = os.read(self.ready_pipe[0], 256)
        except BlockingIOError:
            return
        self.ready.update(data)
        if not self.announced and len(self.ready) == self.count:
            self.announced = True
            logger.info("ready")

    def reap(self) -> int | None:
        """Restart the workers that died; the exit code to stop with when one died before it
        ever started serving (its configuration is wrong: starting it again would not help)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
            slot = self.workers.pop(pid, None)
            if slot is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                continue
            if slot not in self.ready:
                logger.error("worker %d (pid %d) exited with %s before serving", slot, pid, code)
                return code or 1
            logger.warning("worker %d (pid %d) exited with %s; starting it again", slot, pid, code)
            if time.monotonic() - self.started[slot] < RESTART_BACKOFF:
                time.sleep(RESTART_BACKOFF)
            self.spawn(slot)

    def signal_all(self, signum: int) -> None:
        for pid in list(self.workers):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def shutdown(self) -> None:
        logger.info("shutting down: workers finish what is in flight")
        self.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + settings.MAILHOST_SHUTDOWN_GRACE + STOP_TIMEOUT_EXTRA
        while self.workers and time.monotonic() < deadline:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.05)
                continue
            self.workers.pop(pid, None)
        if self.workers:
            logger.warning("killing %d worker(s) that did not stop", len(self.workers))
            self.signal_all(signal.SIGKILL)
            for pid in list(self.workers):
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
        self.close_sockets()
        logger.info("stopped")


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
