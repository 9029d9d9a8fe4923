"""Writes to the outbound spool: queueing, claiming recipients, recording results, DSNs.

The database is the queue's truth. A job claims the due recipients of one message by setting
a lease (and counting the attempt) before it connects anywhere, writes each result only
while it still holds that lease, and so can run twice, or die half-way, without losing or
doubling anything beyond the one message a peer may have taken just before the crash.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from delivery import bounces, queue, retry
from delivery.models import (
    DmarcRecord,
    DmarcReport,
    MtaStsPolicy,
    OutboundMessage,
    OutboundRecipient,
    RecipientStatus,
    TlsReport,
    TlsReportPolicy,
)
from delivery.reports import DmarcAggregate, TlsAggregate
from mailboxes.groupcommit import shared_where_writers_take_turns
from mailboxes.models import Blob, Domain, Mailbox
from mailboxes.outcomes import Outcome as Filed
from mailboxes.transactions import unsynced_atomic
from mailhost import metrics
from mailhost.plainsql import Columns, Insert

logger = logging.getLogger(__name__)

PENDING = (RecipientStatus.QUEUED, RecipientStatus.DEFERRED)
# Still to be delivered: PENDING, or put on hold by the operator.
WAITING = (*PENDING, RecipientStatus.HOLD)


@dataclass(frozen=True)
class SpoolRecipient:
    address: str
    notify: str = ""  # RFC 3461 NOTIFY, comma-separated; "" means the default (FAILURE)
    orcpt: str = ""


def new_queue_id() -> str:
    return secrets.token_hex(8).upper()


def spool_create(
    *, blob: Blob, sender_mailbox: Mailbox | None = None, **spooled: Any
) -> OutboundMessage:
    """Queue a stored message for remote recipients (inside the caller's transaction, without
    a savepoint of its own: a failure fails the caller's), and return its instance; the
    other arguments are spool_rows_create's, which makes the rows without the instance."""
    row = spool_rows_create(blob=blob, sender_mailbox=sender_mailbox, **spooled)
    # The instance as read from the database (the ORM's positional path: half the CPU of
    # keyword arguments), with the related rows the caller gave.
    message = OutboundMessage.from_db(
        DEFAULT_DB_ALIAS, _MESSAGE_NAMES, list(map(row.get, _MESSAGE_NAMES))
    )
    if sender_mailbox is not None:
        _MESSAGE_SENDER.set_cached_value(message, sender_mailbox)
    _MESSAGE_BLOB.set_cached_value(message, blob)
    return message


def spool_rows_create(
    *,
    blob: Blob,
    mail_from: str,
    recipients: Sequence[SpoolRecipient],
    queue_id: str | None = None,
    sender_mailbox: Mailbox | None = None,
    envid: str = "",
    ret: str = "",
    smtputf8: bool = False,
    body_8bit: bool = False,
    require_tls: bool = False,
) -> dict[str, object]:
    """Queue a stored message for remote recipients: its rows, inside the caller's
    transaction (spool_create's, without the instance it returns: about 36,000
    instructions, for a caller that reads nothing of it, every submission). Plain INSERTs
    of rows given as values (_spool_rows_insert): every remote message is spooled here, and
    the ORM's create and bulk_create (or its instances: about 10 us each) cost more CPU to
    build than the database spent on them. Returns the message's row as written, by
    attribute name, its id included."""
    now = timezone.now()
    fields = {
        "queue_id": queue_id or new_queue_id(),
        "blob_id": blob.pk,
        "mail_from": mail_from,
        "sender_mailbox_id": sender_mailbox.pk if sender_mailbox is not None else None,
        "envid": envid,
        "ret": ret,
        "smtputf8": smtputf8,
        "body_8bit": body_8bit,
        "require_tls": require_tls,
        "size": blob.size,
        "created_at": now,
    }
    rows = [
        {
            "address": r.address,
            "notify": r.notify,
            "orcpt": r.orcpt,
            "status": _QUEUED,
            "next_attempt_at": now,
        }
        for r in recipients
    ]
    with transaction.atomic(savepoint=False):
        message_id = _spool_rows_insert(fields, rows)
    transaction.on_commit(lambda: queue.enqueue(message_id, spooled=True))
    fields["id"] = message_id
    return fields


def _spool_rows_insert(message: dict, recipients: list[dict]) -> int:
    """The spooled message's row and its recipients' (without their message_id); returns the
    message's id. On PostgreSQL one prepared statement, the two INSERTs in its WITH: a
    submission's transaction is one round trip shorter (BEGIN with the blob's row, the
    spool's rows, the synced COMMIT), and the statement is parsed and planned once a
    connection. Elsewhere the two INSERTs (SQLite's WITH holds no INSERT)."""
    db = connections[DEFAULT_DB_ALIAS]  # once, not a proxy hop a read
    if db.vendor != "postgresql":
        (message_id,) = _insert_message.values([message], returning=True)
        _insert_recipients.values([{**row, "message_id": message_id} for row in recipients])
        return message_id
    message_sql, params = _insert_message.statement([message], returning=True)
    recipients_sql, recipient_params = _insert_new_message_recipients.statement(recipients)
    with db.prepared_cursor() as cursor:
        cursor.execute(
            f"WITH message AS ({message_sql}), recipients AS ({recipients_sql})"
            " SELECT id FROM message",
            params + recipient_params,
        )
        (message_id,) = cursor.fetchone()
    return message_id


_QUEUED = RecipientStatus.QUEUED.value
_MESSAGE_NAMES = [f.attname for f in OutboundMessage._meta.concrete_fields]  # "id" first
_insert_message = Insert(OutboundMessage)
_insert_recipients = Insert(OutboundRecipient)
# The recipients of the message made in the same statement's WITH (_spool_rows_insert).
_insert_new_message_recipients = Insert(
    OutboundRecipient, expressions={"message_id": "(SELECT id FROM message)"}
)


# --- Claiming and recording attempts -----------------------------------------------------


def due_recipients(now: datetime | None = None):
    """Recipients that should be tried now and that no worker holds."""
    now = now or timezone.now()
    return OutboundRecipient.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now),
        status__in=PENDING,
        next_attempt_at__lte=now,
    )


