"""Accepting a new message: the MTA (port 25), the MSA (587/465) and the webmail all hand a
message over here, and the RCPT check asks here first (recipient_verdict).

`message_accept` is two steps. `message_prepare` adds the trace and submission headers,
DKIM-signs submissions or runs port 25's checks and spam verdict, resolves the recipients,
plans their Sieve scripts, and writes the bytes once (synced). `file_and_spool` then, in ONE
transaction, files the message into every local mailbox and queues one spool entry for every
remote recipient (remote alias targets included), all sharing that one blob (a transaction
that concurrent messages may share: mailboxes.groupcommit). It returns only after the
commit, so a caller's "accepted" (SMTP 250, a webmail "sent" page) is never a lie; on a
storage failure it raises StorageError and leaves nothing half-done. What became of each
recipient is a mailboxes.outcomes.Outcome.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.header import decode_header
from email.utils import format_datetime, getaddresses
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from delivery import inbound, reports, spam
from delivery.dkim import arc_seal, dkim_sign
from delivery.outreports.services import dmarc_evaluation_record
from delivery.services import SpoolRecipient, new_queue_id, report_store, spool_rows_create
from delivery.spam.services import known_senders_add
from mailboxes import headers, mda, selectors, srs
from mailboxes.addresses import parse_address
from mailboxes.exceptions import InvalidAddress, MailhostError, StorageError
from mailboxes.groupcommit import committer
from mailboxes.models import Alias, Blob, Domain, Mailbox
from mailboxes.outcomes import Outcome
from mailboxes.quotas import Usage
from mailboxes.services import (
    RecipientResult,
    blob_discard,
    blob_row_create,
    blob_write,
    delivery_batch_start,
    message_deliver,
)
from mailhost.expiring import MISSING, ExpiringCache

if TYPE_CHECKING:
    from delivery.inbound import AuthResults
    from delivery.spam.selectors import SenderFacts

logger = logging.getLogger(__name__)


class SenderNotAllowed(MailhostError):
    """The authenticated mailbox does not own the envelope sender address."""


class FromNotAllowed(SenderNotAllowed):
    """The message's From header names an address the authenticated mailbox does not own."""


class DMARCRejected(MailhostError):
    """The From domain's DMARC policy is p=reject and the message failed it (RFC 7489 6.7):
    nothing is stored, SMTP answers 550 5.7.1."""

    def __init__(self, domain: str) -> None:
        super().__init__(f"DMARC policy of {domain} rejects the message")
        self.domain = domain


class TooManyHops(MailhostError):
    """More Received fields than MAILHOST_MAX_HOPS: the message is going round in a loop
    (RFC 5321 6.3); nothing is stored, SMTP answers 554 5.4.14."""


def hop_count_check(raw: bytes) -> None:
    """RFC 5321 6.3: refuse a message whose Received fields outnumber MAILHOST_MAX_HOPS."""
    hops = len(_RECEIVED.findall(_lowered(_header_section(raw))))
    if hops > settings.MAILHOST_MAX_HOPS:
        raise TooManyHops(f"{hops} Received header fields (more than {settings.MAILHOST_MAX_HOPS})")


def _field_start(name: bytes) -> re.Pattern[bytes]:
    """The start of a `name` field (any case, blanks before the colon) in a header given
    through _lowered: what re.compile(rb"(?im)^" + name + rb"[ \t]*:") finds in the header
    itself. That pattern has no literal to look for and was tried at every octet; this one
    begins with "\n" + name, which re finds by a plain search (3.7 us -> 0.9 us for the Date
    and Message-ID of the bench's submission, 0.9 -> 0.3 us for the Received count)."""
    return re.compile(rb"\n" + re.escape(name) + rb"[ \t]*:")


def _lowered(head: bytes) -> bytes:
    """The header for _field_start's patterns: lower case (ASCII, as re's IGNORECASE reads
    bytes), and a newline first, so that the first line starts after one as the others do."""
    return b"\n" + head.lower()


_RECEIVED = _field_start(b"received")
_DATE = _field_start(b"date")
_MESSAGE_ID = _field_start(b"message-id")


class MalformedHeader(MailhostError):
    """A submitted message whose first line is a continuation line (starts with a space or a
    tab): RFC 5322 2.2.3 folds a field only after its name, so there is no field for that
    line to continue, no From to check and nothing to sign; SMTP answers 550 5.6.0."""


def header_start_check(raw: bytes) -> None:
    """Refuse a submission whose header section starts with folding whitespace. Put under
    our trace fields it would read as part of our own Received field; an MSA may refuse
    what it cannot complete (RFC 6409 8)."""
    if raw[:1] in (b" ", b"\t"):
        raise MalformedHeader("the first header line is a continuation line")


