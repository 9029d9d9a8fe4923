"""Writes for the spam filter: training requests and the trainer, known senders, the
greylist. Training is recorded in the caller's transaction (a SpamTraining row, so it is as
durable as the move that asked for it) and done after the commit; what a crash leaves
pending, housekeeping (delivery.housekeeping.housekeep) finishes."""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from delivery.models import GreylistEntry, KnownSender, SpamToken, SpamTraining
from delivery.spam import selectors
from delivery.spam.tokens import message_hashes
from mailhost.plainsql import Insert

logger = logging.getLogger("mailhost.spam")


# --- Training ------------------------------------------------------------------------------


# A move of up to this many messages is trained before the mover hears back (right after
# the commit); a larger one (a whole folder dragged into Junk) in a background thread.
TRAIN_INLINE = 50


def training_request(
    *, mailbox_id: int, messages: Iterable[tuple[int, str]], spam: bool
) -> list[int]:
    """Record, in the caller's transaction, that these messages ((blob id, From address)
    pairs) of one mailbox are spam (or ham), and train on them once it commits. Un-junked
    senders become known senders. Returns the SpamTraining ids."""
    messages = list(messages)
    blob_ids = sorted({blob_id for blob_id, _ in messages})
    existing = dict(
        SpamTraining.objects.filter(mailbox_id=mailbox_id, blob_id__in=blob_ids).values_list(
            "blob_id", "spam"
        )
    )
    changed = [b for b, wanted in existing.items() if wanted != spam]
    if changed:
        SpamTraining.objects.filter(mailbox_id=mailbox_id, blob_id__in=changed).update(
            spam=spam, updated_at=timezone.now()
        )
    SpamTraining.objects.bulk_create(
        [
            SpamTraining(mailbox_id=mailbox_id, blob_id=b, spam=spam)
            for b in blob_ids
            if b not in existing
        ],
        ignore_conflicts=True,  # a concurrent request for the same message: one row
    )
    ids = list(
        SpamTraining.objects.filter(mailbox_id=mailbox_id, blob_id__in=blob_ids).values_list(
            "id", flat=True
        )
    )
    if not spam:
        known_senders_add(
            mailbox_id=mailbox_id, addresses=[a for _, a in messages], source="not_junk"
        )
    if len(ids) <= TRAIN_INLINE:
        transaction.on_commit(lambda: _train_quietly(ids))
    else:
        transaction.on_commit(lambda: _train_in_background(ids))
    return ids


def _train_quietly(ids: list[int]) -> None:
    # After the commit: a failure here must not turn the user's move into an error; the rows
    # stay pending for housekeeping.
    try:
        training_run(ids=ids)
    except Exception:
        logger.exception("spam training failed; left pending ids=%s", ids[:20])


def _train_in_background(ids: list[int]) -> None:
    def run() -> None:
        from django.db import close_old_connections, connections

        try:
            close_old_connections()
            _train_quietly(ids)
        finally:
            connections.close_all()

    threading.Thread(target=run, name="spam-train", daemon=True).start()


def training_run(*, ids: Iterable[int] | None = None) -> int:
    """Make pending SpamTraining rows (these, or all) agree with what the user said; safe to
    run twice and concurrently (each row is locked while its counts change). Returns how
    many rows were trained. Stops at the first backend failure (rspamd down): the rest stay
    pending for the next housekeeping pass."""
    wanted = list(ids) if ids is not None else selectors.trainings_pending()
    done = 0
    for training_id in wanted:
        try:
            if _train_one(training_id):
                done += 1
        except _BackendUnavailable as exc:
            logger.warning(
                "spam_train deferred id=%s pending=%d reason=%s",
                training_id,
                len(wanted) - done,
                exc,
            )
            break
    return done


class _BackendUnavailable(Exception):
    pass


def _train_one(training_id: int) -> bool:
    from mailboxes.models import Blob
    from mailboxes.selectors import blob_read

    row = SpamTraining.objects.filter(pk=training_id).first()
    if row is None or row.trained == row.spam:
        return False
    try:
        raw = blob_read(row.blob_id)
    except (Blob.DoesNotExist, FileNotFoundError):
        logger.info("spam_train dropped id=%s reason=message-gone", training_id)
        SpamTraining.objects.filter(pk=training_id).delete()
        return False
    if settings.MAILHOST_SPAM_BACKEND == "rspamd":
        from delivery.spam import rspamd

        try:
            rspamd.learn(raw, spam=row.spam)
        except rspamd.RspamdError as exc:
            raise _BackendUnavailable(str(exc)) from exc
        updated = SpamTraining.objects.filter(pk=training_id, spam=row.spam).update(
            trained=row.spam
        )
        logger.info(
            "spam_train mailbox=%s class=%s backend=rspamd",
            row.mailbox_id,
            "spam" if row.spam else "ham",
        )
        return bool(updated)
    hashes = message_hashes(raw)
    with transaction.atomic():
        row = SpamTraining.objects.select_for_update().filter(pk=training_id).first()
        if row is None or row.trained == row.spam:
            return False
        if row.trained is not None:
            _count(row.mailbox_id, hashes, spam=row.trained, delta=-1)
        _count(row.mailbox_id, hashes, spam=row.spam, delta=1)
        SpamTraining.objects.filter(pk=training_id).update(trained=row.spam)
    logger.info(
        "spam_train mailbox=%s class=%s tokens=%d backend=builtin",
        row.mailbox_id,
        "spam" if row.spam else "ham",
        len(hashes),
    )
    return True


