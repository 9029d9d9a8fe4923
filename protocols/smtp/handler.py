"""The policy of the MTA and the MSA, as hooks the session calls (`handle_MAIL(session_protocol,
session, envelope, ...)`, the shape aiosmtpd gave them).

Hooks reject early and cheaply (is the domain ours, does the address exist, is there quota,
may this client relay, does the sender belong to the user); the acceptance service
(delivery.accept.message_accept) decides for good. Each hook returns a named Reply.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import logging
import threading
import time
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import close_old_connections

from delivery import accept
from delivery.spam import SpamRejected
from delivery.spam import services as spam_services
from mailboxes import selectors
from mailboxes.addresses import parse_address
from mailboxes.exceptions import InvalidAddress, MailhostError
from mailboxes.outcomes import Outcome
from mailboxes.storage import out_of_space
from mailhost.expiring import MISSING, ExpiringCache
from protocols.common import sasl
from protocols.common.dbpool import DbPool
from protocols.common.login import Refusal, password_login
from protocols.smtp import replies
from protocols.smtp.replies import Reply

if TYPE_CHECKING:
    from delivery.inbound import AuthResults
    from protocols.smtp.session import MailEnvelope, MailSession, SMTPSession
    from protocols.smtp.syntax import MailParams, RcptParams

logger = logging.getLogger("mailhost.smtp")


# SMTP's reply table for recipient outcomes: at RCPT, and at DATA for a message nobody took.
RECIPIENT_REPLIES = {
    Outcome.INVALID: replies.S553_BAD_RECIPIENT_SYNTAX,
    Outcome.RELAY_DENIED: replies.S554_RELAY_DENIED,
    Outcome.NO_SUCH_USER: replies.S550_NO_SUCH_USER,
    Outcome.OVER_QUOTA: replies.S452_MAILBOX_FULL,
    Outcome.TOO_BIG: replies.S552_MAILBOX_FULL,
}
# One reply speaks for every recipient at DATA (RFC 5321 4.2.5): a temporary refusal first,
# so that the sender tries again, then relaying; else there was nobody here.
_DATA_REFUSALS = (Outcome.OVER_QUOTA, Outcome.RELAY_DENIED)

LOGIN_REFUSALS = {
    Refusal.FAILED: replies.S535_AUTH_FAILED,
    Refusal.IDENTITY: replies.S535_AUTH_FAILED,  # acting as someone else is not offered
    Refusal.THROTTLED: replies.S454_AUTH_TEMPORARY,  # RFC 4954 6: try again later
    Refusal.APP_PASSWORD: replies.S535_AUTH_APP_PASSWORD,
}


_executor: DbPool | None = None
_executor_lock = threading.Lock()


def executor() -> DbPool:
    """SMTP's own worker threads for database and storage work, so that a burst of mail
    neither waits behind nor starves the other protocols in the default pool."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = DbPool(settings.MAILHOST_SMTP_WORKER_THREADS, "smtp-db")
        return _executor


def executor_shutdown() -> None:
    """Stop the worker threads (the listeners are closed), each closing its database
    connection first. A later start() makes a new pool."""
    global _executor
    with _executor_lock:
        pool, _executor = _executor, None
    if pool is not None:
        pool.close_connections(end=True)


def _db(fn):
    """Run a sync service off the event loop, in a worker thread with a usable connection.
    One hop in the caller's context, through the DbPool (half a ThreadPoolExecutor hop's
    CPU): asgiref's sync_to_async costs about 0.2 ms of CPU more per call, and a message
    takes two (RCPT, DATA; MAIL's checks are remembered)."""

    def run(*args, **kwargs):
        context = contextvars.copy_context()

        def call():
            close_old_connections()
            return context.run(fn, *args, **kwargs)

        return executor().run(asyncio.get_running_loop(), call)

    return run


def _run_db(fn, /, **kwargs):
    return _db(fn)(**kwargs)


_recipient_verdict = _db(accept.recipient_verdict)
_accept = _db(accept.message_accept)
_postmaster_address = _db(accept.postmaster_address)
_greylist_check = _db(spam_services.greylist_check)


async def _remembered(cache: ExpiringCache, *key: object) -> object:
    """The cache's answer for `key`: from memory while fresh, without a hop (MAIL's checks:
    one hop of three a message), else read in a database thread."""
    found = cache.cached(*key)
    if found is MISSING:
        found = await _db(cache.get)(*key)
    return found


# The mark on mail let through MAILHOST_SMTP_HOSTED_SENDER_CLIENTS (README says what it means).
UNAUTHENTICATED_HOSTED_SENDER = "X-Mailhost-Unauthenticated-Hosted-Sender"