class NoRecipients(MailhostError):
    """The message has no recipient, or none of them accepted it."""


@dataclass(frozen=True)
class EnvelopeRecipient:
    address: str
    notify: str = ""  # RFC 3461 NOTIFY, comma list; "" = the default
    orcpt: str = ""  # RFC 3461 ORCPT, "addr-type;address"
    # recipient_verdict's resolution from RCPT time, so DATA does not resolve again.
    resolution: selectors.Resolution | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ClientInfo:
    """Who handed the message over, for the Received header (RFC 5321 4.4)."""

    helo: str = ""
    ip: str = ""
    protocol: str = "ESMTP"  # the "with" clause: SMTP, ESMTP, ESMTPS, ESMTPSA, UTF8SMTPSA, ...
    tls: str = ""  # e.g. "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384"
    # A hosted domain's sender let in by MAILHOST_SMTP_HOSTED_SENDER_CLIENTS (the site's own
    # printer or web server): its DMARC failure is expected, the operator vouches for it.
    hosted_sender_relay: bool = False


@dataclass(frozen=True)
class RecipientOutcome:
    address: str
    # DELIVERED (filed locally), QUEUED (spooled for a remote server or a retry), and the
    # refusals NO_SUCH_USER, OVER_QUOTA, RELAY_DENIED, REJECTED (the Sieve ereject's `reason`)
    status: Outcome
    mailbox_ids: tuple[int, ...] = ()
    forwarded: tuple[str, ...] = ()
    reason: str = ""

    @property
    def accepted(self) -> bool:
        return self.status.accepted


@dataclass
class AcceptResult:
    queue_id: str
    size: int
    recipients: list[RecipientOutcome] = field(default_factory=list)
    spooled: bool = False  # an OutboundMessage with this queue id exists
    auth: AuthResults | None = None  # port 25's checks (delivery.inbound), None otherwise

    @property
    def accepted(self) -> list[RecipientOutcome]:
        return [r for r in self.recipients if r.accepted]

    @property
    def refused(self) -> list[RecipientOutcome]:
        return [r for r in self.recipients if not r.accepted]


_UNSAFE_TRACE = re.compile(r"[^\x21-\x7e]")


def _header_section(raw: bytes) -> bytes:
    found = headers.blank_line(raw)
    return raw[: found[0] + 1] if found else raw


# The last date _date_now made, by its second: format_datetime takes about 3 us, and every
# message within a second gets the same text.
_date_text: tuple[int, str] = (-1, "")


def _date_now() -> str:
    """email.utils.format_datetime of timezone.now() (RFC 5322 3.3; without microseconds)."""
    global _date_text
    now = timezone.now()
    second = int(now.timestamp())
    if _date_text[0] != second:
        _date_text = (second, format_datetime(now))
    return _date_text[1]


def received_header(*, client: ClientInfo, queue_id: str, recipients: Sequence[str]) -> bytes:
    """RFC 5321 4.4 trace field; `for` only with a single recipient (privacy)."""
    helo = _UNSAFE_TRACE.sub("", client.helo)[:255] or "unknown"
    ip = client.ip
    literal = f"[IPv6:{ip}]" if ":" in ip else f"[{ip}]" if ip else ""
    from_clause = f"from {helo} ({literal})" if literal else f"from {helo}"
    lines = [f"Received: {from_clause}"]
    if client.tls:
        lines.append(f"\t(using {client.tls})")
    lines.append(
        f"\tby {settings.MAILHOST_HOSTNAME} (Mailhost) with {client.protocol} id {queue_id}"
    )
    stamp = _date_now()
    if len(recipients) == 1:
        lines.append(f"\tfor <{recipients[0]}>; {stamp}")
    else:
        lines[-1] += ";"
        lines.append(f"\t{stamp}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogateescape")


def submission_headers(raw: bytes) -> bytes:
    """Date and Message-ID a submitted message lacks (RFC 6409 8.2, 8.3)."""
    head = _lowered(_header_section(raw))
    added = b""
    if _DATE.search(head) is None:
        added += b"Date: " + _date_now().encode("ascii") + b"\r\n"
    if _MESSAGE_ID.search(head) is None:
        added += f"Message-ID: <{uuid.uuid4().hex}@{settings.MAILHOST_HOSTNAME}>\r\n".encode()
    return added


