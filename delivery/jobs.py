"""The delivery job: attempt the due recipients of one spooled message.

Runs on an RQ worker (`manage.py rqworker`) or the embedded worker under runmail. It takes
only an id and re-reads everything; its claim (a lease, with the attempt counted) is taken
before any connection, and results are written only under that claim, so running it twice
at once, or again after a crash, is safe.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from django.conf import settings
from django.db import connections

from delivery import bounces, client, dns, queue, services, tlspolicy
from delivery.destinations import destinations
from delivery.models import OutboundRecipient, RecipientStatus
from delivery.services import Claim, Outcome
from mailboxes.selectors import blob_read, hosted_domains

logger = logging.getLogger(__name__)


def deliver_message(message_id: int) -> dict[str, int]:
    """Attempt the message's due recipients; returns counts by resulting status."""
    return deliver_messages([message_id]).get(message_id, {})


def deliver_messages(message_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Attempt the due recipients of several messages one after the other, under ONE claim
    and with their results written together (Results): two commits for the batch instead
    of two a message (and one more for each message that may owe a DSN: its results are
    written before the DSN is looked for). Returns the counts by resulting status of each
    message that had recipients due. Runmail's delivery threads claim and record the same
    way for all of a process's threads at once (delivery.worker.Claimer)."""
    queue.jobs_started(message_ids)
    counts: dict[int, dict[str, int]] = {}
    kept = Results()
    try:
        for claim in claim_batch(message_ids):
            # One message's failure (a results write refused: deliver_claim keeps them) is
            # not the batch's: the others are claimed too, and would wait out their leases.
            try:
                kept.flush_if_old()
                counts[claim.message.pk] = deliver_claim(claim, kept)
            except Exception:
                logger.exception("delivery of message %s failed", claim.message.pk)
    finally:
        kept.flush()
    return counts


def claim_batch(
    message_ids: Sequence[int],
    previous: Results | None = None,
    more: Callable[[], list[int]] | None = None,
) -> list[Claim]:
    """Claim these messages' due recipients (services.recipients_claim_many), writing what
    `previous` holds in the same transaction (kept there when the transaction fails; on
    SQLite what it holds once the writer locks are, with `more`'s further jobs: the
    group committer's transaction, which may run a piece again, hence held in full here)."""
    _drop_broken_connections()
    since = previous.since if previous is not None else 0.0
    held: Held = {}

    def record() -> None:
        _merge(held, previous.take())
        _write_rows(held)

    try:
        return services.recipients_claim_many(
            message_ids=message_ids,
            record=record if previous is not None else None,
            more=more,
        )
    except BaseException:
        if held:
            previous.restore(held, since)
        raise


def deliver_claim(claim: Claim, kept: Results | None = None) -> dict[str, int]:
    """Attempt one claimed message and record its results: added to `kept` for a later
    write when it is given and no DSN can be owed, else written now (then a DSN owed is
    sent). `kept` may be shared by threads (delivery.worker.Claimer). Results whose write
    fails here join `kept` (written with what it holds; the DSN is then housekeeping's, as
    after a crash): dropped, their recipients stayed leased until the lease ran out, and a
    delivered one was then delivered again."""
    own = Results()
    counts = attempt(claim, own)
    if kept is not None and not _dsn_possible(claim, counts):
        kept.merge(own)
        return counts
    try:
        own.flush()
    except BaseException:
        if kept is not None:
            kept.restore(own.take(), own.since)
        raise
    if _dsn_possible(claim, counts) and services.dsn_owed(
        recipient_ids=[r.id for r in claim.recipients]
    ):
        services.message_notify(message_id=claim.message.pk)
    return counts


# The results of a batch are written together, but none waits longer than this once known
# (checked as each destination's outcome comes in and before each message): a delivered
# result not yet written when the process dies means that recipient gets the message again.
RECORD_WITHIN = 1.0

# What Results holds: by claim token, the outcomes by recipient id and the claimed rows.
Held = dict[str, tuple[dict[int, Outcome], dict[int, OutboundRecipient]]]


class Results:
    """Outcomes of attempts, kept until they are written in one transaction
    (services.recipients_record_rows, a claim's token at a time), of one claim or of
    several (a process's delivery threads share one: delivery.worker.Claimer; hence the
    lock). Kept when writing fails: written again with what follows, or lost with the
    process (the leases run out and the recipients are due again)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: Held = {}
        self.since = 0.0  # when the oldest outcome held came

    def add(
        self, token: str, outcomes: dict[int, Outcome], claimed: Sequence[OutboundRecipient]
    ) -> None:
        with self._lock:
            if not self._held:
                self.since = time.monotonic()
            mine, rows = self._held.setdefault(token, ({}, {}))
            mine.update(outcomes)
            rows.update((r.id, r) for r in claimed if r.id in outcomes)
        self.flush_if_old()

    def merge(self, other: Results) -> None:
        """Take over what `other` holds (written with these)."""
        held = other.take()
        if held:
            self.restore(held, other.since)
        self.flush_if_old()

    def take(self) -> Held:
        """What is held, no longer held here (restore() it when its write fails)."""
        with self._lock:
            held, self._held = self._held, {}
        return held

    def restore(self, held: Held, since: float | None = None) -> None:
        with self._lock:
            if not self._held:
                self.since = time.monotonic() if since is None else since
            elif since is not None:
                self.since = min(self.since, since)
            _merge(self._held, held)

    def pending(self) -> bool:
        return bool(self._held)

    def flush_if_old(self) -> None:
        if self._held and time.monotonic() - self.since >= RECORD_WITHIN:
            self.flush()

    def seconds_left(self) -> float:
        """How much longer these results may wait to be written (RECORD_WITHIN)."""
        if not self._held:
            return 0.0
        return max(0.0, RECORD_WITHIN - (time.monotonic() - self.since))

    def flush(self) -> None:
        since = self.since
        held = self.take()
        if not held:
            return
        try:
            services.recipients_results_write(functools.partial(_write_rows, held))
        except BaseException:
            self.restore(held, since)
            raise


def _merge(into: Held, held: Held) -> None:
    for token, (outcomes, rows) in held.items():
        mine, my_rows = into.setdefault(token, ({}, {}))
        mine.update(outcomes)
        my_rows.update(rows)


def _write_rows(held: Held) -> None:
    """The outcomes' rows in the caller's transaction (services.recipients_record's, or a
    claim's: services.recipients_claim_many's `record`)."""
    for token, (outcomes, rows) in held.items():
        services.recipients_record_rows(token=token, outcomes=outcomes, claimed=list(rows.values()))


def _dsn_possible(claim: Claim, counts: dict[str, int]) -> bool:
    """False when this attempt can have left no DSN owed: every recipient delivered, none
    asking for a success notice (the usual case, spared a query). A recipient whose result
    another job wrote (a lost lease) is that job's to report."""
    if counts != {RecipientStatus.DELIVERED: len(claim.recipients)}:
        return True
    return any(bounces.notify_wants(r.notify, bounces.DELIVERED) for r in claim.recipients)


# A connection used this recently is taken as alive without asking the server (PostgreSQL's
# is_usable() is a round trip: one per message to busy workers); one that dies meanwhile
# fails its job, is closed before the next, and the sweeper brings the message back.
HEALTH_CHECK_IDLE = 1.0
_last_job = threading.local()


def _drop_broken_connections() -> None:
    """A worker keeps its database connection from job to job (reopening one per job costs
    more than a small delivery), but not one the server has dropped or that failed."""
    now = time.monotonic()
    idle = now - getattr(_last_job, "at", float("-inf")) >= HEALTH_CHECK_IDLE
    _last_job.at = now
    for conn in connections.all(initialized_only=True):
        if conn.connection is None or conn.in_atomic_block:
            continue  # a caller's open transaction (a test, a shell) is left alone
        if conn.errors_occurred or (idle and not conn.is_usable()):
            conn.close()


def attempt(claim: Claim, results: Results | None = None) -> dict[str, int]:
    """Attempt the claim's recipients; their outcomes go to `results` (written at once
    without one)."""
    counts: dict[str, int] = defaultdict(int)
    mine = results if results is not None else Results()
    # Whether each domain is ours, from memory while fresh (the answer submission's RCPT
    # gave for the same recipients): a statement of its own in every job before, the only one
    # outside the claim and the results. A domain added or removed in this process is seen
    # at once, elsewhere within selectors.SENDER_CHECK_CACHE_SECONDS.
    hosted = {d for d in {r.domain for r in claim.recipients} if hosted_domains.get(d)}
    local = [r for r in claim.recipients if r.domain in hosted]
    remote = [r for r in claim.recipients if r.domain not in hosted]
    done: set[int] = set()
    try:
        if local:
            services.recipients_deliver_local(claim=claim, recipients=local)
            done.update(r.id for r in local)
            counts["local"] += len(local)
        if remote:
            raw = blob_read(claim.message.blob)
            for group in _destinations(remote):
                outcomes = _deliver_remote(claim, group, raw)
                mine.add(claim.token, outcomes, claim.recipients)
                done.update(outcomes)
                for outcome in outcomes.values():
                    counts[outcome.status] += 1
        if results is None:
            mine.flush()
    except services.ClaimLost:
        # Another claim took the recipients over (this one's lease ran out first): theirs to
        # attempt and record; what this one kept is written where still its own.
        logger.warning("delivery of %s stopped: another claim holds it", claim.message.queue_id)
        if results is None:
            mine.flush()
    except Exception:
        # Our own fault: what is not recorded yet is deferred, not lost, and retried.
        logger.exception("delivery of %s failed", claim.message.queue_id)
        rest = {
            r.id: Outcome(RecipientStatus.DEFERRED, "451 4.3.0 local error during delivery")
            for r in claim.recipients
            if r.id not in done
        }
        if rest:
            mine.add(claim.token, rest, ())
        if results is None:
            mine.flush()
    return dict(counts)


def _destinations(recipients: list[OutboundRecipient]) -> list[list[OutboundRecipient]]:
    """One connection per destination: all recipients when relaying, else per domain."""
    if settings.MAILHOST_RELAYHOST:
        return [recipients]
    groups: dict[str, list[OutboundRecipient]] = defaultdict(list)
    for r in recipients:
        groups[r.domain].append(r)
    return list(groups.values())


def _deliver_remote(
    claim: Claim, recipients: list[OutboundRecipient], raw: bytes
) -> dict[int, Outcome]:
    message = claim.message
    auth = None
    port = None
    try:
        if settings.MAILHOST_RELAYHOST:
            host, port = settings.MAILHOST_RELAYHOST
            hosts = dns.relay_hosts(host)
            if settings.MAILHOST_RELAYHOST_USER:
                auth = (
                    settings.MAILHOST_RELAYHOST_USER,
                    settings.MAILHOST_RELAYHOST_PASSWORD or "",
                )
        else:
            hosts = dns.destination_hosts(recipients[0].domain)
    except dns.DNSError as exc:
        domain = recipients[0].domain
        if isinstance(exc, dns.MXLoopError) and hosted_domains.renew(domain):
            # Ours after all, made so in another process since this one's memory of the
            # domain (attempt's hosted_domains) was filled: due again at once, filed here
            # then, not bounced as a loop.
            reply = f"451 4.3.0 {domain} is hosted here now"
            outcome = Outcome(RecipientStatus.DEFERRED, reply, untried_for=0.0)
            queue.enqueue_after(message.pk, 0.0)
            return {r.id: outcome for r in recipients}
        status = RecipientStatus.FAILED if exc.permanent else RecipientStatus.DEFERRED
        return {r.id: Outcome(status, exc.reply) for r in recipients}
    destination = f"[{host}]:{port}" if settings.MAILHOST_RELAYHOST else recipients[0].domain
    forced = any(r.retry_forced for r in recipients)  # an operator's "retry now" means now
    wait = destinations.acquire(destination, force=forced)
    if wait is not None:
        # Not now (busy, rate, backoff): deferred without counting an attempt, and the job
        # comes back by itself once the wait is over (the sweeper would too, later).
        logger.info(
            "destination deferred name=%s queue=%s wait=%.1fs reason=%s",
            destination,
            message.queue_id,
            wait.seconds,
            wait.reason,
        )
        reply = f"451 4.4.5 {destination}: delivery paused, {wait.reason}"
        outcome = Outcome(RecipientStatus.DEFERRED, reply, untried_for=wait.seconds)
        queue.enqueue_after(message.pk, wait.seconds)
        return {r.id: outcome for r in recipients}
    result = None
    try:
        result = _send(claim, recipients, raw, hosts, auth, port, forced)
        return _outcomes(recipients, result)
    finally:
        destinations.release(
            destination,
            transacted=result is not None and result.transacted,
            failed=result is not None and not result.transacted and result.untried_for is None,
            throttled=result is not None and result.throttled,
        )


def _send(
    claim: Claim,
    recipients: list[OutboundRecipient],
    raw: bytes,
    hosts: list,
    auth: tuple[str, str] | None,
    port: int | None,
    forced: bool,
) -> client.Delivery:
    message = claim.message
    envelope = client.Envelope(
        mail_from=message.mail_from,
        recipients=[client.RecipientEnvelope(r.address, r.notify, r.orcpt) for r in recipients],
        data=raw,
        envid=message.envid,
        ret=message.ret,
        smtputf8=message.smtputf8,
        body_8bit=message.body_8bit,
        require_tls=message.require_tls,
    )
    security = None
    if not settings.MAILHOST_RELAYHOST:
        security = tlspolicy.destination_security(
            recipients[0].domain,
            port=settings.MAILHOST_OUTBOUND_PORT,
            raw=raw,
            require_tls=message.require_tls,
        )
    # A password never crosses the network in the clear: AUTH at a smart host elsewhere than
    # on this machine needs STARTTLS.
    require_tls = bool(auth) and not all(_is_loopback(a) for h in hosts for a in h.addresses)
    return client.deliver(
        hosts,
        envelope,
        port=port,
        auth=auth,
        require_tls=require_tls,
        before_connect=claim_keeper(claim),
        skip_unreachable=not forced,
        security=security,
    )


def _outcomes(recipients: list[OutboundRecipient], result: client.Delivery) -> dict[int, Outcome]:
    outcomes = {}
    for r in recipients:
        reply = result.replies.get(r.address) or client.Reply(451, "4.3.0 no reply")
        if reply.ok:
            status = RecipientStatus.DELIVERED
        elif reply.permanent:
            status = RecipientStatus.FAILED
        else:
            status = RecipientStatus.DEFERRED
        outcomes[r.id] = Outcome(
            status,
            str(reply),
            reply.remote,
            peer_dsn=result.peer_dsn,
            untried_for=result.untried_for,
            remote_address=result.address if reply.remote else "",
            protection=result.protection if reply.remote else "",
        )
    return outcomes


def _is_loopback(address: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def claim_keeper(claim: Claim):
    """A callback that renews the claim's lease once half of it has run out (a renewal is a
    database commit: not worth doing before every connection of a quick delivery), and
    raises services.ClaimLost instead of connecting when the claim no longer holds the
    message (its lease ran out, as it may while a claimed message waits for a thread, and
    another claim took it over: that one delivers it)."""
    half = settings.MAILHOST_DELIVERY_LEASE / 2
    renewed = [claim.claimed_at]

    def keep() -> None:
        if time.monotonic() - renewed[0] >= half:
            if claim.message.pk not in services.lease_extend(token=claim.token):
                raise services.ClaimLost(f"message {claim.message.pk}: claimed by another")
            renewed[0] = time.monotonic()

    return keep