async def _unauthenticated_hosted_sender(address: str) -> bool:
    """Is `address` in a domain hosted here? (Invalid addresses are for other checks.)"""
    try:
        domain = parse_address(address).domain
    except InvalidAddress:
        return False
    return bool(await _remembered(selectors.hosted_domains, domain))


async def _remote_resolution(address: str) -> selectors.Resolution | None:
    """A submission's recipient outside our domains, resolved as recipient_resolve does
    (not hosted, delivered to itself) with the domain's answer from memory: the RCPT of a
    logged-in user to a remote address takes no hop to a database thread (the verdict there
    would be OK, relaying being allowed). None for an address of a hosted domain or one that
    does not parse: recipient_verdict decides those. A domain added in another process is
    seen here within selectors.SENDER_CHECK_CACHE_SECONDS, as MAIL's checks see it."""
    try:
        parsed = parse_address(address)
    except InvalidAddress:
        return None
    if await _remembered(selectors.hosted_domains, parsed.domain):
        return None
    return selectors.Resolution(address=address, hosted=False, remote=(str(parsed),))


def _client_listed(client_ip: str, networks: tuple) -> bool:
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(address in network for network in networks)


class Handler:
    """One instance serves every connection of every SMTP listener."""

    async def handle_MAIL(
        self,
        server: SMTPSession,
        session: MailSession,
        envelope: MailEnvelope,
        address: str,
        params: MailParams,
    ) -> Reply:
        if session.mailbox is not None:
            # RFC 6409 6.1: the MSA checks the sender against the authenticated identity.
            owned = address and await _remembered(
                selectors.owned_addresses, session.mailbox, address
            )
            if not owned:
                return replies.S553_SENDER_NOT_OWNED
        elif address and await _unauthenticated_hosted_sender(address):
            # Mail from the world that claims one of our domains without logging in (the idea
            # of Postfix's reject_unauth_sender_login_mismatch); the null sender never is.
            if not _client_listed(server.client_ip, settings.MAILHOST_SMTP_HOSTED_SENDER_CLIENTS):
                return replies.S550_HOSTED_SENDER_UNAUTHENTICATED
            envelope.unauthenticated_hosted_sender = True
        envelope.mail_from = address
        envelope.params = params
        envelope.smtp_utf8 = params.smtputf8
        return replies.S250_SENDER_OK

    async def handle_RCPT(
        self,
        server: SMTPSession,
        session: MailSession,
        envelope: MailEnvelope,
        address: str,
        params: RcptParams,
    ) -> Reply:
        if address == "postmaster":
            # RFC 5321 4.5.1: "RCPT TO:<Postmaster>" without a domain must be accepted.
            hosted = await _postmaster_address()
            if hosted is None:
                return replies.S550_NO_SUCH_USER
            address = hosted
        relay_allowed = session.mailbox is not None
        resolution = await _remote_resolution(address) if relay_allowed else None
        if resolution is not None:
            status = Outcome.OK  # a logged-in user may relay: nothing here to check
        else:
            # A recipient checked lately whose mailboxes have no quota: from memory, no hop.
            remembered = accept.recipient_verdict_remembered(address, relay_allowed=relay_allowed)
            status, resolution = remembered or await _recipient_verdict(
                address, relay_allowed=relay_allowed, size=envelope.params.size or 0
            )
        if status is not Outcome.OK:
            return RECIPIENT_REPLIES.get(status, replies.S550_NO_SUCH_USER)
        if settings.MAILHOST_GREYLIST and session.mailbox is None:
            passed = await _greylist_check(
                client_ip=server.client_ip, sender=envelope.mail_from or "", recipient=address
            )
            if not passed:
                logger.info(
                    "greylisted client=%s from=<%s> to=<%s>",
                    server.client_ip,
                    envelope.mail_from,
                    address,
                )
                return replies.S451_GREYLISTED
        envelope.rcpt_tos.append(address)
        envelope.recipients.append(
            accept.EnvelopeRecipient(address, params.notify, params.orcpt, resolution)
        )
        return replies.S250_RECIPIENT_OK

    async def handle_DATA(
        self, server: SMTPSession, session: MailSession, envelope: MailEnvelope
    ) -> Reply:
        started = time.monotonic()
        protocol = _with_protocol(server, session, envelope)
        client = accept.ClientInfo(
            helo=session.host_name or "",
            ip=server.client_ip,
            protocol=protocol,
            tls=server.tls_description(),
            hosted_sender_relay=envelope.unauthenticated_hosted_sender,
        )
        recipients = envelope.recipients
        content = envelope.content
        if envelope.unauthenticated_hosted_sender:
            mark = (
                f"{UNAUTHENTICATED_HOSTED_SENDER}: <{envelope.mail_from}> from {server.client_ip}"
            )
            content = mark.encode("utf-8", "surrogateescape") + b"\r\n" + content
        try:
            result = await _accept(
                raw=content,
                mail_from=envelope.mail_from,
                recipients=recipients,
                client=client,
                authenticated_mailbox=session.mailbox,
                envid=envelope.params.envid,
                ret=envelope.params.ret,
                smtputf8=envelope.smtp_utf8,
                body_8bit=envelope.params.body == "8BITMIME",
                require_tls=envelope.params.require_tls,
            )
        except accept.FromNotAllowed:
            return replies.S553_FROM_NOT_OWNED
        except accept.MalformedHeader:
            return replies.S550_HEADER_STARTS_FOLDED
        except accept.TooManyHops as exc:
            logger.info("smtp rejected client=%s reason=loop detail=%s", server.client_ip, exc)
            return replies.S554_TOO_MANY_HOPS
        except accept.DMARCRejected as exc:
            return replies.S550_DMARC_REJECT.format(exc.domain)
        except SpamRejected as refused:
            logger.info(
                "spam_rejected client=%s from=<%s> score=%.1f",
                server.client_ip,
                envelope.mail_from,
                refused.verdict.score,
            )
            return replies.S550_SPAM_REJECTED
        except MailhostError as exc:
            logger.error("%s message refused by storage: %s", server.client_ip, exc)
            return replies.S452_NO_SPACE if out_of_space(exc) else replies.S451_LOCAL_ERROR
        except Exception as exc:
            logger.exception("%s message could not be stored", server.client_ip)
            return replies.S452_NO_SPACE if out_of_space(exc) else replies.S451_LOCAL_ERROR
        if result.accepted:
            reply = replies.S250_QUEUED.format(result.queue_id)
            if result.refused:
                # The state changed between RCPT and DATA (quota filled, address removed).
                logger.warning(
                    "queue %s: accepted, but not for %s",
                    result.queue_id,
                    ", ".join(f"{r.address} ({r.status})" for r in result.refused),
                )
        else:
            reply = _refusal_reply(result)
        if result.accepted:
            server.log_accepted(
                envelope,
                result.queue_id,
                len(content),
                seconds=time.monotonic() - started,
                **_auth_fields(result.auth),
            )
        return reply

    async def handle_AUTH(
        self, server: SMTPSession, session: MailSession, envelope: MailEnvelope, args: list[str]
    ) -> Reply | None:
        """AUTH PLAIN (RFC 4616) and LOGIN (protocols.common.sasl), checked by
        protocols.common.login (the shared limiter, mailbox_login and its log line)."""
        exchange = sasl.Exchange(args[0], args[1] if len(args) > 1 else None)
        try:
            step = exchange.start()
            while isinstance(step, sasl.Challenge):
                response = await server.challenge_auth(step.data)
                if response is None:
                    return None  # the session replied
                step = exchange.respond(response)
        except sasl.Cancelled:
            return replies.S501_AUTH_CANCELLED  # RFC 4954 4
        except sasl.Malformed:
            return replies.S501_AUTH_BASE64
        mailbox = await password_login(
            _run_db, protocol="smtp", credentials=step, client_ip=server.client_ip
        )
        if isinstance(mailbox, Refusal):
            return LOGIN_REFUSALS[mailbox]
        session.authenticated = True
        session.mailbox = mailbox
        session.auth_user = step.authcid
        return replies.S235_AUTH_OK