def due_message_ids(*, now: datetime | None = None, limit: int = 1000) -> list[int]:
    due = due_recipients(now)
    if settings.MAILHOST_DELIVERY_SHARE:
        # A delivery process of several (MAILHOST_DELIVERY_PROCESSES) sweeps its share only.
        index, count = settings.MAILHOST_DELIVERY_SHARE
        due = due.annotate(share=F("message_id") % count).filter(share=index)
    return list(due.order_by("message_id").values_list("message_id", flat=True).distinct()[:limit])


@dataclass(frozen=True)
class Claim:
    token: str
    message: OutboundMessage
    recipients: list[OutboundRecipient]
    # time.monotonic() when the lease was taken: a claim may wait for a thread
    # (delivery.worker.Claimer), and the lease runs from the claim (jobs.claim_keeper).
    claimed_at: float = field(default_factory=time.monotonic)


def recipients_claim(*, message_id: int, now: datetime | None = None) -> Claim | None:
    """Lease the message's due recipients and count the attempt, before any connection."""
    claims = recipients_claim_many(message_ids=[message_id], now=now)
    return claims[0] if claims else None


def recipients_claim_many(
    *,
    message_ids: Sequence[int],
    now: datetime | None = None,
    record: Callable[[], object] | None = None,
    more: Callable[[], Iterable[int]] | None = None,
) -> list[Claim]:
    """Lease the due recipients of these messages and count the attempt, before any
    connection: one Claim a message that had any, all under one token, in ONE transaction
    (a worker with a backlog claims several messages for the price of one commit).

    One UPDATE with the due condition in its WHERE: concurrent claimers (threads, processes,
    SQLite's serialized writers or PostgreSQL's row locks) each get disjoint rows. Both of its
    statements are plain text (`_claim_sql`): every delivery job runs them, and building them
    through the ORM cost more CPU than the database spent on them. On PostgreSQL they are
    prepared once a connection (prepared_cursor), as the results' UPDATE is (parsed and
    planned every time, a delivered message's claim and results cost its backend 0.9-1.3 ms
    of CPU; prepared, 0.55-0.6 ms).

    `record`, when given, runs first in the same transaction: results kept unwritten
    (recipients_record_rows), written without a commit of their own. On SQLite the writes
    are a piece of the group committer's transaction (mailboxes.groupcommit), shared with
    what the process's other threads write meanwhile (submission's spool, other claims):
    a delivered message then costs no turn of the writer lock of its own; `more` (SQLite
    only) gives the ids of further messages, asked once the writer locks are held, so that
    the jobs that came while the claim waited for them join it. `record` and `more` may be
    called more than once (the committer runs a piece again when its batch fails): each
    call's writes and ids are those of every call so far.
    """
    token = secrets.token_hex(16)
    ids = sorted(set(message_ids))
    db = connections[DEFAULT_DB_ALIAS]  # once, not a proxy hop a read
    adapt = db.ops.adapt_datetimefield_value
    if db.vendor == "sqlite":
        return _claim_shared(ids, token, now, adapt, record, more)
    now = now or timezone.now()
    lease = now + timedelta(seconds=settings.MAILHOST_DELIVERY_LEASE)
    update, select = _claim_sql(len(ids))
    # Not synced before returning (mailboxes/transactions.py): a claim lost with the power
    # only makes the recipients due again, as an expired lease would.
    # On PostgreSQL the SELECT of what the UPDATE took is sent with it, in its transaction:
    # one round trip for both (statements_together).
    with (
        unsynced_atomic(statements_together=True),
        db.prepared_cursor() as cursor,
        # Binary rows: the blob's bytes as they are, not hex text to write and decode, and
        # the timestamps by psycopg's C loader, not Django's text one (a regex in Python).
        db.prepared_cursor(binary=True) as taken,
    ):
        if record is not None:
            record()
        with db.statements_together():
            cursor.execute(
                update,
                [token, adapt(lease), adapt(now), *ids, *_PENDING_TEXT, adapt(now), adapt(now)],
            )
            taken.execute(select, [*ids, token])
        claimed = cursor.rowcount
        rows = taken.fetchall()
    if not claimed:
        return []
    return _claims(token, rows)