def from_header_check(mailbox: Mailbox, raw: bytes) -> list[str]:
    """Raise FromNotAllowed unless every address in the From header is one `mailbox` may send
    as, by the rule that holds for the envelope sender (selectors.mailbox_owns_address): a
    submission is DKIM-signed for the From domain, so it must not pass as someone else.
    Returns the addresses read, in order (the signing domain is the first's: dkim_sign)."""
    # The compat32 Message of BytesHeaderParser, made without the feed parser for a header
    # of fields only (every submission's): its per-line regular expressions were a third of
    # this check.
    values = tuple(
        headers.header_text(v) for v in headers.field_values(headers.header_block(raw), "from")
    )
    if not values:
        return []  # nothing to pass as
    try:
        if sum(map(len, values)) <= FROM_KEPT_CHARS:
            addresses = list(_from_addresses_kept(values))
        else:
            addresses = list(_from_addresses(values))
    except (RecursionError, ValueError, IndexError):
        addresses = []
    if not addresses:
        raise FromNotAllowed(f"{mailbox} sent a From header with no address that can be read")
    for address in addresses:
        # MAIL FROM's answer, remembered (selectors.owned_addresses): the same question.
        if not selectors.owned_addresses.get(mailbox, _words_decoded(address)):
            raise FromNotAllowed(f"{mailbox} may not send as {address} (From header)")
    return addresses


def _from_addresses(values: tuple[str, ...]) -> tuple[str, ...]:
    """The addresses getaddresses reads in the From fields' values, in order."""
    return tuple(address for _, address in getaddresses(values) if address)


# A client submits message after message with the same From: what getaddresses (email's
# parser, in Python: about 85,000 instructions for one address) read of a From of up to
# FROM_KEPT_CHARS characters is kept, for 1024 of them (a failure is not kept: raised again).
FROM_KEPT_CHARS = 1000
_from_addresses_kept = functools.lru_cache(maxsize=1024)(_from_addresses)


def _words_decoded(address: str) -> str:
    """An address with RFC 2047 words in its local part (as email's SMTP policy writes a
    non-ASCII one, the webmail's included) read as the text they encode; the structure of
    the field is the one parsed before, so no decoded text can add or move an address."""
    if "=?" not in address:
        return address
    try:
        return "".join(
            part.decode(charset or "ascii") if isinstance(part, bytes) else part
            for part, charset in decode_header(address)
        )
    except (LookupError, UnicodeDecodeError, ValueError):
        return address


def inbound_trust(
    raw: bytes, *, mail_from: str, client: ClientInfo
) -> tuple[bytes, AuthResults | None, int]:
    """Port 25's checks (delivery.inbound): the bytes to store, with our
    Authentication-Results on top and what the world may not tell us removed; the
    AuthResults (None with MAILHOST_INBOUND_CHECKS off) for the spam verdict, whose
    `dmarc.disposition` "quarantine" sends the message to Junk; and the octets of our field
    on top, which headers.header_read need not read. Raises DMARCRejected for
    p=reject failures. DKIM is verified on the bytes as received, before anything is
    removed. The results go on the "smtp accepted" log line (AcceptResult.auth)."""
    hostname = settings.MAILHOST_HOSTNAME
    if not settings.MAILHOST_INBOUND_CHECKS:
        return inbound.strip_untrusted(raw, authserv_id=hostname), None, 0
    results = inbound.authenticate(
        raw=raw, client_ip=client.ip, helo=client.helo, mail_from=mail_from
    )
    if client.hosted_sender_relay and results.dmarc.disposition != "none":
        # RFC 7489 7.2 "local_policy": the operator listed this client as its own relay.
        dmarc = dataclasses.replace(results.dmarc, disposition="none", override="local_policy")
        results = dataclasses.replace(results, dmarc=dmarc)
    if results.dmarc.disposition == "reject":
        # Refused, but counted in the From domain's aggregate report (RFC 7489 7.2).
        dmarc_evaluation_record(auth=results, mail_from=mail_from)
        raise DMARCRejected(results.dmarc.domain)
    stripped = inbound.strip_untrusted(raw, authserv_id=hostname)
    field = results.header()
    return field + stripped, results, len(field)


def message_accept(
    *,
    raw: bytes,
    mail_from: str,
    recipients: Sequence[EnvelopeRecipient | str],
    client: ClientInfo | None = None,
    authenticated_mailbox: Mailbox | None = None,
    envid: str = "",
    ret: str = "",
    smtputf8: bool = False,
    body_8bit: bool = False,
    require_tls: bool = False,
    queue_late_refusals: bool = True,
) -> AcceptResult:
    """Accept one message for its envelope recipients; see the module docstring.

    With `authenticated_mailbox` the message is a submission: remote recipients are allowed
    (relaying), missing Date and Message-ID are added and the message is DKIM-signed. Without
    it, recipients outside our domains are refused (RELAY_DENIED), never queued. The caller
    checks the sender rule first (message_submit does, the SMTP hooks do). When the message
    is accepted for at least one recipient, local recipients it cannot be filed for right now
    (over quota, gone since RCPT) are queued too, as SMTP must once it has said 250 to them;
    a caller that reports refusals itself (the webmail) passes queue_late_refusals=False.
    When it is accepted for nobody, nothing is stored and the outcomes say why (Outcome
    NO_SUCH_USER, OVER_QUOTA, RELAY_DENIED).

    Two steps: message_prepare (everything outside the transaction: headers, checks, the
    verdicts, the Sieve plans, the bytes written and synced), then file_and_spool (the rows,
    in one transaction that the group committer may share with other messages).
    """
    prepared = message_prepare(
        raw=raw,
        mail_from=mail_from,
        envelope=[
            r if isinstance(r, EnvelopeRecipient) else EnvelopeRecipient(r) for r in recipients
        ],
        client=client or ClientInfo(),
        authenticated_mailbox=authenticated_mailbox,
        spool=SpoolOptions(
            envid=envid,
            ret=ret,
            smtputf8=smtputf8,
            body_8bit=body_8bit,
            require_tls=require_tls,
            queue_late_refusals=queue_late_refusals,
        ),
    )
    if isinstance(prepared, AcceptResult):
        return prepared  # refused before anything was written (a Sieve ereject)
    return file_and_spool(prepared)


