"""Connection commands: CAPABILITY NOOP LOGOUT ID ENABLE STARTTLS LOGIN AUTHENTICATE."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

from protocols.common import sasl
from protocols.common.login import Credentials, Refusal, password_login, record
from protocols.imap import parser as p
from protocols.imap import responses as r
from protocols.imap.errors import CommandError, ConnectionDone
from protocols.imap.states import State
from protocols.imap.worker import db

if TYPE_CHECKING:
    from protocols.imap.session import Session

ID_RESPONSE = '* ID ("name" "Mailhost" "vendor" "Mailhost")\r\n'
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


async def capability(session: Session, command: p.Simple) -> None:
    # RFC 9051 6.1.1
    await session.send(r.capability_line(session.capabilities()))
    await session.finish(command, r.OK_CAPABILITY)


async def noop(session: Session, command: p.Simple) -> None:
    # RFC 9051 6.1.2: NOOP is how clients poll for updates. Ask the database even when no
    # change event came (one indexed query), so a lost event never hides a change for long.
    if session.selected is not None:
        session.selected.dirty = True
    await session.finish(command, r.OK_NOOP)


async def logout(session: Session, command: p.Simple) -> None:
    await session.send(r.BYE_LOGOUT.untagged() + r.OK_LOGOUT.tagged(command.tag))
    session.state = State.LOGOUT
    raise ConnectionDone()


async def id_command(session: Session, command: p.Id) -> None:
    # RFC 2971
    await session.send(ID_RESPONSE.encode())
    await session.finish(command)


async def enable(session: Session, command: p.Enable) -> None:
    # RFC 5161; CONDSTORE/QRESYNC RFC 7162 3.2.3; UTF8=ACCEPT RFC 6855 3; UIDONLY RFC 9586 3
    newly = []
    for capability_name in command.capabilities:
        if capability_name in ENABLEABLE and capability_name not in session.enabled:
            session.enabled.add(capability_name)
            newly.append(capability_name)
            if capability_name == "QRESYNC":
                session.enabled.add("CONDSTORE")
            if capability_name in ("CONDSTORE", "QRESYNC"):
                session.enable_condstore()
    session.parser.utf8 = session.utf8
    await session.send(r.untagged("ENABLED" + "".join(" " + c for c in newly)))
    await session.finish(command)


async def unauthenticate(session: Session, command: p.Simple) -> None:
    # RFC 8437 3: the connection's state as new, TLS and COMPRESS kept
    session.unauthenticate()
    await session.send(r.OK_COMPLETED.tagged(command.tag))


async def compress(session: Session, command: p.Compress) -> None:
    # RFC 4978 3: deflate from the octet after this OK on, both ways
    if command.algorithm != "DEFLATE":
        raise CommandError(BAD_COMPRESS_ALGORITHM)
    if session.deflate is not None:
        raise CommandError(NO_COMPRESSION_ACTIVE)
    await session.finish(command, OK_DEFLATE_ACTIVE)
    session.start_compression()


async def starttls(session: Session, command: p.Simple) -> None:
    # RFC 9051 6.2.1
    if session.tls or not session.starttls_allowed:
        raise CommandError(r.BAD_TLS_ACTIVE)
    # Anything pipelined after STARTTLS was sent in clear text: drop it (CVE-2011-0411 class).
    session.parser.take_buffer()
    await session.send(r.OK_BEGIN_TLS.tagged(command.tag))
    from mailhost import tls

    await session.writer.start_tls(tls.server_context())
    session.tls = True
    session.parser = p.Parser()


async def login(session: Session, command: p.Login) -> None:
    # RFC 9051 6.2.3
    if not session.plaintext_ok:
        raise CommandError(r.NO_LOGIN_DISABLED)
    await _authenticate(
        session, command, Credentials(authcid=command.user, password=command.password)
    )


async def authenticate(session: Session, command: p.Authenticate) -> None:
    # RFC 9051 6.2.2, SASL PLAIN (RFC 4616), SASL-IR (RFC 4959)
    if command.mechanism != sasl.PLAIN:
        raise CommandError(r.NO_UNKNOWN_MECHANISM)
    if not session.plaintext_ok:
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
    await _authenticate(session, command, step)


async def _authenticate(session: Session, command: p.Command, credentials: Credentials) -> None:
    mailbox = await password_login(
        db, protocol="imap", credentials=credentials, client_ip=session.client_ip
    )
    if isinstance(mailbox, Refusal):
        refusal = LOGIN_REFUSALS[mailbox]
        session.auth_failures += 1
        if session.auth_failures >= settings.MAILHOST_IMAP_MAX_AUTH_FAILURES:
            await session.send(refusal.tagged(command.tag) + r.BYE_TOO_MANY_FAILURES.untagged())
            raise ConnectionDone()
        raise CommandError(refusal)
    if not session.server.claim_user(session, mailbox.id):
        raise CommandError(r.NO_TOO_MANY_CONNECTIONS)
    session.mailbox = mailbox
    session.state = State.AUTHENTICATED
    await record(db, mailbox)
    caps = "CAPABILITY " + " ".join(session.capabilities())
    await session.send(r.OK_LOGGED_IN.with_code(caps).tagged(command.tag))