def _claim_shared(
    ids: list[int],
    token: str,
    given_now: datetime | None,
    adapt: Callable[[datetime], object],
    record: Callable[[], object] | None,
    more: Callable[[], Iterable[int]] | None,
) -> list[Claim]:
    """recipients_claim_many on SQLite: its writes in the group committer's transaction
    (unsynced: a claim lost with the power only makes the recipients due again, as an
    expired lease would; the batch is synced when a piece of it is), then, when something
    was taken, the SELECT of it after the COMMIT: the writer lock is not held for it. The
    claim's time is read after `more`: a message spooled while the claim waited for the
    writer locks is due by then (its job comes after its spool's commit)."""

    def write() -> int:  # on whichever thread leads the batch: its connection
        if more is not None:
            ids[:] = sorted({*ids, *more()})
        if record is not None:
            record()
        now = given_now or timezone.now()
        lease = adapt(now + timedelta(seconds=settings.MAILHOST_DELIVERY_LEASE))
        update, _ = _claim_sql(len(ids))
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute(
                update, [token, lease, adapt(now), *ids, *_PENDING_TEXT, adapt(now), adapt(now)]
            )
            return cursor.rowcount

    if not shared_where_writers_take_turns(write, synced=False):
        return []
    _, select = _claim_sql(len(ids))
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(select, [*ids, token])
        rows = cursor.fetchall()
    return _claims(token, rows)


def _claims(token: str, rows: list[tuple]) -> list[Claim]:
    """The claimed rows (recipient, message, blob), as one Claim a message."""
    recipient, message, blob = _CLAIMED
    claims: list[Claim] = []
    for row in rows:
        r = recipient.instance(row)
        if not claims or claims[-1].message.pk != r.message_id:
            first = message.instance(row, len(recipient))
            blob_row = blob.instance(row, len(recipient) + len(message))
            _MESSAGE_BLOB.set_cached_value(first, blob_row)
            claims.append(Claim(token=token, message=first, recipients=[]))
        _RECIPIENT_MESSAGE.set_cached_value(r, claims[-1].message)
        claims[-1].recipients.append(r)
    return claims


# The claim's rows: the recipient's columns, then its message's, then the message's blob's.
_CLAIMED = (
    Columns(OutboundRecipient, "r"),
    Columns(OutboundMessage, "m"),
    Columns(Blob, "b"),
)
_PENDING_TEXT = [str(status) for status in PENDING]
_RECIPIENT_MESSAGE = OutboundRecipient._meta.get_field("message")
_MESSAGE_BLOB = OutboundMessage._meta.get_field("blob")
_MESSAGE_SENDER = OutboundMessage._meta.get_field("sender_mailbox")
_claim_statements: dict[int, tuple[str, str]] = {}


def _claim_sql(count: int) -> tuple[str, str]:
    """The claim's UPDATE (due_recipients() of `count` messages) and the SELECT of what it
    took, built once for each count."""
    statements = _claim_statements.get(count)
    if statements is None:
        recipient, message, blob = _CLAIMED
        table = connection.ops.quote_name(OutboundRecipient._meta.db_table)
        statuses = ", ".join(["%s"] * len(PENDING))
        messages = "= %s" if count == 1 else f"IN ({', '.join(['%s'] * count)})"
        # SQLite, which keeps no statistics here, took the (status, next_attempt_at) index
        # for this and read every due recipient of the spool at each claim (37 ms a claim
        # with 100,000 due, 0.02 by message_id): a unary + keeps the status term off any
        # index. PostgreSQL has no + for text, and its statistics choose message_id's index.
        status = "+status" if connection.vendor == "sqlite" else "status"
        update = (
            f"UPDATE {table} SET lease_token = %s, lease_until = %s, attempts = attempts + 1,"
            f" last_attempt_at = %s WHERE message_id {messages} AND {status} IN ({statuses})"
            " AND next_attempt_at <= %s AND (lease_until IS NULL OR lease_until < %s)"
        )
        select = (
            f"SELECT {recipient.sql}, {message.sql}, {blob.sql} FROM {recipient.table}"
            f" INNER JOIN {message.table} ON m.id = r.message_id"
            f" INNER JOIN {blob.table} ON b.id = m.blob_id"
            f" WHERE r.message_id {messages} AND r.lease_token = %s ORDER BY r.message_id, r.id"
        )
        statements = _claim_statements[count] = (update, select)
    return statements


class ClaimLost(Exception):
    """The claim holds none of a message's recipients any more: its lease ran out and
    another claim took them over (or an operator bounced or removed them). Not attempted
    then: they are the other claim's to deliver and record."""


