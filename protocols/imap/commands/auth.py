"""Connection commands: CAPABILITY NOOP LOGOUT ID ENABLE STARTTLS LOGIN AUTHENTICATE."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

from protocols.common import sasl
from protocols.common.login import Credentials, Refusal, password_login, record
from protocols.imap import capability as caps
from protocols.imap import parser as p
from protocols.imap import responses as r
from protocols.imap import untagged as u
from protocols.imap.errors import CommandError
from protocols.imap.worker import db

if TYPE_CHECKING:
    from protocols.imap.session import Session

ID_RESPONSE = u.Id((("name", "Mailhost"), ("vendor", "Mailhost")))
OK_DEFLATE_ACTIVE = r.Reply("OK", "DEFLATE active")
NO_COMPRESSION_ACTIVE = r.Reply("NO", "Compression is already active", "COMPRESSIONACTIVE")
BAD_COMPRESS_ALGORITHM = r.Reply("BAD", "Unknown compression algorithm")
ENABLEABLE = {"CONDSTORE", "QRESYNC", "UTF8=ACCEPT", "IMAP4REV2", "UIDONLY"}
LOGIN_REFUSALS = {
    Refusal.FAILED: r.NO_AUTH_FAILED,
    Refusal.IDENTITY: r.NO_AUTH_FAILED.with_text("Authorization identity differs"),
    Refusal.THROTTLED: r.NO_AUTH_THROTTLED,
    Refusal.APP_PASSWORD: r.NO_AUTH_APP_PASSWORD,
}
BAD_PLAIN = r.BAD_BASE64.with_text("Malformed PLAIN response")


async def capability(session: Session, command: p.Simple) -> r.Reply | u.Done:
    # RFC 9051 6.1.1
    await session.respond(u.Capability(caps.of(session)))
    return r.OK_CAPABILITY


async def noop(session: Session, command: p.Simple) -> r.Reply | u.Done:
    # RFC 9051 6.1.2: NOOP is how clients poll for updates. Ask the database even when no
    # change event came (one indexed query), so a lost event never hides a change for long.
    if session.selected is not None:
        session.selected.dirty = True
    return r.OK_NOOP


async def logout(session: Session, command: p.Simple) -> r.Reply | u.Done:
    # RFC 9051 6.1.3: BYE, then the tagged OK, then the connection closes
    return u.Done(r.OK_LOGOUT, before=(r.BYE_LOGOUT,), then=u.After.CLOSE, updates=False)


async def id_command(session: Session, command: p.Id) -> r.Reply | u.Done:
    # RFC 2971
    await session.respond(ID_RESPONSE)
    return r.OK_COMPLETED


async def enable(session: Session, command: p.Enable) -> r.Reply | u.Done:
    # RFC 5161; CONDSTORE/QRESYNC RFC 7162 3.2.3; UTF8=ACCEPT RFC 6855 3; UIDONLY RFC 9586 3
    newly = tuple(
        name for name in command.capabilities if name in ENABLEABLE and session.enable(name)
    )
    await session.respond(u.Enabled(newly))
    return r.OK_COMPLETED


async def unauthenticate(session: Session, command: p.Simple) -> r.Reply | u.Done:
    # RFC 8437 3: the connection's state as new, TLS and COMPRESS kept
    session.unauthenticate()
    return u.Done(r.OK_COMPLETED, updates=False)


async def compress(session: Session, command: p.Compress) -> r.Reply | u.Done:
    # RFC 4978 3: deflate from the octet after this OK on, both ways
    if command.algorithm != "DEFLATE":
        raise CommandError(BAD_COMPRESS_ALGORITHM)
    if session.deflate is not None:
        raise CommandError(NO_COMPRESSION_ACTIVE)
    return u.Done(OK_DEFLATE_ACTIVE, then=u.After.COMPRESS)


async def starttls(session: Session, command: p.Simple) -> r.Reply | u.Done:
    # RFC 9051 6.2.1: the session drops what was pipelined in clear text and starts TLS
    if session.tls or not session.starttls_allowed:
        raise CommandError(r.BAD_TLS_ACTIVE)
    return u.Done(r.OK_BEGIN_TLS, then=u.After.TLS, updates=False)


async def login(session: Session, command: p.Login) -> r.Reply | u.Done:
    # RFC 9051 6.2.3
    if not caps.plaintext_ok(tls=session.tls):
        raise CommandError(r.NO_LOGIN_DISABLED)
    return await _authenticate(
        session, command, Credentials(authcid=command.user, password=command.password)
    )


async def authenticate(session: Session, command: p.Authenticate) -> r.Reply | u.Done:
    # RFC 9051 6.2.2, SASL PLAIN (RFC 4616), SASL-IR (RFC 4959)
    if command.mechanism != sasl.PLAIN:
        raise CommandError(r.NO_UNKNOWN_MECHANISM)
    if not caps.plaintext_ok(tls=session.tls):
        raise CommandError(r.NO_PRIVACY_REQUIRED)
    exchange = sasl.Exchange(sasl.PLAIN, command.initial)
    try:
        step = exchange.start()
        while isinstance(step, sasl.Challenge):  # PLAIN's, which is empty
            await session.send(r.CONTINUE_AUTH)
            step = exchange.respond((await session.read_line()).decode("ascii", "replace"))
    except sasl.Cancelled:
        raise CommandError(r.BAD_AUTH_CANCELLED) from None
    except sasl.NotBase64:
        raise CommandError(r.BAD_BASE64) from None
    except sasl.Malformed:
        raise CommandError(BAD_PLAIN) from None
    return await _authenticate(session, command, step)


async def _authenticate(
    session: Session, command: p.Command, credentials: Credentials
) -> r.Reply | u.Done:
    mailbox = await password_login(
        db, protocol="imap", credentials=credentials, client_ip=session.client_ip
    )
    if isinstance(mailbox, Refusal):
        refusal = LOGIN_REFUSALS[mailbox]
        session.auth_failures += 1
        if session.auth_failures >= settings.MAILHOST_IMAP_MAX_AUTH_FAILURES:
            return u.Done(
                refusal, after=(r.BYE_TOO_MANY_FAILURES,), then=u.After.CLOSE, updates=False
            )
        raise CommandError(refusal)
    if not session.log_in(mailbox):
        raise CommandError(r.NO_TOO_MANY_CONNECTIONS)
    await record(db, mailbox)
    code = "CAPABILITY " + " ".join(caps.of(session))
    return u.Done(r.OK_LOGGED_IN.with_code(code), updates=False)
