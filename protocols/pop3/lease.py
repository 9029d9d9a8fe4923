"""One POP3 session per maildrop, across every front end (RFC 1939 8: the exclusive lock).

A lease, not a lock held by a connection: the session takes it at login, renews it every
third of MAILHOST_POP3_LEASE_SECONDS and gives it back when it ends. A front end that dies
stops renewing, so its leases run out by themselves and the user can log in again.

With REDIS_URL set the lease is a Redis key with a TTL (SET NX PX; renew and release check
the holder in a Lua script). Otherwise it is a MaildropLease row, taken by a conditional
UPDATE or an INSERT that the primary key makes exclusive; that works on SQLite and
PostgreSQL alike. LOGIN-DELAY (RFC 2449 6.8), when set, is kept beside the lease.

A login may take the lease over from a live holder (MAILHOST_POP3_TAKEOVER: a phone that lost
signal leaves a half-open session that still renews). The old holder learns it at its next
renewal, or at once through the registry of its own process (told by another worker process of
the same server through mailhost/fanout.py); and its UPDATE runs under `held`,
which commits only while the lease is still its own, so a session that lost the maildrop
never deletes anything (RFC 1939 8 keeps exclusive access).

All functions here block: call them from a worker thread.
"""

from __future__ import annotations

import datetime
import enum
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from mailhost import redisconn
from protocols.pop3.models import MaildropLease

logger = logging.getLogger(__name__)

REDIS_PREFIX = "mailhost:pop3:"


class Outcome(enum.Enum):
    ACQUIRED = "acquired"
    TAKEN_OVER = "taken_over"  # from a live holder, named in Attempt.previous
    IN_USE = "in_use"
    LOGIN_DELAY = "login_delay"


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    previous: str = ""  # the holder whose lease was taken over


class LeaseLost(Exception):
    """The lease is no longer this holder's: another session took the maildrop over."""


def new_holder() -> str:
    return secrets.token_hex(16)


def acquire(mailbox_id: int, holder: str, *, take_over: bool = False) -> Attempt:
    """Take the lease when it is free; with `take_over`, also from a live holder."""
    if settings.REDIS_URL:
        return _redis_acquire(mailbox_id, holder, take_over)
    return _db_acquire(mailbox_id, holder, take_over)


def renew(mailbox_id: int, holder: str) -> bool:
    """Extend the lease; False when it is no longer ours (it ran out and was taken)."""
    if settings.REDIS_URL:
        ms = settings.MAILHOST_POP3_LEASE_SECONDS * 1000
        return redisconn.expire_if_held(_key("lease", mailbox_id), holder, ms)
    return bool(
        MaildropLease.objects.filter(mailbox_id=mailbox_id, holder=holder).update(
            expires_at=_expiry()
        )
    )


def release(mailbox_id: int, holder: str) -> None:
    if settings.REDIS_URL:
        redisconn.delete_if_held(_key("lease", mailbox_id), holder)
        return
    MaildropLease.objects.filter(mailbox_id=mailbox_id, holder=holder).update(
        holder="", expires_at=timezone.now()
    )


@contextmanager
def held(mailbox_id: int, holder: str) -> Iterator[None]:
    """A transaction that commits only while `holder` still holds the lease; LeaseLost (and
    a rollback) otherwise. For the UPDATE state: a session that lost its maildrop deletes
    nothing.

    Database lease: the renewal is the transaction's first write, so the row stays locked
    (PostgreSQL) or the database's write lock held (SQLite, BEGIN IMMEDIATE) until the commit;
    a takeover waits for it. Redis lease: checked again just before the commit; a takeover in
    the moment between that check and the commit is not seen (see README).
    """
    with transaction.atomic():
        if not renew(mailbox_id, holder):
            raise LeaseLost(mailbox_id)
        yield
        if (
            settings.REDIS_URL
            and redisconn.client().get(_key("lease", mailbox_id)) != holder.encode()
        ):
            raise LeaseLost(mailbox_id)


def _expiry() -> datetime.datetime:
    return timezone.now() + datetime.timedelta(seconds=settings.MAILHOST_POP3_LEASE_SECONDS)


def _db_acquire(mailbox_id: int, holder: str, take_over: bool) -> Attempt:
    now = timezone.now()
    delay = settings.MAILHOST_POP3_LOGIN_DELAY
    with transaction.atomic():
        rows = MaildropLease.objects.filter(mailbox_id=mailbox_id)
        if delay:
            recent = now - datetime.timedelta(seconds=delay)
            if rows.filter(last_login_at__gt=recent).exists():
                return Attempt(Outcome.LOGIN_DELAY)
        # Taking an expired or released lease: only one concurrent UPDATE can match.
        if rows.filter(expires_at__lte=now).update(
            holder=holder, expires_at=_expiry(), last_login_at=now
        ):
            return Attempt(Outcome.ACQUIRED)
        current = rows.values_list("holder", flat=True).first()
        if current is not None and take_over:
            # Compare and set: the holder read is the one replaced, or nothing is.
            if rows.filter(holder=current).update(
                holder=holder, expires_at=_expiry(), last_login_at=now
            ):
                return Attempt(Outcome.TAKEN_OVER, previous=current)
        if current is not None:
            return Attempt(Outcome.IN_USE)
        try:
            with transaction.atomic():
                MaildropLease.objects.create(
                    mailbox_id=mailbox_id, holder=holder, expires_at=_expiry(), last_login_at=now
                )
        except IntegrityError:
            return Attempt(Outcome.IN_USE)
    return Attempt(Outcome.ACQUIRED)


def _key(kind: str, mailbox_id: int) -> str:
    return f"{REDIS_PREFIX}{kind}:{mailbox_id}"


def _redis_acquire(mailbox_id: int, holder: str, take_over: bool) -> Attempt:
    client = redisconn.client()
    delay = settings.MAILHOST_POP3_LOGIN_DELAY
    if delay and client.exists(_key("login", mailbox_id)):
        return Attempt(Outcome.LOGIN_DELAY)
    ms = settings.MAILHOST_POP3_LEASE_SECONDS * 1000
    key = _key("lease", mailbox_id)
    if take_over:
        # SET ... GET: one atomic step that also says whose lease it was (Redis 6.2).
        previous = client.set(key, holder, px=ms, get=True)
        attempt = (
            Attempt(Outcome.TAKEN_OVER, previous=previous.decode())
            if previous
            else Attempt(Outcome.ACQUIRED)
        )
    elif client.set(key, holder, nx=True, px=ms):
        attempt = Attempt(Outcome.ACQUIRED)
    else:
        return Attempt(Outcome.IN_USE)
    if delay:
        client.set(_key("login", mailbox_id), "1", ex=delay)
    return attempt