def lease_extend(*, token: str) -> set[int]:
    """Keep holding the claim while a long attempt goes on (one call per destination);
    returns the messages whose recipients it still holds. By the claim's token, not by its
    lease's time: a claim past its lease still holds (and renews) what no other claim took,
    while one that took the recipients over set its own token on them, so its lease is never
    renewed by the claim it replaced (the row decides between the two: SQLite's one writer,
    PostgreSQL's row lock, whose waiter checks the WHERE again on the row the other wrote)."""
    lease = timezone.now() + timedelta(seconds=settings.MAILHOST_DELIVERY_LEASE)
    held = OutboundRecipient.objects.filter(lease_token=token)
    with unsynced_atomic():
        held.update(lease_until=lease)
        return set(held.values_list("message_id", flat=True).distinct())


@dataclass(frozen=True)
class Outcome:
    status: str  # RecipientStatus: delivered, deferred or failed
    reply: str  # "250 2.0.0 ...", "451 4.4.1 ...", "550 5.1.1 ..."
    remote: str = ""  # the host that gave the reply ("" for our own verdicts)
    # The accepting peer offered DSN and got our NOTIFY/ORCPT: success reports are its job.
    peer_dsn: bool = False
    # Nothing was tried (every address was unreachable moments ago): the attempt the claim
    # counted is taken back, and the recipient is due again after this many seconds.
    untried_for: float | None = None
    remote_address: str = ""  # the IP address `remote` was reached at
    protection: str = ""  # what protected the session (models.Protection), "" for none


def recipients_record(
    *,
    token: str,
    outcomes: Mapping[int, Outcome],
    now: datetime | None = None,
    claimed: Sequence[OutboundRecipient] = (),
) -> int:
    """Write the results of an attempt for the recipients this claim still holds.

    A deferred recipient past the queue lifetime fails instead (4.4.7). Returns the number
    of rows written. `claimed`: the claim's rows (Claim.recipients); a delivered one among
    them is written without reading it again (nothing its result depends on changes under
    the lease), so a delivered message costs one UPDATE a recipient.
    """
    # Not synced before returning (mailboxes/transactions.py): a result lost with the power
    # leaves the recipients as they were before the attempt, tried again (a peer may get a
    # duplicate, as after a crash mid-session). Anything synced later (the next message
    # accepted, a DSN spooled) syncs this too: the log is written in order. This takes one
    # fsync per message off the delivery threads, which on SQLite wait for each other's.
    with unsynced_atomic(statements_together=True):
        return recipients_record_rows(token=token, outcomes=outcomes, now=now, claimed=claimed)


def recipients_results_write(write: Callable[[], object]) -> None:
    """Run `write` (recipients_record_rows of kept results: delivery.jobs.Results) in a
    transaction not synced (see recipients_record): on SQLite a piece of the group
    committer's (mailboxes.groupcommit), shared with what the process's other threads write
    meanwhile, which may run it again; elsewhere one of its own."""
    if connections[DEFAULT_DB_ALIAS].vendor == "sqlite":
        shared_where_writers_take_turns(write, synced=False)
        return
    with unsynced_atomic(statements_together=True):
        write()


def recipients_record_rows(
    *,
    token: str,
    outcomes: Mapping[int, Outcome],
    now: datetime | None = None,
    claimed: Sequence[OutboundRecipient] = (),
) -> int:
    """recipients_record's writes, in the caller's transaction (recipients_claim_many's
    `record`: a delivery thread's results written with its next claim)."""
    now = now or timezone.now()
    written = 0
    lines: list[str] = []
    updates: list[tuple[OutboundRecipient, Outcome, str, str, list]] = []
    db = connections[DEFAULT_DB_ALIAS]  # once, not a proxy hop a read
    adapt = db.ops.adapt_datetimefield_value
    known = [
        r
        for r in claimed
        if r.id in outcomes and outcomes[r.id].status == RecipientStatus.DELIVERED
    ]
    rest = set(outcomes).difference(r.id for r in known)
    rows = known
    if rest:
        rows += OutboundRecipient.objects.filter(
            lease_token=token, id__in=sorted(rest)
        ).select_related("message")
    for row in sorted(rows, key=lambda r: r.id):
        outcome = outcomes[row.id]
        status, reply = outcome.status, outcome.reply
        next_attempt = None
        dsn_sent = row.dsn_sent
        attempts = row.attempts
        if status == RecipientStatus.DELIVERED:
            # RFC 3461 5.2.2: NOTIFY=SUCCESS gets a "delivered" DSN for a mailbox here,
            # or a "relayed" one from us when the next hop does not speak DSN.
            dsn_sent = outcome.peer_dsn or not bounces.notify_wants(row.notify, "delivered")
        elif status == RecipientStatus.DEFERRED:
            expiry = retry.expires_at(row.message.created_at)
            if now >= expiry:
                status = RecipientStatus.FAILED
                reply = f"{_expired_prefix()} last reply: {outcome.reply}"
            elif outcome.untried_for is not None:
                attempts = max(row.attempts - 1, 0)
                next_attempt = min(now + timedelta(seconds=outcome.untried_for), expiry)
            else:
                next_attempt = retry.next_attempt_at(
                    attempts=row.attempts, now=now, created_at=row.message.created_at
                )
        if status == RecipientStatus.DEFERRED and row.status == RecipientStatus.HOLD:
            status, next_attempt = RecipientStatus.HOLD, None  # held during the attempt
        params = [
            str(status),
            reply[:2000],
            outcome.remote[:255],
            outcome.protection,
            None if next_attempt is None else adapt(next_attempt),
            dsn_sent,
            attempts,
            False,
            row.pk,
            token,
        ]
        updates.append((row, outcome, status, reply, params))
    # One UPDATE a recipient, all sent together (one round trip on PostgreSQL), each one's
    # row count read after.
    with contextlib.ExitStack() as stack:
        cursors = [stack.enter_context(db.prepared_cursor()) for _ in updates]
        with db.statements_together():
            for cursor, (*_, params) in zip(cursors, updates, strict=True):
                cursor.execute(_result_sql(), params)
        for cursor, (row, outcome, status, reply, _) in zip(cursors, updates, strict=True):
            if cursor.rowcount:
                written += cursor.rowcount
                lines.append(_result_line(row, outcome, status=status, reply=reply, now=now))
    transaction.on_commit(lambda: _log_lines(lines))
    return written