def _count(mailbox_id: int, hashes: list[int], *, spam: bool, delta: int) -> None:
    """Add (delta 1) or take back (delta -1) one message of a class: its tokens' counts and
    the mailbox's totals row, in plain upserts (SQLite 3.24+ and PostgreSQL)."""
    table = connection.ops.quote_name(SpamToken._meta.db_table)
    column = "spam" if spam else "ham"
    every = [selectors.TOTALS_TOKEN, *hashes]
    with connection.cursor() as cursor:
        for start in range(0, len(every), 300):
            chunk = every[start : start + 300]
            if delta > 0:
                values = ", ".join(["(%s, %s, %s, %s)"] * len(chunk))
                params: list = []
                for token in chunk:
                    params += [mailbox_id, token, 1 if spam else 0, 0 if spam else 1]
                cursor.execute(
                    f"INSERT INTO {table} (mailbox_id, token, spam, ham) VALUES {values} "
                    f"ON CONFLICT (mailbox_id, token) DO UPDATE SET "
                    f"{column} = {table}.{column} + 1",
                    params,
                )
            else:
                marks = ", ".join(["%s"] * len(chunk))
                cursor.execute(
                    f"UPDATE {table} SET {column} = CASE WHEN {column} > 0 "
                    f"THEN {column} - 1 ELSE 0 END WHERE mailbox_id = %s AND token IN ({marks})",
                    [mailbox_id, *chunk],
                )


# --- Known senders -------------------------------------------------------------------------


def known_senders_add(*, mailbox_id: int, addresses: Iterable[str], source: str) -> None:
    """Trust these senders in this mailbox from now on (already known ones stay as they are).

    Every submission calls this for its recipients; a pair this process has seen committed
    is not written again (one plain INSERT only for the new ones). Known senders are never
    removed but with their mailbox, whose id is not used again, so a remembered pair stays
    true."""
    rows = []
    for a in dict.fromkeys(addresses):
        if a and "@" in a:
            address = a.strip().lower()[:320]
            if (mailbox_id, address) not in _known_pairs:
                rows.append({"mailbox_id": mailbox_id, "address": address, "source": source})
    if rows:
        _insert_known_senders.values(rows)
        pairs = [(mailbox_id, row["address"]) for row in rows]
        transaction.on_commit(lambda: _known_pairs_remember(pairs))


# (mailbox id, address) pairs committed as known senders, seen by this process.
_known_pairs: set[tuple[int, str]] = set()
KNOWN_PAIRS_LIMIT = 100_000


def _known_pairs_remember(pairs: list[tuple[int, str]]) -> None:
    if len(_known_pairs) > KNOWN_PAIRS_LIMIT:
        _known_pairs.clear()  # forgotten pairs cost one INSERT .. DO NOTHING each again
    _known_pairs.update(pairs)


_insert_known_senders = Insert(KnownSender, ignore_conflicts=True)


# --- Greylisting (RFC 6647) ----------------------------------------------------------------


# A passed triple's last_seen is moved on at most this often (expiry is counted in days).
LAST_SEEN_STEP = timedelta(hours=1)


def greylist_network(client_ip: str) -> str:
    """The client's /24 (IPv4) or /64 (IPv6): senders retry from other hosts of their pool
    (RFC 6647 4.4)."""
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return client_ip[:64]
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def greylist_check(
    *, client_ip: str, sender: str, recipient: str, now: datetime | None = None
) -> bool:
    """True when this triple may pass now; False: answer 451 4.7.1 and remember it."""
    now = now or timezone.now()
    key = {
        "network": greylist_network(client_ip),
        "sender": sender.lower()[:320],
        "recipient": recipient.lower()[:320],
    }
    delay = timedelta(seconds=settings.MAILHOST_GREYLIST_DELAY)
    window = timedelta(seconds=settings.MAILHOST_GREYLIST_RETRY_WINDOW)
    expiry = timedelta(seconds=settings.MAILHOST_GREYLIST_EXPIRY)
    for _ in range(2):  # a concurrent first sight of the same triple: read it again
        try:
            with transaction.atomic():
                entry = GreylistEntry.objects.select_for_update().filter(**key).first()
                if entry is None:
                    GreylistEntry.objects.create(**key, first_seen=now, last_seen=now)
                    return False
                if entry.passed_at is not None and now - entry.last_seen <= expiry:
                    if now - entry.last_seen < LAST_SEEN_STEP:
                        return True  # no write for every message of a busy triple
                    passed = True
                elif entry.passed_at is None and delay <= now - entry.first_seen <= delay + window:
                    entry.passed_at = now
                    passed = True
                elif entry.passed_at is None and now - entry.first_seen < delay:
                    passed = False  # too early: the clock keeps running from the first try
                else:  # forgotten: never retried in the window, or unseen too long
                    entry.first_seen, entry.passed_at = now, None
                    passed = False
                entry.last_seen = now
                entry.save(update_fields=["first_seen", "last_seen", "passed_at"])
                return passed
        except IntegrityError:
            continue
    return True  # the database keeps refusing: let the mail through rather than lose it


def greylist_prune(now: datetime | None = None) -> int:
    """Forget triples that never retried in the window, and passed ones unseen too long."""
    now = now or timezone.now()
    stale = now - timedelta(
        seconds=settings.MAILHOST_GREYLIST_DELAY + settings.MAILHOST_GREYLIST_RETRY_WINDOW
    )
    expired = now - timedelta(seconds=settings.MAILHOST_GREYLIST_EXPIRY)
    count, _ = GreylistEntry.objects.filter(passed_at__isnull=True, first_seen__lt=stale).delete()
    more, _ = GreylistEntry.objects.filter(passed_at__isnull=False, last_seen__lt=expired).delete()
    return count + more
