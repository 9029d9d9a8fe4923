"""One limiter for password guessing on every protocol (SMTP AUTH, IMAP, POP3, webmail).

Failures are counted per address and per client IP in a sliding window; each further attempt
waits longer (doubling, capped). In-process: each front end slows its own guessers, which is
what matters against a single attacker hammering one connection or one address.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque

WINDOW_SECONDS = 900
FREE_FAILURES = 3  # failures before any delay
BASE_DELAY = 0.5
MAX_DELAY = 15.0

_lock = threading.Lock()
_failures: dict[str, deque[float]] = defaultdict(deque)


def _keys(address: str | None, client_ip: str | None) -> list[str]:
    keys = []
    if address:
        keys.append("a:" + address.strip().lower())
    if client_ip:
        keys.append("ip:" + client_ip)
    return keys


def _recent(key: str, now: float) -> int:
    entries = _failures.get(key)
    if not entries:
        return 0
    while entries and entries[0] < now - WINDOW_SECONDS:
        entries.popleft()
    return len(entries)


def delay_for(address: str | None, client_ip: str | None) -> float:
    """Seconds the next attempt should wait before it is checked."""
    now = time.monotonic()
    with _lock:
        count = max((_recent(k, now) for k in _keys(address, client_ip)), default=0)
    if count < FREE_FAILURES:
        return 0.0
    return min(MAX_DELAY, BASE_DELAY * 2 ** (count - FREE_FAILURES))


def record_failure(address: str | None, client_ip: str | None) -> None:
    now = time.monotonic()
    with _lock:
        for key in _keys(address, client_ip):
            _failures[key].append(now)


def record_success(address: str | None, client_ip: str | None) -> None:
    with _lock:
        if address:
            _failures.pop("a:" + address.strip().lower(), None)


def reset() -> None:
    with _lock:
        _failures.clear()