@dataclass(frozen=True)
class SpoolOptions:
    """What the envelope asks of the spool entry (RFC 3461 ENVID/RET, RFC 6531 SMTPUTF8,
    8BITMIME, RFC 8689 REQUIRETLS), and whether late refusals are queued."""

    envid: str = ""
    ret: str = ""
    smtputf8: bool = False
    body_8bit: bool = False
    require_tls: bool = False
    queue_late_refusals: bool = True


@dataclass(frozen=True)
class Prepared:
    """A message ready to be filed: its final bytes, already written and synced (`name`),
    and every decision made outside the transaction (message_prepare)."""

    queue_id: str
    raw: bytes
    mail_from: str
    envelope: list[EnvelopeRecipient]
    resolutions: list[selectors.Resolution]
    authenticated_mailbox: Mailbox | None
    spool: SpoolOptions
    auth: AuthResults | None
    summary: tuple[dict, bool] | None  # None: no mailbox of ours gets the message
    plans: dict
    junk_mailbox_ids: set[int] | None
    report_recipients: list[selectors.Resolution]
    extracted: reports.Extracted | None
    forwarding: dict[str, tuple[str, bytes]]  # hosted domain -> (SRS sender, sealed copy)
    name: str  # the blob of `raw`
    forward_names: dict[str, str]  # hosted domain -> the blob of its forwarded copy

    @property
    def addresses(self) -> list[str]:
        return [r.address for r in self.envelope]


