"""Politeness per destination: how many sessions at once, how fast, and when to come back.

A destination is what one group of recipients is sent to: their domain, or the smart host.
Each worker thread asks `destinations.acquire(name)` before it connects and gives the slot
back with `release(name, ...)`; a destination that cannot be served now (all its sessions
busy, its rate used up for a while, or backing off after failures) gets its recipients
deferred without counting an attempt, so the worker moves on to other mail at once: one slow
or failing domain cannot hold every thread.

- Concurrency: at most MAILHOST_OUTBOUND_DESTINATION_CONCURRENCY sessions at once (Postfix's
  default_destination_concurrency_limit is 20 too).
- Rate: at most MAILHOST_OUTBOUND_DESTINATION_RATE messages a second (0: no limit).
- A destination that answers 421 or an enhanced code 4.7.x (RFC 3463: "security or policy
  status", how Gmail and Outlook say "too fast") is throttled for THROTTLE_SECONDS: one
  session at a time, at half its rate (THROTTLED_RATE when it had none); each new such reply
  halves the rate again and starts the period anew.
- Backoff: a destination where no host took a transaction (connect failures, 4xx greetings,
  lost sessions) is left alone for BACKOFF_FIRST seconds, doubling with each failure in a
  row up to BACKOFF_MAX; a transaction at it ends the backoff.

The state lives in the process (each rqworker process has its own): it is a politeness
measure, not a record; the spool stays the queue's truth.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings

logger = logging.getLogger(__name__)

THROTTLE_SECONDS = 300.0
THROTTLED_RATE = 1.0  # messages/s at a throttled destination that had no rate of its own
BACKOFF_FIRST = 5.0
BACKOFF_MAX = 600.0
# A wait for the rate this short is slept in the worker; a longer one defers the recipients.
RATE_SLEEP_MAX = 0.5
# Seconds until recipients deferred because every session of their destination was busy
# are tried again.
BUSY_RETRY = 1.0


@dataclass
class _State:
    active: int = 0
    next_start: float = 0.0  # monotonic time the next message may start (rate)
    throttled_until: float = 0.0
    throttled_rate: float = 0.0
    failures: int = 0  # failures in a row
    backoff_until: float = 0.0


@dataclass(frozen=True)
class Wait:
    """Why a destination cannot be served now, and for how long (seconds)."""

    seconds: float
    reason: str


class Destinations:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, _State] = {}

    def _state(self, name: str) -> _State:
        state = self._states.get(name)
        if state is None:
            state = self._states[name] = _State()
        return state

    def limits(self, name: str, now: float | None = None) -> tuple[int, float]:
        """(sessions at once, messages per second; 0 for no limit) in force for `name`."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return self._limits(self._state(name), now)

    def _limits(self, state: _State, now: float) -> tuple[int, float]:
        concurrency = max(1, settings.MAILHOST_OUTBOUND_DESTINATION_CONCURRENCY)
        rate = settings.MAILHOST_OUTBOUND_DESTINATION_RATE
        if state.throttled_until > now:
            return 1, state.throttled_rate
        return concurrency, rate

    def acquire(self, name: str, *, force: bool = False) -> Wait | None:
        """Take a session slot at `name` (None: taken, call release) or say how long to wait.
        `force` (an operator's "retry now") takes one whatever the limits say."""
        sleep = 0.0
        with self._lock:
            now = time.monotonic()
            state = self._state(name)
            if force:
                state.active += 1
                return None
            if state.backoff_until > now:
                return Wait(
                    state.backoff_until - now, f"backing off after {state.failures} failure(s)"
                )
            concurrency, rate = self._limits(state, now)
            if state.active >= concurrency:
                return Wait(BUSY_RETRY, f"{state.active} session(s) busy")
            if rate:
                sleep = max(0.0, state.next_start - now)
                if sleep > RATE_SLEEP_MAX:
                    return Wait(sleep, f"rate of {rate:g} message(s)/s")
                state.next_start = max(now, state.next_start) + 1 / rate
            state.active += 1
        if sleep:
            time.sleep(sleep)
        return None

    def release(
        self, name: str, *, transacted: bool, failed: bool, throttled: bool = False
    ) -> None:
        """Give the slot back. `transacted`: a host took a transaction (whatever it said to
        the recipients); `failed`: hosts were tried and none took one (neither: nothing was
        tried, every address unreachable moments ago); `throttled`: a 421 or 4.7.x."""
        with self._lock:
            now = time.monotonic()
            state = self._state(name)
            state.active = max(0, state.active - 1)
            if throttled:
                _, rate = self._limits(state, now)
                state.throttled_rate = rate / 2 if rate else THROTTLED_RATE
                state.throttled_until = now + THROTTLE_SECONDS
                state.next_start = max(state.next_start, now + 1 / state.throttled_rate)
                logger.info(
                    "destination throttled name=%s rate=%g seconds=%g",
                    name,
                    state.throttled_rate,
                    THROTTLE_SECONDS,
                )
            if transacted:
                state.failures = 0
                state.backoff_until = 0.0
            elif failed:
                state.failures += 1
                backoff = min(BACKOFF_FIRST * 2 ** (state.failures - 1), BACKOFF_MAX)
                state.backoff_until = now + backoff
                logger.info(
                    "destination backoff name=%s failures=%d seconds=%g",
                    name,
                    state.failures,
                    backoff,
                )

    def forget(self) -> None:
        with self._lock:
            self._states.clear()


destinations = Destinations()
