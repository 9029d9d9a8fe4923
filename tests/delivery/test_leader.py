"""The delivery processes' leader (delivery/leader.py): with REDIS_URL one sweeper of several
sweeps and keeps house; when it stops, or dies and its lease runs out, another leads."""

from __future__ import annotations

import os
import threading
import time

import pytest

from delivery import housekeeping, leader, worker
from mailhost import redisconn

REDIS_URL = os.environ.get("REDIS_URL")

pytestmark = pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set")


@pytest.fixture
def redis_settings(settings):
    settings.REDIS_URL = REDIS_URL
    settings.MAILHOST_SWEEP_INTERVAL = 0.05
    redisconn.client().delete(leader.LEADER_KEY)
    yield settings
    redisconn.client().delete(leader.LEADER_KEY)


def test_one_leader_until_it_gives_the_lead_back(redis_settings):
    first, second = leader.Leadership(), leader.Leadership()
    assert first.hold() and first.hold()  # taken, then renewed
    assert not second.hold()
    first.release()
    assert second.hold() and not first.hold()


def test_a_leader_that_died_is_replaced_after_its_lease(redis_settings, monkeypatch):
    monkeypatch.setattr(leader, "LEADER_MIN_SECONDS", 0.3)
    dead, heir = leader.Leadership(), leader.Leadership()
    assert dead.hold()
    assert not heir.hold()
    time.sleep(0.5)  # the dead one renews no more
    assert heir.hold()


def test_two_sweepers_sweep_from_one_process_at_a_time(redis_settings, monkeypatch, db):
    monkeypatch.setattr(leader, "LEADER_MIN_SECONDS", 0.3)
    passes: list[str] = []
    monkeypatch.setattr(
        housekeeping, "sweep", lambda: passes.append(threading.current_thread().name)
    )
    monkeypatch.setattr(housekeeping, "housekeep", lambda: passes.append("housekeep"))
    sweepers = [worker.Sweeper(), worker.Sweeper()]
    for index, sweeper in enumerate(sweepers):
        sweeper.name = f"sweeper-{index}"
        sweeper.start()
    try:
        time.sleep(0.6)
        sweeps = [name for name in passes if name != "housekeep"]
        assert len(sweeps) >= 5 and len(set(sweeps)) == 1, sweeps
        assert passes.count("housekeep") == 1  # once, by the leader, not once per sweeper
        first = sweeps[0]
        stopped = next(s for s in sweepers if s.name == first)
        stopped.stop()
        stopped.join(5)
        passes.clear()
        time.sleep(0.4)
        assert passes and set(passes) - {"housekeep"} == {s.name for s in sweepers} - {first}
    finally:
        for sweeper in sweepers:
            sweeper.stop()
            sweeper.join(5)