def message_prepare(
    *,
    raw: bytes,
    mail_from: str,
    envelope: list[EnvelopeRecipient],
    client: ClientInfo,
    authenticated_mailbox: Mailbox | None,
    spool: SpoolOptions,
) -> Prepared | AcceptResult:
    """The first step of message_accept, outside any transaction: the trace and submission
    headers and DKIM (submissions) or port 25's checks and the spam verdict, the recipients
    resolved (aliases, catch-alls), the Sieve plans, and the bytes written and synced. On
    SQLite BEGIN IMMEDIATE takes the database's write lock, which should cover only the
    writes. Returns the AcceptResult instead when a Sieve ereject refuses the message;
    raises what refuses it outright (TooManyHops, MalformedHeader, FromNotAllowed, DMARCRejected,
    SpamRejected) and StorageError when the bytes cannot be written."""
    if not envelope:
        raise NoRecipients("no recipients")
    hop_count_check(raw)
    queue_id = new_queue_id()
    addresses = [r.address for r in envelope]
    prefix = received_header(client=client, queue_id=queue_id, recipients=addresses)
    if authenticated_mailbox is not None:
        header_start_check(raw)
        from_addresses = from_header_check(authenticated_mailbox, raw)
        prefix += submission_headers(raw)
        # The From addresses just read: the header is parsed once, not again for the domain.
        raw = dkim_sign(prefix + raw, mail_from=mail_from, from_addresses=from_addresses)
        auth = None
        ours = 0
    else:
        raw, auth, ours = inbound_trust(raw, mail_from=mail_from, client=client)
    domains: dict = {}
    resolutions = [
        r.resolution or selectors.recipient_resolve(r.address, domain_cache=domains)
        for r in envelope
    ]
    junk_mailbox_ids = None
    spam_score = None
    scripts = None
    if authenticated_mailbox is None:
        # One parse for the spam rules and the summary, of the message below our field.
        header = headers.header_read(raw, ours)
        # What the verdict reads of the mailboxes and the Sieve scripts they run, together:
        # one round trip on PostgreSQL where there were three.
        mailbox_ids = sorted({m for r in resolutions for m in r.mailbox_ids})
        sender = header.summary["from_address"] or mail_from
        facts, (scripts,) = spam.sender_facts(mailbox_ids, sender, mda.scripts_read(mailbox_ids))
        verdict, junk_mailbox_ids = _spam_verdict(
            raw,
            header=header,
            facts=facts,
            auth=auth,
            client=client,
            mail_from=mail_from,
            resolutions=resolutions,
            addresses=addresses,
            queue_id=queue_id,
        )
        spam_score = verdict.score
        verdict_fields = verdict.headers()
        raw = prefix + verdict_fields + raw
        # The trace and verdict fields put on top change no summarized field, and the X-Spam
        # field is ours alone (inbound_trust removed the world's): the stored message says
        # X-Spam: Yes exactly when the verdict wrote one.
        summary = (header.summary, bool(verdict_fields) and verdict.is_spam)
    elif any(r.mailbox_ids for r in resolutions):
        summary = headers.summarize_and_spam(raw)  # outside the transaction, computed once
    else:
        summary = None  # nothing is filed here (a submission to remote recipients)
    # Aggregate reports to our report addresses are read here, outside the transaction.
    report_recipients = [r for r in resolutions if r.report]
    extracted = reports.from_message(raw) if report_recipients else None
    # The recipients' Sieve scripts run here, before the transaction: what they decide is
    # carried out inside it, with the filing (mailboxes.mda).
    plans = mda.plan(
        raw=raw,
        mail_from=mail_from,
        resolutions=resolutions,
        spam=summary is not None and summary[1],
        junk_mailbox_ids=junk_mailbox_ids,
        spam_score=spam_score,
        scripts=scripts,
    )
    refused = _sieve_refusal(resolutions, plans)
    if refused:
        logger.info("sieve ereject queue=%s to=<%s> reason=%s", queue_id, addresses[0], refused)
        return AcceptResult(
            queue_id=queue_id,
            size=len(raw),
            recipients=[RecipientOutcome(addresses[0], Outcome.REJECTED, reason=refused)],
        )
    forwarding = _forward_copies(raw, mail_from, resolutions)
    try:
        name = blob_write(raw)
        forward_names = {d: blob_write(copy) for d, (_, copy) in forwarding.items()}
    except Exception as exc:
        logger.exception("queue %s: could not write the message", queue_id)
        raise StorageError("could not write the message") from exc
    return Prepared(
        queue_id=queue_id,
        raw=raw,
        mail_from=mail_from,
        envelope=envelope,
        resolutions=resolutions,
        authenticated_mailbox=authenticated_mailbox,
        spool=spool,
        auth=auth,
        summary=summary,
        plans=plans,
        junk_mailbox_ids=junk_mailbox_ids,
        report_recipients=report_recipients,
        extracted=extracted,
        forwarding=forwarding,
        name=name,
        forward_names=forward_names,
    )


def _spam_verdict(
    raw: bytes,
    *,
    header: headers.HeaderRead,
    facts: SenderFacts | None,
    auth: AuthResults | None,
    client: ClientInfo,
    mail_from: str,
    resolutions: Sequence[selectors.Resolution],
    addresses: list[str],
    queue_id: str,
) -> tuple[spam.SpamVerdict, set[int] | None]:
    """Port 25's spam verdict and the mailboxes whose copy goes to Junk; raises SpamRejected
    (nothing stored) when the verdict refuses the message."""
    mailbox_ids = {m for r in resolutions for m in r.mailbox_ids}
    verdict = spam.verdict(
        raw=raw,
        auth=auth,
        client_ip=client.ip,
        helo=client.helo,
        mail_from=mail_from,
        mailbox_ids=mailbox_ids,
        recipients=addresses,
        queue_id=queue_id,
        header=header,
        facts=facts,
    )
    if verdict.reject:
        raise spam.SpamRejected(verdict)  # nothing stored
    if auth is not None and auth.dmarc.disposition == "quarantine":
        # The From domain's DMARC policy: Junk for everyone, whatever the lists say
        # (an allow-listed From that fails DMARC is not that sender).
        return verdict, set(mailbox_ids)
    return verdict, verdict.junk_mailbox_ids


def file_and_spool(prepared: Prepared) -> AcceptResult:
    """The second step of message_accept: file the message into every local mailbox and
    spool it for every remote recipient (remote alias targets included), all sharing its one
    blob, in ONE transaction (mailboxes.groupcommit). Returns only after the commit; on a
    failure the bytes written by message_prepare are removed and nothing is half-done."""
    try:
        return committer.run_after(
            delivery_batch_start,
            (prepared.name, prepared.raw, prepared.resolutions),
            lambda blob: _file_and_spool_rows(prepared, blob),
        )
    except _NothingAccepted as refused:
        _discard(prepared)
        return refused.result
    except MailhostError:
        _discard(prepared)
        raise
    except Exception as exc:
        _discard(prepared)
        logger.exception("queue %s: could not store the message", prepared.queue_id)
        raise StorageError("could not store the message") from exc


