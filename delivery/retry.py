"""When a deferred recipient is tried again."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

MINUTE = 60
HOUR = 60 * MINUTE

# Seconds to wait before attempt n+1 (index n = attempts made so far): the first attempt at
# once, then 5m, 10m, 30m, 1h, 2h, 4h, 8h, 16h, and every 16h after that until the queue
# lifetime (settings.MAILHOST_QUEUE_LIFETIME, 5 days) runs out. MAILHOST_RETRY_SCHEDULE
# replaces it (tests use fractions of a second).
RETRY_SCHEDULE: tuple[float, ...] = (
    0,
    5 * MINUTE,
    10 * MINUTE,
    30 * MINUTE,
    1 * HOUR,
    2 * HOUR,
    4 * HOUR,
    8 * HOUR,
    16 * HOUR,
)


def retry_schedule() -> tuple[float, ...]:
    return settings.MAILHOST_RETRY_SCHEDULE or RETRY_SCHEDULE


def retry_delay(attempts: int) -> float:
    """Seconds until the next attempt, after `attempts` attempts."""
    schedule = retry_schedule()
    return schedule[min(attempts, len(schedule) - 1)]


def expires_at(created_at: datetime) -> datetime:
    return created_at + timedelta(seconds=settings.MAILHOST_QUEUE_LIFETIME)


def next_attempt_at(*, attempts: int, now: datetime, created_at: datetime) -> datetime:
    """The next attempt, never later than the expiry (the last try happens at expiry)."""
    return min(now + timedelta(seconds=retry_delay(attempts)), expires_at(created_at))
