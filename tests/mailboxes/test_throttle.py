"""mailboxes/throttle.py on a fake clock: the rules, without sockets (the protocols' tests are
in tests/security/test_login_limiter.py)."""

from __future__ import annotations

import pytest

from mailboxes import throttle

IP = "203.0.113.5"


@pytest.fixture
def now(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(throttle, "clock", lambda: clock[0])
    return clock


def fail(user: str, ip: str = IP, exists: bool = True) -> None:
    throttle.record_failure(user, ip, user_exists=exists)


def test_penalty_doubles_from_base_to_the_cap_and_stays():
    delays = [throttle.penalty(n, throttle.PAIR_FREE_FAILURES) for n in range(200)]
    assert delays[: throttle.PAIR_FREE_FAILURES] == [0.0] * throttle.PAIR_FREE_FAILURES
    assert delays[throttle.PAIR_FREE_FAILURES] == throttle.BASE_DELAY
    assert delays == sorted(delays)
    assert delays[-1] == throttle.MAX_DELAY == max(delays)


def test_parallel_attempts_get_one_slot_each(now):
    """Ten connections asking at the same instant are spread PENALTY apart, not let through
    together; past max_wait they are refused unchecked."""
    for _ in range(throttle.PAIR_FREE_FAILURES + 1):
        fail("alice@example.org")
    step = throttle.penalty(throttle.PAIR_FREE_FAILURES + 1, throttle.PAIR_FREE_FAILURES)
    waits = []
    for _ in range(10):
        admission = throttle.admit("alice@example.org", IP, max_wait=throttle.MAX_DELAY)
        waits.append((admission.wait, admission.admitted))
    admitted = [wait for wait, ok in waits if ok]
    assert admitted == [pytest.approx(step * k) for k in range(1, len(admitted) + 1)]
    assert admitted[-1] <= throttle.MAX_DELAY
    assert not waits[-1][1] and waits[-1][0] > throttle.MAX_DELAY


def test_failures_are_forgotten_after_the_window(now):
    for _ in range(20):
        fail("alice@example.org")
    assert throttle.wait_for("alice@example.org", IP) > 0
    now[0] += throttle.WINDOW_SECONDS + 1
    assert throttle.wait_for("alice@example.org", IP) == 0
    fail("alice@example.org")  # one more after the window is a first failure again
    assert throttle.wait_for("alice@example.org", IP) == 0


def test_a_known_pair_waits_little_until_it_forfeits(now):
    throttle.record_success("alice@example.org", IP)
    for n in range(throttle.ADDRESS_FREE_FAILURES + 5):  # elsewhere, on alice
        fail("alice@example.org", f"198.51.100.{n}")
    for n in range(throttle.UNKNOWN_ADDRESS_BUDGET + 5):  # here, made-up addresses
        fail(f"nobody{n}@example.org", exists=False)
    assert throttle.wait_for("carol@example.org", IP) >= throttle.MAX_DELAY * 0.9
    assert throttle.wait_for("alice@example.org", "192.0.2.1") >= throttle.MAX_DELAY * 0.9
    assert throttle.wait_for("alice@example.org", IP) == 0
    # Its own failures: at most KNOWN_CLIENT_MAX_DELAY...
    for _ in range(throttle.KNOWN_CLIENT_FORFEIT - 1):
        fail("alice@example.org")
        assert throttle.wait_for("alice@example.org", IP) <= throttle.KNOWN_CLIENT_MAX_DELAY
    # ...until it has failed KNOWN_CLIENT_FORFEIT times: a stranger again.
    fail("alice@example.org")
    assert throttle.wait_for("alice@example.org", IP) >= throttle.MAX_DELAY * 0.9


def test_known_pairs_expire(now):
    throttle.record_success("alice@example.org", IP)
    for n in range(throttle.UNKNOWN_ADDRESS_BUDGET + 5):
        fail(f"nobody{n}@example.org", exists=False)
    assert throttle.wait_for("alice@example.org", IP) == 0
    now[0] += throttle.KNOWN_CLIENT_SECONDS + 1
    for n in range(throttle.UNKNOWN_ADDRESS_BUDGET + 5):
        fail(f"nobody{n}@example.org", exists=False)
    assert throttle.wait_for("alice@example.org", IP) > 0


def test_state_is_bounded(now, monkeypatch):
    monkeypatch.setattr(throttle, "MAX_TRACKED_KEYS", 50)
    monkeypatch.setattr(throttle, "MAX_KNOWN_CLIENTS", 20)
    for n in range(1000):
        fail(f"u{n}@example.org", f"10.0.{n // 256}.{n % 256}", exists=False)
        throttle.record_success(f"u{n}@example.org", f"10.0.{n // 256}.{n % 256}")
    assert len(throttle._counters) <= 50
    assert len(throttle._known) <= 20


@pytest.mark.parametrize(
    ("value", "logged"),
    [
        ("alice@example.org", "alice@example.org"),
        ("jörg@bücher.example", "jörg@bücher.example"),
        ("", '""'),
        (None, '""'),
        ("a b", '"a b"'),
        ('a"b', '"a\\"b"'),
        ("a\r\nb", '"a\\x0d\\x0ab"'),
        ("a\\b", '"a\\\\b"'),
    ],
)
def test_log_values_are_one_token(value, logged):
    assert throttle.log_value(value) == logged