def _discard(prepared: Prepared) -> None:
    for blob_name in (prepared.name, *prepared.forward_names.values()):
        blob_discard(blob_name)


def _file_and_spool_rows(p: Prepared, blob: Blob) -> AcceptResult:
    """Run by the group committer, maybe in a transaction shared with other messages (and
    maybe twice, when that transaction failed): everything it makes, it makes afresh. The
    blob row of `p.raw` is made first, with the rest of the batch's in one INSERT, and its
    mailboxes locked with the rest of the batch's (services.delivery_batch_start)."""
    delivered = message_deliver(
        raw=p.raw,
        recipients=p.addresses,
        blob=blob,
        resolutions=p.resolutions,
        summary=p.summary,
        mail_from=p.mail_from,
        plans=p.plans,
        junk_mailbox_ids=p.junk_mailbox_ids,
    )
    if p.extracted is not None:
        _reports_store(p.extracted, p.report_recipients, p.queue_id)
    if p.auth is not None:
        # For the From domain's DMARC aggregate report (delivery/outreports).
        dmarc_evaluation_record(auth=p.auth, mail_from=p.mail_from)
    if p.authenticated_mailbox is not None:
        # Whom a mailbox writes to, it trusts to write back (the spam verdict's KNOWN_SENDER).
        known_senders_add(
            mailbox_id=p.authenticated_mailbox.pk, addresses=p.addresses, source="wrote_to"
        )
    result, spool, forwards = _outcomes(p, delivered)
    if not result.accepted:
        raise _NothingAccepted(result)
    if p.spool.queue_late_refusals:
        _queue_late_refusals(result, p.envelope, spool)
    if spool:
        spool_rows_create(
            blob=blob,
            mail_from=p.mail_from,
            recipients=list(spool.values()),
            queue_id=p.queue_id,
            sender_mailbox=p.authenticated_mailbox,
            envid=p.spool.envid,
            ret=p.spool.ret,
            smtputf8=p.spool.smtputf8,
            body_8bit=p.spool.body_8bit,
            require_tls=p.spool.require_tls,
        )
        result.spooled = True
    for domain, targets in forwards.items():
        # Forwarded by an alias of `domain`: its SRS sender and its ARC-sealed copy.
        if targets:
            sender, copy = p.forwarding[domain]
            spool_rows_create(
                blob=blob_row_create(name=p.forward_names[domain], raw=copy),
                mail_from=sender,
                recipients=list(targets.values()),
                smtputf8=p.spool.smtputf8,
                body_8bit=p.spool.body_8bit,
            )
    return result


def _outcomes(
    p: Prepared, delivered: Sequence[RecipientResult]
) -> tuple[AcceptResult, dict[str, SpoolRecipient], dict[str, dict[str, SpoolRecipient]]]:
    """Each envelope recipient's outcome from the delivery agent's, and whom to spool: remote
    recipients of a submission, and remote alias targets (under the forwarding domain's
    own entry when its copy is SRS-sent and ARC-sealed)."""
    result = AcceptResult(queue_id=p.queue_id, size=len(p.raw), auth=p.auth)
    spool: dict[str, SpoolRecipient] = {}
    forwards: dict[str, dict[str, SpoolRecipient]] = {d: {} for d in p.forwarding}
    for wanted, outcome, resolution in zip(p.envelope, delivered, p.resolutions):
        if outcome.status is Outcome.NOT_HOSTED:
            if p.authenticated_mailbox is not None:
                spool.setdefault(
                    outcome.address, SpoolRecipient(outcome.address, wanted.notify, wanted.orcpt)
                )
                result.recipients.append(RecipientOutcome(wanted.address, Outcome.QUEUED))
            else:
                result.recipients.append(RecipientOutcome(wanted.address, Outcome.RELAY_DENIED))
            continue
        group = forwards.get(_domain_of(resolution.address), spool)
        for target in outcome.forward:
            orcpt = wanted.orcpt or f"rfc822;{wanted.address}"
            group.setdefault(target, SpoolRecipient(target, wanted.notify, orcpt))
        result.recipients.append(
            RecipientOutcome(wanted.address, outcome.status, outcome.mailbox_ids, outcome.forward)
        )
    return result, spool, forwards


_LATE_REFUSALS = frozenset({Outcome.OVER_QUOTA, Outcome.NO_SUCH_USER})