_result_statement: str | None = None


def _result_sql() -> str:
    """One recipient's result, written while the claim still holds it (plain text: one per
    recipient of every delivery job)."""
    global _result_statement
    if _result_statement is None:
        table = connection.ops.quote_name(OutboundRecipient._meta.db_table)
        _result_statement = (
            f"UPDATE {table} SET status = %s, last_reply = %s, mx_used = %s, protection = %s,"
            " next_attempt_at = %s, dsn_sent = %s, attempts = %s, retry_forced = %s,"
            " lease_until = NULL, lease_token = '' WHERE id = %s AND lease_token = %s"
        )
    return _result_statement


def _log_lines(lines: list[str]) -> None:
    for line in lines:
        logger.info("%s", line)
        metrics.delivery_result(line.split(" ", 2)[1])  # the event _result_line wrote


def _result_line(
    row: OutboundRecipient, outcome: Outcome, *, status: str, reply: str, now: datetime
) -> str:
    """One log line per recipient outcome, for the mail admin (Postfix's status= lines):

    delivery delivered queue=<id> to=<rcpt> mx=host[address] delay=1.2s reply="250 ..."

    The queue id is the one the acceptance line logged; the delay counts from acceptance.
    """
    if status == RecipientStatus.FAILED:
        event = "expired" if reply.startswith(_expired_prefix()) else "bounced"
    else:
        event = status  # delivered or deferred
    mx = f"{outcome.remote}[{outcome.remote_address}]" if outcome.remote else "none"
    delay = (now - row.message.created_at).total_seconds()
    return (
        f"delivery {event} queue={row.message.queue_id} to=<{row.address}> mx={mx}"
        f" delay={delay:.1f}s reply={_quoted(reply)}"
    )


def _quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    return f'"{escaped}"'


def _expired_prefix() -> str:
    days = settings.MAILHOST_QUEUE_LIFETIME / 86400
    return f"4.4.7 delivery time expired (gave up after {days:g} days);"


# The spool's reply table: what a queued recipient's row records when the delivery agent
# filed it here (or could not).
_LOCAL_REPLIES = {
    Filed.DELIVERED: Outcome(RecipientStatus.DELIVERED, "250 2.0.0 delivered locally"),
    Filed.OVER_QUOTA: Outcome(RecipientStatus.DEFERRED, "452 4.2.2 mailbox full"),
    Filed.NO_SUCH_USER: Outcome(RecipientStatus.FAILED, "550 5.1.1 no such mailbox here"),
    # Not hosted after all (the domain went away): try again as remote mail.
    Filed.NOT_HOSTED: Outcome(RecipientStatus.DEFERRED, "451 4.3.0 domain no longer hosted here"),
}


def recipients_deliver_local(*, claim: Claim, recipients: Sequence[OutboundRecipient]) -> None:
    """File recipients on hosted domains straight into their mailboxes, and record it.

    One transaction: the mailbox copy and the spool result commit together, so a crash
    never delivers twice, and neither does a claim that another took over (its results
    written for no row: ClaimLost, nothing filed). Remote alias targets are spooled as a
    new outbound message.
    """
    from mailboxes.selectors import blob_read
    from mailboxes.services import message_deliver

    message = claim.message
    raw = blob_read(message.blob)
    with transaction.atomic():
        results = message_deliver(
            raw=raw,
            recipients=[r.address for r in recipients],
            blob=message.blob,
            mail_from=message.mail_from,
        )
        outcomes: dict[int, Outcome] = {}
        forward: dict[str, SpoolRecipient] = {}
        for row, result in zip(recipients, results):
            outcomes[row.id] = _LOCAL_REPLIES[result.status]
            if result.status is Filed.DELIVERED:
                orcpt = row.orcpt or f"rfc822;{row.address}"
                for target in result.forward:
                    forward.setdefault(target.lower(), SpoolRecipient(target, row.notify, orcpt))
        if forward:
            spool_create(
                blob=message.blob,
                mail_from=message.mail_from,
                recipients=list(forward.values()),
                sender_mailbox=message.sender_mailbox,
                smtputf8=message.smtputf8,
                body_8bit=message.body_8bit,
            )
        if recipients_record(token=claim.token, outcomes=outcomes) < len(outcomes):
            raise ClaimLost(f"message {message.pk}: recipients claimed by another")


