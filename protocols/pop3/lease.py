"""One POP3 session per maildrop, across every front end (RFC 1939 8: the exclusive lock).

A lease, not a lock held by a connection: the session takes it at login, renews it every
third of MAILHOST_POP3_LEASE_SECONDS and gives it back when it ends. A front end that dies
stops renewing, so its leases run out by themselves and the user can log in again.

With REDIS_URL set the lease is a Redis key with a TTL (SET NX PX; renew and release check
the holder in a Lua script). Otherwise it is a MaildropLease row, taken by a conditional
UPDATE or an INSERT that the primary key makes exclusive; that works on SQLite and
PostgreSQL alike. LOGIN-DELAY (RFC 2449 6.8), when set, is kept beside the lease.

All functions here block: call them from a worker thread.
"""

from __future__ import annotations

import datetime
import enum
import logging
import secrets
import threading

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from protocols.pop3.models import MaildropLease

logger = logging.getLogger(__name__)

REDIS_PREFIX = "mailhost:pop3:"

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class Outcome(enum.Enum):
    ACQUIRED = "acquired"
    IN_USE = "in_use"
    LOGIN_DELAY = "login_delay"


def new_holder() -> str:
    return secrets.token_hex(16)


def acquire(mailbox_id: int, holder: str) -> Outcome:
    if settings.REDIS_URL:
        return _redis_acquire(mailbox_id, holder)
    return _db_acquire(mailbox_id, holder)


def renew(mailbox_id: int, holder: str) -> bool:
    """Extend the lease; False when it is no longer ours (it ran out and was taken)."""
    if settings.REDIS_URL:
        ms = settings.MAILHOST_POP3_LEASE_SECONDS * 1000
        return bool(_redis().eval(_RENEW, 1, _key("lease", mailbox_id), holder, ms))
    return bool(
        MaildropLease.objects.filter(mailbox_id=mailbox_id, holder=holder).update(
            expires_at=_expiry()
        )
    )


def release(mailbox_id: int, holder: str) -> None:
    if settings.REDIS_URL:
        _redis().eval(_RELEASE, 1, _key("lease", mailbox_id), holder)
        return
    MaildropLease.objects.filter(mailbox_id=mailbox_id, holder=holder).update(
        holder="", expires_at=timezone.now()
    )


def _expiry() -> datetime.datetime:
    return timezone.now() + datetime.timedelta(seconds=settings.MAILHOST_POP3_LEASE_SECONDS)


def _db_acquire(mailbox_id: int, holder: str) -> Outcome:
    now = timezone.now()
    delay = settings.MAILHOST_POP3_LOGIN_DELAY
    with transaction.atomic():
        free = MaildropLease.objects.filter(mailbox_id=mailbox_id, expires_at__lte=now)
        if delay:
            recent = now - datetime.timedelta(seconds=delay)
            if MaildropLease.objects.filter(
                mailbox_id=mailbox_id, last_login_at__gt=recent
            ).exists():
                return Outcome.LOGIN_DELAY
        # Taking an expired or released lease: only one concurrent UPDATE can match.
        if free.update(holder=holder, expires_at=_expiry(), last_login_at=now):
            return Outcome.ACQUIRED
        if MaildropLease.objects.filter(mailbox_id=mailbox_id).exists():
            return Outcome.IN_USE
        try:
            with transaction.atomic():
                MaildropLease.objects.create(
                    mailbox_id=mailbox_id, holder=holder, expires_at=_expiry(), last_login_at=now
                )
        except IntegrityError:
            return Outcome.IN_USE
    return Outcome.ACQUIRED


_redis_lock = threading.Lock()
_redis_client = None


def _redis():
    global _redis_client
    with _redis_lock:
        if _redis_client is None:
            import redis

            _redis_client = redis.Redis.from_url(settings.REDIS_URL)
        return _redis_client


def _key(kind: str, mailbox_id: int) -> str:
    return f"{REDIS_PREFIX}{kind}:{mailbox_id}"


def _redis_acquire(mailbox_id: int, holder: str) -> Outcome:
    client = _redis()
    delay = settings.MAILHOST_POP3_LOGIN_DELAY
    if delay and client.exists(_key("login", mailbox_id)):
        return Outcome.LOGIN_DELAY
    ms = settings.MAILHOST_POP3_LEASE_SECONDS * 1000
    if not client.set(_key("lease", mailbox_id), holder, nx=True, px=ms):
        return Outcome.IN_USE
    if delay:
        client.set(_key("login", mailbox_id), "1", ex=delay)
    return Outcome.ACQUIRED