def _queue_late_refusals(
    result: AcceptResult, envelope: list[EnvelopeRecipient], spool: dict[str, SpoolRecipient]
) -> None:
    """Once the message is accepted for anyone, it is ours for everyone: a recipient that
    stopped fitting since RCPT (quota filled, address removed) is queued, so the delivery
    worker retries it locally and, failing that, sends the DSN."""
    for index, outcome in enumerate(result.recipients):
        if outcome.status in _LATE_REFUSALS:
            wanted = envelope[index]
            spool.setdefault(
                wanted.address, SpoolRecipient(wanted.address, wanted.notify, wanted.orcpt)
            )
            result.recipients[index] = RecipientOutcome(wanted.address, Outcome.QUEUED)


def _domain_of(address: str) -> str:
    try:
        return parse_address(address).domain
    except InvalidAddress:
        return ""


def _forward_copies(
    raw: bytes, mail_from: str, resolutions: Sequence[selectors.Resolution]
) -> dict[str, tuple[str, bytes]]:
    """Forwarding by our aliases to addresses outside our domains, per hosted domain that
    forwards: the SRS envelope sender (so SPF passes at the destination) and the copy with
    our ARC seal (RFC 8617). Empty for the null sender and for senders of that domain, whose
    copies go out as they came (SPF passes for them, and a bounce needs no way back)."""
    copies: dict[str, tuple[str, bytes]] = {}
    for resolution in resolutions:
        if not (resolution.hosted and resolution.remote):
            continue
        domain = _domain_of(resolution.address)
        if not domain or domain in copies:
            continue
        sender = srs.forward(mail_from, domain=domain)
        if sender != mail_from:
            copies[domain] = (sender, arc_seal(raw, domain_name=domain))
    return copies


def _sieve_refusal(resolutions: Sequence[selectors.Resolution], plans: dict) -> str:
    """The reason to refuse the message at SMTP time for an ereject (RFC 5429 2.2): only when
    it has one envelope recipient, for one mailbox, whose script erejected it, so that the
    550 speaks for every recipient. Otherwise the message is accepted and the ereject's DSN
    goes to the sender like a reject's MDN."""
    if len(resolutions) != 1:
        return ""
    resolution = resolutions[0]
    if len(resolution.mailbox_ids) != 1 or resolution.remote:
        return ""
    plan = plans.get(resolution.mailbox_ids[0])
    return plan.refuse if plan is not None else ""


def _reports_store(extracted: reports.Extracted, resolutions: list, queue_id: str) -> None:
    """Store the reports of a message sent to our report addresses, once per domain."""
    for problem in extracted.problems:
        logger.warning("report_unreadable queue=%s problem=%s", queue_id, problem[:200])
    if not extracted.reports and not extracted.problems:
        logger.warning("report_unreadable queue=%s problem=no report in the message", queue_id)
    names = dict.fromkeys(parse_address(r.address).domain for r in resolutions)
    for name in names:
        domain = selectors.domain_get(name)
        for report in extracted.reports if domain is not None else ():
            if not report_store(domain=domain, report=report):
                logger.info(
                    "report_duplicate queue=%s domain=%s org=%s id=%s",
                    queue_id,
                    name,
                    report.org_name,
                    report.report_id,
                )


class _NothingAccepted(Exception):
    """Nobody took the message: roll its rows back, keep the outcomes."""

    def __init__(self, result: AcceptResult) -> None:
        super().__init__(result.queue_id)
        self.result = result


def recipient_verdict(
    address: str, *, relay_allowed: bool, size: int = 0
) -> tuple[Outcome, selectors.Resolution | None]:
    """The cheap early check for one envelope recipient (SMTP RCPT, the webmail's form);
    message_accept decides. Returns the resolution it made too (for EnvelopeRecipient).

    Outcome OK, INVALID, RELAY_DENIED (outside our domains, not allowed to relay),
    NO_SUCH_USER (our domain, nobody there), OVER_QUOTA (every mailbox is over quota now, try
    later) or TOO_BIG (`size` can never fit the quota). Reads the rows as they are now, and
    leaves what it read for recipient_verdict_remembered.
    """
    try:
        parse_address(address)
    except InvalidAddress:
        return Outcome.INVALID, None
    resolution, quotas = remembered_recipients.renew(address)
    return _verdict(resolution, quotas, relay_allowed=relay_allowed, size=size), resolution


def recipient_verdict_remembered(
    address: str, *, relay_allowed: bool
) -> tuple[Outcome, selectors.Resolution] | None:
    """recipient_verdict from memory, without the database, where the answer is OK whatever the
    message's size: a recipient checked within selectors.SENDER_CHECK_CACHE_SECONDS whose
    mail goes to mailboxes without a quota, of octets or messages (or elsewhere only). None:
    ask recipient_verdict. A mailbox's quota, an alias or a domain changed in this process is
    seen at once (the memory is forgotten), one changed in another process within those
    seconds; and message_accept's transaction decides in any case (a mailbox deleted since is
    a late refusal, as between RCPT and DATA)."""
    facts = remembered_recipients.cached(address)
    if facts is MISSING:
        return None
    resolution, quotas = facts
    if quotas and all(usage.limited for usage in quotas):
        return None  # the verdict moves with each mailbox's use: asked every time
    if _verdict(resolution, quotas, relay_allowed=relay_allowed, size=0) is not Outcome.OK:
        return None
    return Outcome.OK, resolution