# --- Delivery status notifications -------------------------------------------------------


_STATUS_CODE = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
_DEFAULT_STATUS = {bounces.FAILED: "5.0.0", bounces.DELAYED: "4.0.0"}


def _reported(row: OutboundRecipient, *, event: str) -> bounces.ReportedRecipient:
    reply = row.last_reply or "451 4.0.0 no reply recorded"
    # "550 5.1.1 text" from a peer, or "4.4.7 text" for our own verdicts
    status = next((p for p in reply.split(" ", 2)[:2] if _STATUS_CODE.match(p)), None)
    return bounces.ReportedRecipient(
        address=row.address,
        orcpt=row.orcpt,
        status=status or _DEFAULT_STATUS.get(event, "2.0.0"),
        reply=reply,
        remote_mta=row.mx_used,
        last_attempt=row.last_attempt_at,
        will_retry_until=retry.expires_at(row.message.created_at),
    )


def _owed_q(now: datetime) -> Q:
    owed = Q(dsn_sent=False, status__in=[RecipientStatus.FAILED, RecipientStatus.DELIVERED])
    warn_after = settings.MAILHOST_DELAY_WARNING
    if warn_after:
        owed |= Q(
            status=RecipientStatus.DEFERRED,
            delay_notified=False,
            message__created_at__lte=now - timedelta(seconds=warn_after),
        )
    return owed


def dsn_owed(*, recipient_ids: Sequence[int], now: datetime | None = None) -> bool:
    """Does any of these recipients wait for a DSN (one query; the job's fast path)?"""
    owed = _owed_q(now or timezone.now())
    return OutboundRecipient.objects.filter(owed, id__in=list(recipient_ids)).exists()


def dsn_owed_message_ids(*, now: datetime | None = None, limit: int = 1000) -> list[int]:
    """Messages whose DSNs a crashed job left unsent (the sweeper sends them)."""
    now = now or timezone.now()
    return list(
        OutboundRecipient.objects.filter(_owed_q(now), lease_until__isnull=True)
        .order_by("message_id")
        .values_list("message_id", flat=True)
        .distinct()[:limit]
    )


def message_notify(*, message_id: int, now: datetime | None = None) -> list[str]:
    """Send the DSNs that this message's recipients are owed; returns the events reported.

    Failure: every failed recipient not yet reported, in one DSN. Success (NOTIFY=SUCCESS):
    "delivered" for mailboxes here, "relayed" past a peer without DSN. Delay: every recipient
    still waiting after MAILHOST_DELAY_WARNING, once. The message row is locked while the
    DSN is written and the recipients marked, so two jobs never report the same event.
    """
    now = now or timezone.now()
    events: list[str] = []
    with transaction.atomic():
        message = OutboundMessage.objects.select_for_update().filter(pk=message_id).first()
        if message is None:
            return events
        failed = list(
            message.recipients.filter(status=RecipientStatus.FAILED, dsn_sent=False).order_by("id")
        )
        if failed:
            report = [r for r in failed if bounces.notify_wants(r.notify, bounces.FAILED)]
            if report and message.mail_from:
                _dsn_send(message, bounces.FAILED, report)
                events.append(bounces.FAILED)
            OutboundRecipient.objects.filter(pk__in=[r.pk for r in failed]).update(dsn_sent=True)
        succeeded = list(
            message.recipients.filter(status=RecipientStatus.DELIVERED, dsn_sent=False).order_by(
                "id"
            )
        )
        if succeeded:
            if message.mail_from:
                for event in (bounces.DELIVERED, bounces.RELAYED):
                    # mx_used is empty for mailboxes here, the next hop's name otherwise
                    report = [r for r in succeeded if bool(r.mx_used) == (event == bounces.RELAYED)]
                    if report:
                        _dsn_send(message, event, report)
                        events.append(event)
            OutboundRecipient.objects.filter(pk__in=[r.pk for r in succeeded]).update(dsn_sent=True)
        warn_after = settings.MAILHOST_DELAY_WARNING
        if warn_after and now - message.created_at >= timedelta(seconds=warn_after):
            waiting = list(
                message.recipients.filter(
                    status=RecipientStatus.DEFERRED, delay_notified=False
                ).order_by("id")
            )
            if waiting:
                report = [r for r in waiting if bounces.notify_wants(r.notify, bounces.DELAYED)]
                if report and message.mail_from:
                    _dsn_send(message, bounces.DELAYED, report)
                    events.append(bounces.DELAYED)
                OutboundRecipient.objects.filter(pk__in=[r.pk for r in waiting]).update(
                    delay_notified=True
                )
    return events