def _refusal_reply(result: accept.AcceptResult) -> Reply:
    """The reply to DATA for a message no recipient took."""
    for outcome in result.recipients:
        if outcome.status is Outcome.REJECTED:  # a Sieve ereject speaks in its own words
            return replies.S550_SIEVE_REJECTED.format(outcome.reason)
    statuses = {outcome.status for outcome in result.recipients}
    for status in _DATA_REFUSALS:
        if status in statuses:
            return RECIPIENT_REPLIES[status]
    return replies.S550_NO_SUCH_USER


def _auth_fields(auth: AuthResults | None) -> dict[str, str]:
    """Port 25's check results for the acceptance line (README "Inbound trust")."""
    if auth is None:
        return {}
    return {
        "spf": auth.spf.result,
        "dkim": ",".join(d.result for d in auth.dkim) or "none",
        "dmarc": auth.dmarc.result,
        "arc": auth.arc.result,
        "disposition": auth.dmarc.disposition,
    }


def _with_protocol(server: SMTPSession, session: MailSession, envelope: MailEnvelope) -> str:
    """RFC 3848 / RFC 6531 4.3 "with" keywords."""
    if not session.extended_smtp:
        return "SMTP"
    name = "UTF8SMTP" if envelope.smtp_utf8 else "ESMTP"
    if server.tls_active:
        name += "S"
    if session.authenticated:
        name += "A"
    return name
