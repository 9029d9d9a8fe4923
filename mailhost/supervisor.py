"""The supervisor of several worker processes (MAILHOST_PROCESSES) once they have started: a
small program of the standard library alone, no Django.

mailhost/processes.py opens the ports and forks the first workers from runmail's image (what
it imported is then shared by the workers), and then becomes this program (exec, the same
pid): the image it forked them from was its own copy of every page the workers have since
written to (reference counts of the objects they share), 15-20 MiB that only it held (issue
22). From here on it waits: it restarts a worker that dies (a fresh Python that imports the
app, `processes.resume`, as the forked ones have no image left to be forked from), forwards
SIGHUP to every worker, and on SIGTERM or SIGINT asks every worker to drain and waits for
them. It logs "ready" once every worker has started. Everything it needs comes in one JSON
argument (`Supervision.state`); the descriptors it names were inherited through exec.

It runs no thread and imports nothing of the app: tests/mailhost/test_processes.py checks both.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("mailhost.processes")

PIPE_BUF = 4096  # a write this short reaches a pipe whole, whichever worker writes it
RESTART_BACKOFF = 1.0  # seconds before starting again a worker that died soon after its start
HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class ConfigurationError(Exception):
    """A worker's configuration error, said once as manage.py says one."""


class Supervision:
    """The workers' loop. `spawn(slot)` starts a worker and returns its pid: a fork of the
    app's image in processes.Supervisor where the system cannot pass the shared counts through
    exec, a fresh Python here."""

    def __init__(
        self,
        *,
        count: int,
        workers: dict[int, int],
        started: dict[int, float],
        ready_fd: int,
        error_fd: int,
        stop_timeout: float,
        spawn: Callable[[int], int],
        clear: Callable[[int], None],
        close: Callable[[], None],
    ) -> None:
        self.count = count
        self.workers = workers  # pid -> slot
        self.started = started  # slot -> when its process started
        self.ready: set[int] = set()  # slots that have started serving, at least once
        self.announced = False
        self.stopping = False
        self.reloading = False
        self.ready_fd = ready_fd
        self.error_fd = error_fd
        self.stop_timeout = stop_timeout
        self._spawn = spawn
        self._clear = clear
        self._close = close

    def run(self) -> int:
        """Supervise until SIGTERM or SIGINT, or until a worker dies before it ever served (its
        configuration is wrong): that exit code, with its error as ConfigurationError."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        signal.signal(signal.SIGHUP, self._reload)
        # Blocked by processes.Supervisor from before the first fork to here: one that came
        # meanwhile is delivered now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)
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
                error = os.read(self.error_fd, PIPE_BUF).split(b"\0")[0].decode(errors="replace")
            except BlockingIOError:
                error = ""
            if error:
                raise ConfigurationError(error)
        return code

    def _stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _reload(self, signum: int, frame: Any) -> None:
        self.reloading = True

    def spawn(self, slot: int) -> None:
        self._clear(slot)
        pid = self._spawn(slot)
        self.workers[pid] = slot
        self.started[slot] = time.monotonic()

    def wait_ready(self, timeout: float) -> None:
        try:
            readable, _, _ = select.select([self.ready_fd], [], [], timeout)
        except InterruptedError:
            return
        if not readable:
            return
        try:
            data = os.read(self.ready_fd, 256)
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
        deadline = time.monotonic() + self.stop_timeout
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
        self._close()
        logger.info("stopped")


def python(function: str, argument: str) -> list[str]:
    """argv of a fresh Python (this one's interpreter and flags) calling `function`
    ("module.name") with one string: the project's root on its path, not the caller's
    working directory."""
    import subprocess

    module, name = function.rsplit(".", 1)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = f"import sys; sys.path.insert(0, {root!r}); from {module} import {name}; {name}(sys.argv[1])"
    return [sys.executable, *subprocess._args_from_interpreter_flags(), "-c", code, argument]


def main(encoded: str) -> None:
    """The program processes.Supervisor becomes (`python(...)` of this with its state)."""
    state = json.loads(encoded)
    logging.basicConfig(format=state["log_format"], level=state["log_level"])
    counts_fd, per_worker = state["counts_fd"], state["counts_per_worker"]
    counts = mmap.mmap(counts_fd, per_worker * state["count"])
    worker_state = state["worker"]
    # Not for the workers started from here: what only this process reads.
    for fd in (state["ready_read"], state["error_read"]):
        os.set_inheritable(fd, False)

    def clear(slot: int) -> None:
        counts[slot * per_worker : (slot + 1) * per_worker] = bytes(per_worker)

    def spawn(slot: int) -> int:
        argv = python("mailhost.processes.resume", json.dumps({**worker_state, "slot": slot}))
        pid = os.fork()
        if pid == 0:
            try:
                os.execv(argv[0], argv)
            finally:
                os._exit(1)
        return pid

    def close() -> None:
        for fd in state["sockets"].values():
            os.close(fd)

    supervision = Supervision(
        count=state["count"],
        workers={int(pid): slot for pid, slot in state["workers"].items()},
        started={int(slot): at for slot, at in state["started"].items()},
        ready_fd=state["ready_read"],
        error_fd=state["error_read"],
        stop_timeout=state["stop_timeout"],
        spawn=spawn,
        clear=clear,
        close=close,
    )
    try:
        code = supervision.run()
    except ConfigurationError as exc:
        logging.shutdown()
        sys.exit(f"mailhost: configuration error: {exc}")  # as manage.py says it
    logging.shutdown()
    sys.exit(code)