def _dsn_send(message: OutboundMessage, event: str, rows: Sequence[OutboundRecipient]) -> None:
    from mailboxes.selectors import blob_read, domain_is_hosted
    from mailboxes.services import blob_store, message_deliver

    try:
        original = blob_read(message.blob)
    except OSError:
        original = b"Subject: (the original message could not be read)\r\n\r\n"
    dsn = bounces.build_dsn(
        event=event,
        original=original,
        mail_from=message.mail_from,
        queue_id=message.queue_id,
        envid=message.envid,
        ret=message.ret,
        arrival=message.created_at,
        recipients=[_reported(r, event=event) for r in rows],
    )
    sender = message.mail_from
    if domain_is_hosted(sender.rpartition("@")[2]):
        results = message_deliver(raw=dsn, recipients=[sender])
        if results and results[0].status is Filed.DELIVERED:
            if results[0].forward:
                spool_create(
                    blob=blob_store(dsn),
                    mail_from="",
                    recipients=[SpoolRecipient(a, notify="NEVER") for a in results[0].forward],
                )
            return
        logger.warning(
            "DSN for %s to local sender %s not filed: %s",
            message.queue_id,
            sender,
            results[0].status if results else "no result",
        )
        return
    spool_create(
        blob=blob_store(dsn),
        mail_from="",
        recipients=[SpoolRecipient(sender, notify="NEVER")],
        smtputf8=not sender.isascii(),
    )


# --- Operator actions (the admin) --------------------------------------------------------


def recipients_retry_now(*, recipient_ids: Iterable[int]) -> int:
    """Make pending recipients due at once (a held lease is left to run out).

    The next attempt connects even to addresses that were unreachable moments ago: the
    operator asks because the peer is back.
    """
    now = timezone.now()
    ids = list(recipient_ids)
    with transaction.atomic():
        count = OutboundRecipient.objects.filter(id__in=ids, status__in=PENDING).update(
            next_attempt_at=now, retry_forced=True
        )
        message_ids = set(
            OutboundRecipient.objects.filter(id__in=ids).values_list("message_id", flat=True)
        )
        for message_id in message_ids:
            transaction.on_commit(lambda m=message_id: queue.enqueue(m))
    return count


def recipients_bounce_now(*, recipient_ids: Iterable[int], reason: str = "") -> int:
    """Give up on pending or held recipients now: they fail and their senders get a DSN."""
    text = reason or "5.0.0 delivery cancelled by the administrator"
    reply = f"550 {text}"
    ids = list(recipient_ids)
    now = timezone.now()
    with transaction.atomic():
        pending = OutboundRecipient.objects.filter(id__in=ids, status__in=WAITING)
        outcome = Outcome(RecipientStatus.FAILED, reply)
        lines = [
            _result_line(row, outcome, status=outcome.status, reply=reply, now=now)
            for row in pending.select_related("message")
        ]
        count = pending.update(
            status=RecipientStatus.FAILED,
            last_reply=reply,
            mx_used="",
            next_attempt_at=None,
            lease_until=None,
            lease_token="",
        )
        message_ids = set(
            OutboundRecipient.objects.filter(id__in=ids).values_list("message_id", flat=True)
        )
        for message_id in message_ids:
            message_notify(message_id=message_id)
        transaction.on_commit(lambda: _log_lines(lines))
    return count