def _recipient_facts(address: str) -> tuple[selectors.Resolution, tuple[Usage, ...]]:
    """Where mail for the (well-formed) address goes, and the limits and usage of its
    mailboxes when their quotas decide the verdict (none when it goes elsewhere too)."""
    usage: dict[int, Usage] = {}
    resolution = selectors.recipient_resolve(address, usage=usage)
    ids = resolution.mailbox_ids
    if not resolution.hosted or resolution.remote or not ids:
        return resolution, ()
    if usage.keys() >= set(ids):
        return resolution, tuple(usage[mailbox_id] for mailbox_id in ids)
    return resolution, tuple(selectors.mailboxes_quota(ids))


# RCPT asks about the same recipients for message after message: what recipient_verdict read
# is kept for the SMTP hook (recipient_verdict_remembered), so that a recipient without a
# quota takes no hop to a database thread (mailhost.expiring; as MAIL's sender checks).
remembered_recipients = ExpiringCache(
    _recipient_facts,
    seconds=selectors.SENDER_CHECK_CACHE_SECONDS,
    size=4096,
    models=(Domain, Alias, Mailbox),
    name="recipient-facts",
)


def _verdict(
    resolution: selectors.Resolution,
    quotas: tuple[Usage, ...],
    *,
    relay_allowed: bool,
    size: int,
) -> Outcome:
    if not resolution.hosted:
        return Outcome.OK if relay_allowed else Outcome.RELAY_DENIED
    if not resolution.exists:
        return Outcome.NO_SUCH_USER
    if resolution.remote or not resolution.mailbox_ids:
        return Outcome.OK
    if any(usage.fits(size) for usage in quotas):
        return Outcome.OK
    if all(usage.never_fits(size) for usage in quotas):
        return Outcome.TOO_BIG
    return Outcome.OVER_QUOTA


def postmaster_address() -> str | None:
    """Where `RCPT TO:<Postmaster>` (no domain) goes: postmaster at the server's own domain
    when we host it (MAILHOST_HOSTNAME or its parent), else at the first hosted domain."""
    hostname = settings.MAILHOST_HOSTNAME.lower().rstrip(".")
    candidates = [hostname, hostname.partition(".")[2]]
    for name in candidates:
        if name and selectors.domain_is_hosted(name):
            return f"postmaster@{name}"
    first = Domain.objects.filter(active=True).order_by("id").values_list("name", flat=True).first()
    return f"postmaster@{first}" if first else None


def message_submit(
    *,
    mailbox: Mailbox,
    raw: bytes,
    mail_from: str,
    recipients: Sequence[str],
    client_ip: str = "",
) -> AcceptResult:
    """Submit a message as `mailbox` (the webmail's "send").

    Raises SenderNotAllowed when the mailbox does not own `mail_from`, InvalidAddress for a
    malformed recipient, NoRecipients when none accepts the message, StorageError on our own
    failure. Partial refusals (an unknown local address among others) come back in the
    result's `refused`.
    """
    if not selectors.mailbox_owns_address(mailbox, mail_from):
        raise SenderNotAllowed(f"{mailbox} may not send as {mail_from}")
    cleaned = []
    for address in recipients:
        parse_address(address)  # raises InvalidAddress
        cleaned.append(address.strip().strip("<>"))
    if not cleaned:
        raise NoRecipients("no recipients")
    result = message_accept(
        raw=raw,
        mail_from=mail_from,
        recipients=cleaned,
        client=ClientInfo(helo="webmail", ip=client_ip, protocol="HTTPS"),
        authenticated_mailbox=mailbox,
        smtputf8=not (mail_from.isascii() and all(a.isascii() for a in cleaned)),
        body_8bit=not raw.isascii(),
        queue_late_refusals=False,  # the webmail shows them to the user at once
    )
    if not result.accepted:
        raise NoRecipients("no recipient accepted the message")
    return result


__all__ = [
    "AcceptResult",
    "ClientInfo",
    "DMARCRejected",
    "EnvelopeRecipient",
    "FromNotAllowed",
    "InvalidAddress",
    "MalformedHeader",
    "NoRecipients",
    "Outcome",
    "Prepared",
    "RecipientOutcome",
    "SpoolOptions",
    "SenderNotAllowed",
    "TooManyHops",
    "file_and_spool",
    "message_accept",
    "message_prepare",
    "message_submit",
    "recipient_verdict",
    "recipient_verdict_remembered",
]
