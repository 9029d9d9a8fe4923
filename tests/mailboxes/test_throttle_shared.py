"""The login limiter with REDIS_URL: every front end counts the same failures (a guess spread
over the front ends behind a balancer meets one limiter), and a Redis that fails leaves logins
limited per process rather than refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailboxes import throttle
from mailhost import redisconn

REDIS_URL = os.environ.get("REDIS_URL")
REPO = Path(__file__).resolve().parents[2]
IP = "203.0.113.9"

pytestmark = pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set")

# Another front end: its own process, the same Redis.
FAIL_IN_ANOTHER_PROCESS = """
import django, sys
django.setup()
from mailboxes import throttle
from mailhost import redisconn
for _ in range(int(sys.argv[1])):
    throttle.record_failure("alice@example.org", sys.argv[2], user_exists=True)
print(throttle.wait_for("alice@example.org", sys.argv[2]))
"""


def fail_elsewhere(count: int, ip: str = IP) -> float:
    env = {**os.environ, "REDIS_URL": REDIS_URL, "DJANGO_SETTINGS_MODULE": "mailhost.settings"}
    result = subprocess.run(
        [sys.executable, "-c", FAIL_IN_ANOTHER_PROCESS, str(count), ip],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return float(result.stdout.split()[-1])


def test_failures_in_another_process_delay_this_one(settings):
    settings.REDIS_URL = REDIS_URL
    throttle.reset()
    assert throttle.wait_for("alice@example.org", IP) == 0
    theirs = fail_elsewhere(throttle.PAIR_FREE_FAILURES + 3)
    ours = throttle.wait_for("alice@example.org", IP)
    keys = sorted(redisconn.client().scan_iter(f"{throttle.REDIS_PREFIX}*"))
    assert 0 < ours <= theirs, (ours, theirs, keys)  # less by the time the other took to exit
    admission = throttle.admit("alice@example.org", IP)
    assert admission.admitted and admission.wait > 0
    # The slot it reserved is seen by the other process too: parallel attempts through two
    # front ends are serialised, not let through together.
    assert fail_elsewhere(0) > admission.wait


def test_a_success_here_forgives_the_pair_there(settings):
    settings.REDIS_URL = REDIS_URL
    throttle.reset()
    fail_elsewhere(throttle.PAIR_FREE_FAILURES + 3, ip="198.51.100.7")
    throttle.record_success("alice@example.org", "198.51.100.7")
    assert fail_elsewhere(0, ip="198.51.100.7") == 0


def test_redis_down_limits_per_process(settings, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    for _ in range(throttle.PAIR_FREE_FAILURES + 3):
        throttle.record_failure("alice@example.org", IP, user_exists=True)
    assert throttle.wait_for("alice@example.org", IP) > 0
    assert "counting in this process" in caplog.text