def spool_prune(*, now: datetime | None = None, limit: int = 500) -> int:
    """Remove finished entries older than MAILHOST_QUEUE_KEEP; their bytes go when unused."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.MAILHOST_QUEUE_KEEP)
    unfinished = OutboundRecipient.objects.filter(
        Q(status__in=WAITING) | Q(dsn_sent=False, status=RecipientStatus.FAILED)
    ).values("message_id")
    ids = list(
        OutboundMessage.objects.filter(created_at__lt=cutoff)
        .exclude(id__in=unfinished)
        .values_list("id", flat=True)[:limit]
    )
    return messages_delete(message_ids=ids) if ids else 0


def messages_delete(*, message_ids: Iterable[int]) -> int:
    """Remove messages from the queue without any DSN, and free their bytes."""
    from mailboxes.services import blob_release

    ids = list(message_ids)
    with transaction.atomic():
        blob_ids = list(
            OutboundMessage.objects.filter(id__in=ids).values_list("blob_id", flat=True)
        )
        count, _ = OutboundMessage.objects.filter(id__in=ids).delete()
        blob_release(blob_ids)
    return len(ids) if count else 0


def messages_hold(*, message_ids: Iterable[int]) -> int:
    """Put the pending recipients of these messages on hold (`manage.py queue hold`): no
    sweeper or job attempts them until released. One being attempted right now keeps its
    lease; if that attempt defers, it stays on hold. Returns the number of recipients held."""
    message_ids = list(message_ids)
    with transaction.atomic():
        count = OutboundRecipient.objects.filter(
            message_id__in=message_ids, status__in=PENDING
        ).update(status=RecipientStatus.HOLD, retry_forced=False)
        _log_operator("hold", message_ids)
    return count


def _log_operator(action: str, message_ids: list[int]) -> None:
    """`queue hold queue=<queue_id>` (release likewise) once the change commits."""
    queue_ids = list(
        OutboundMessage.objects.filter(id__in=message_ids).values_list("queue_id", flat=True)
    )
    lines = [f"queue {action} queue={queue_id}" for queue_id in queue_ids]
    transaction.on_commit(lambda: _log_lines(lines))


def messages_release(*, message_ids: Iterable[int]) -> int:
    """Take these messages' held recipients off hold and make them due now (retry now):
    `deferred` again if they were attempted before, else `queued`."""
    message_ids = list(message_ids)
    held = OutboundRecipient.objects.filter(message_id__in=message_ids, status=RecipientStatus.HOLD)
    with transaction.atomic():
        ids = list(held.values_list("id", flat=True))
        rows = OutboundRecipient.objects.filter(id__in=ids)
        rows.filter(attempts=0).update(status=RecipientStatus.QUEUED)
        rows.filter(attempts__gt=0).update(status=RecipientStatus.DEFERRED)
        _log_operator("release", message_ids)
        return recipients_retry_now(recipient_ids=ids)


# --- Aggregate reports received (delivery/reports.py) --------------------------------------


def report_store(*, domain: Domain, report: DmarcAggregate | TlsAggregate) -> bool:
    """Store one aggregate report about `domain`, in the caller's transaction when there is
    one. False when the same report (reporter and report id) is stored already: reporters
    resend, and a report sent to two of our addresses counts once per domain."""
    model = DmarcReport if isinstance(report, DmarcAggregate) else TlsReport
    if model.objects.filter(domain=domain, org_name=report.org_name, report_id=report.report_id):
        return False
    try:
        with transaction.atomic():  # a savepoint: a concurrent twin must not spoil the caller
            if isinstance(report, DmarcAggregate):
                _dmarc_store(domain, report)
            else:
                _tls_store(domain, report)
    except IntegrityError:
        return False
    if isinstance(report, DmarcAggregate):
        logger.info(
            "report_received kind=dmarc domain=%s org=%s id=%s rows=%d messages=%d",
            domain.name,
            report.org_name,
            report.report_id,
            len(report.rows),
            sum(row.count for row in report.rows),
        )
    else:
        logger.info(
            "report_received kind=tlsrpt domain=%s org=%s id=%s successful=%d failed=%d",
            domain.name,
            report.org_name,
            report.report_id,
            sum(p.successful for p in report.policies),
            sum(p.failed for p in report.policies),
        )
    return True


def _dmarc_store(domain: Domain, report: DmarcAggregate) -> None:
    row = DmarcReport.objects.create(
        domain=domain,
        org_name=report.org_name,
        org_email=report.org_email,
        report_id=report.report_id,
        begin=report.begin,
        end=report.end,
        policy_domain=report.policy_domain,
        policy=report.policy,
        subdomain_policy=report.subdomain_policy,
        pct=report.pct,
        adkim=report.adkim,
        aspf=report.aspf,
    )
    DmarcRecord.objects.bulk_create(
        [
            DmarcRecord(
                report=row,
                source_ip=r.source_ip,
                count=r.count,
                disposition=r.disposition,
                dkim=r.dkim,
                spf=r.spf,
                header_from=r.header_from,
                envelope_from=r.envelope_from,
                dkim_results="\n".join(" ".join(filter(None, d)) for d in r.dkim_results),
                spf_results="\n".join(" ".join(filter(None, s)) for s in r.spf_results),
            )
            for r in report.rows
        ],
        batch_size=1000,
    )


def _tls_store(domain: Domain, report: TlsAggregate) -> None:
    row = TlsReport.objects.create(
        domain=domain,
        org_name=report.org_name,
        contact=report.contact,
        report_id=report.report_id,
        begin=report.begin,
        end=report.end,
    )
    TlsReportPolicy.objects.bulk_create(
        [
            TlsReportPolicy(
                report=row,
                policy_type=p.policy_type,
                policy_domain=p.policy_domain,
                mx_hosts="\n".join(p.mx_hosts),
                successful=p.successful,
                failed=p.failed,
                failure_details=list(p.failure_details),
            )
            for p in report.policies
        ],
        batch_size=1000,
    )


def mta_sts_policy_store(*, policy, fetched_at: datetime) -> None:  # noqa: ANN001
    """Keep a fetched MTA-STS policy (delivery.mtasts.Policy) in place of the domain's last."""
    MtaStsPolicy.objects.update_or_create(
        domain=policy.domain,
        defaults={
            "policy_id": policy.policy_id,
            "mode": policy.mode,
            "mx": "\n".join(policy.mx),
            "max_age": policy.max_age,
            "fetched_at": fetched_at,
        },
    )
