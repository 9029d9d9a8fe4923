"""DeliveryProcesses' supervision: a child that dies is started again, and a stop reaches
every child, one started again meanwhile included (real processes, real signals)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

from delivery.worker import DeliveryProcesses

# A child that lives until it is told to stop (SIGTERM's default action ends it).
CHILD = [sys.executable, "-c", "import time; time.sleep(120)"]


class Sleepers(DeliveryProcesses):
    """DeliveryProcesses whose children are sleeping interpreters, and whose restart of a
    dead child takes `restart_takes` seconds (Popen of `manage.py runworker` takes time too),
    saying when it begins."""

    def __init__(self, count: int, restart_takes: float = 0.0) -> None:
        super().__init__(count)
        self.restart_takes = restart_takes
        self.restarting = threading.Event()
        self.spawned = 0

    def _spawn(self, index: int):  # noqa: ANN202
        if self.spawned >= self.count:  # a restart, by the monitor
            self.restarting.set()
            time.sleep(self.restart_takes)
        self.spawned += 1
        return subprocess.Popen(CHILD)


def _kill(child) -> None:  # noqa: ANN001
    child.send_signal(signal.SIGKILL)
    child.wait(5)


def test_a_child_that_dies_is_started_again(settings):
    settings.REDIS_URL = ""
    processes = Sleepers(2)
    processes.start()
    try:
        first = processes.children[0]
        _kill(first)
        deadline = time.monotonic() + 10
        while processes.children[0] is first:
            assert time.monotonic() < deadline, "the dead child was not started again"
            time.sleep(0.05)
        assert processes.children[0].poll() is None
    finally:
        processes.close()
        processes.join(10)


def test_a_stop_during_a_restart_stops_the_child_started_again(settings, monkeypatch):
    """close() while the monitor is starting a dead child again: the new child is told to
    stop too, so join() does not wait its whole timeout for it and then kill it. Told by
    how the child ended, not by how long join() took (CI runs two passes on two cores):
    join() tells a child to stop again only after its timeout here, so that a child nobody
    told is killed (SIGKILL), not stopped by join's own SIGTERM."""
    from delivery import worker

    monkeypatch.setattr(worker, "TERM_AGAIN", 60.0)
    settings.REDIS_URL = ""
    processes = Sleepers(2, restart_takes=0.5)
    processes.start()
    children = list(processes.children)
    try:
        _kill(children[0])
        assert processes.restarting.wait(10), "the dead child was not started again"
    finally:
        processes.close()
        processes.join(15)
    assert processes.children[0] is not children[0]  # the restart happened, and was stopped
    assert [child.returncode for child in processes.children] == [-signal.SIGTERM] * 2


# A child that does not stop on its first SIGTERM (missed while busy, say), only on the next.
DEAF_ONCE = """
import signal, sys, time
heard = []
def on_term(signum, frame):
    heard.append(signum)
    if len(heard) > 1:
        sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
time.sleep(120)
"""


def test_a_child_that_did_not_stop_is_told_again_before_it_is_killed(settings, monkeypatch):
    from delivery import worker

    monkeypatch.setattr(worker, "TERM_AGAIN", 1.0)
    settings.REDIS_URL = ""
    processes = Sleepers(1)
    processes.start()
    replaced = processes.children[0]
    try:
        deaf = subprocess.Popen([sys.executable, "-c", DEAF_ONCE], stdout=subprocess.PIPE)
        assert deaf.stdout.readline() == b"ready\n"
        # The child replaced lives on until the end: the monitor, which may have read it from
        # the list just before, finds it alive and starts none in the deaf one's place.
        processes.children[0] = deaf
    finally:
        processes.close()
        processes.join(20)
        _kill(replaced)
    # Stopped on the second SIGTERM: a child not told again is killed at join's timeout.
    assert deaf.returncode == 0
