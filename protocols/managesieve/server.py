"""ManageSieve listener (RFC 5804) on MAILHOST_MANAGESIEVE_PORT: STARTTLS, SASL PLAIN/LOGIN,
and the script commands over mailboxes.services.

asyncio only moves bytes here: Connection feeds the sans-IO parser and writes replies;
Session holds the state (states.py) and has one method per command, each awaiting the
services in a worker thread. Every reply comes from responses.py.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from mailboxes import selectors, services
from mailboxes.exceptions import (
    AlreadyExists,
    InvalidValue,
    NotFound,
    SieveQuotaExceeded,
    SieveScriptActive,
    SieveScriptInvalid,
)
from mailboxes.models import Mailbox
from mailhost import tls
from mailhost.listeners import Listener
from protocols.common import sasl
from protocols.common.connection import ConnectionClosed, LineConnection, db
from protocols.common.listener import Caps, Served, Sessions, listen
from protocols.common.login import (
    EventLogin,
    FailureCount,
    Refusal,
    plaintext_allowed,
    record,
)
from protocols.managesieve import parser, responses
from protocols.managesieve.states import State, allowed

logger = logging.getLogger(__name__)

PORTS = {"managesieve": "MAILHOST_MANAGESIEVE_PORT"}  # see mailhost/processes.py

SHUTDOWN_CLOSE_GRACE = 2.0  # seconds a stopping listener's sessions get to see their BYE out
LOGIN_REFUSALS = {
    Refusal.FAILED: responses.NO_AUTH_FAILED,
    Refusal.IDENTITY: responses.NO_AUTH_FAILED,  # acting as someone else is not offered
    Refusal.THROTTLED: responses.NO_AUTH_THROTTLED,
    Refusal.APP_PASSWORD: responses.NO_AUTH_APP_PASSWORD,
}


def sieve_extensions() -> list[str]:
    from mailboxes import sieve

    return sorted(sieve.CAPABILITIES)


class Connection(LineConnection):
    """Bytes in and out of one client socket; no ManageSieve logic."""

    need_data = parser.NEED_DATA
    refusal = responses.BYE_TOO_MANY_CONNECTIONS
    goodbye = responses.BYE_SHUTDOWN
    signed_out = responses.BYE_SIGNED_OUT
    shutdown_grace = SHUTDOWN_CLOSE_GRACE

    def __init__(self, family: Sessions) -> None:
        super().__init__(
            family,
            parser.Parser(
                max_line_length=settings.MAILHOST_MANAGESIEVE_MAX_LINE_LENGTH,
                max_literal=settings.MAILHOST_MANAGESIEVE_MAX_LITERAL_BEFORE_AUTH,
            ),
            secure=False,
        )

    def session(self) -> Awaitable[None]:
        return Session(self).run()

    def idle_timeout(self) -> float:
        return settings.MAILHOST_MANAGESIEVE_IDLE_TIMEOUT


class Session(EventLogin):
    """One ManageSieve session: the state table, the login and one method per command."""

    protocol = "managesieve"
    refusals = LOGIN_REFUSALS
    db = staticmethod(db)

    def __init__(self, connection: Connection) -> None:
        self.conn = connection
        self.state = State.NON_AUTHENTICATED
        self.mailbox: Mailbox | None = None
        self.failures = FailureCount(settings.MAILHOST_MANAGESIEVE_MAX_AUTH_FAILURES)
        self.errors = 0
        self.done = False
        self.handlers: dict[type, Callable[[Any], Awaitable[None]]] = {
            parser.Authenticate: self.cmd_authenticate,
            parser.StartTls: self.cmd_starttls,
            parser.Logout: self.cmd_logout,
            parser.Capability: self.cmd_capability,
            parser.HaveSpace: self.cmd_havespace,
            parser.PutScript: self.cmd_putscript,
            parser.ListScripts: self.cmd_listscripts,
            parser.SetActive: self.cmd_setactive,
            parser.GetScript: self.cmd_getscript,
            parser.DeleteScript: self.cmd_deletescript,
            parser.RenameScript: self.cmd_renamescript,
            parser.CheckScript: self.cmd_checkscript,
            parser.Noop: self.cmd_noop,
            parser.Unauthenticate: self.cmd_unauthenticate,
        }

    async def send(self, data: bytes) -> None:
        await self.conn.send(data)

    async def run(self) -> None:
        try:
            # RFC 5804 1.7: the server speaks first, with its capabilities.
            await self.send(self.capability_lines() + responses.OK_GREETING)
            while not self.done:
                deadline = time.monotonic() + settings.MAILHOST_MANAGESIEVE_IDLE_TIMEOUT
                try:
                    event = await self.conn.next_event(deadline)
                except TimeoutError:
                    await self.send(responses.BYE_IDLE)
                    break
                if event is None:
                    break
                await self.dispatch(event)
                if self.conn.stopping and not self.done:
                    await self.send(responses.BYE_SHUTDOWN)
                    break
                if self.conn.revoked and not self.done:
                    await self.send(responses.BYE_SIGNED_OUT)
                    break
        except (ConnectionClosed, ConnectionError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("ManageSieve session failed (peer %s)", self.conn.peer_ip)
            try:
                await self.send(responses.NO_SERVER_ERROR)
            except Exception:
                pass
        finally:
            self.conn.close()

    async def error(self, reply: bytes) -> None:
        """A client mistake: NO and go on, until there were too many."""
        self.errors += 1
        if self.errors > settings.MAILHOST_MANAGESIEVE_MAX_BAD_COMMANDS:
            await self.send(responses.BYE_TOO_MANY_ERRORS)
            self.done = True
            return
        await self.send(reply)

    async def dispatch(self, event: parser.Event) -> None:
        # Input that cannot be framed ends the session first, in a SASL exchange or not: what
        # follows it (an unread literal's octets) must never be read as commands.
        if isinstance(event, parser.LineTooLong):
            await self.send(responses.BYE_LINE_TOO_LONG)
            self.done = True
        elif isinstance(event, parser.LiteralTooLarge) and event.fatal:
            await self.send(responses.BYE_LITERAL_TOO_LARGE)
            self.done = True
        elif isinstance(event, parser.SaslResponse):
            # RFC 5804 2.1: "*" cancels (the base64 alphabet has no "*").
            await self.sasl_response(b"*" if event.cancelled else event.data)
        elif self.sasl is not None:  # a syntax error in a SASL response ends the exchange
            self.sasl = None
            await self.login_failed(responses.NO_AUTH_MALFORMED)
        elif isinstance(event, parser.LiteralTooLarge):
            await self.error(_TOO_LARGE.get(event.command, responses.NO_LITERAL_TOO_LARGE_OTHER))
        elif isinstance(event, parser.UnknownCommand):
            await self.error(responses.NO_UNKNOWN_COMMAND)
        elif isinstance(event, parser.BadSyntax):
            await self.error(responses.no_syntax(event.text))
        elif not allowed(self.state, event):
            await self.error(
                responses.NO_WRONG_STATE_AUTH
                if self.state is State.NON_AUTHENTICATED
                else responses.NO_WRONG_STATE_LOGGED_IN
            )
        else:
            await self.handlers[type(event)](event)

    # --- Capabilities, TLS, logout ----------------------------------------------------------

    @property
    def login_allowed(self) -> bool:
        return plaintext_allowed(self.conn.secure)

    def capability_lines(self) -> bytes:
        extensions = sieve_extensions()
        return responses.capabilities(
            sieve_extensions=extensions,
            # RFC 5804 1.7: an empty SASL list while logins need TLS first.
            sasl=sasl.MECHANISMS if self.login_allowed else (),
            # RFC 5804 1.7: not advertised once STARTTLS or AUTHENTICATE has succeeded.
            starttls=not self.conn.secure and self.state is State.NON_AUTHENTICATED,
            max_redirects=settings.MAILHOST_SIEVE_MAX_REDIRECTS,
            notify=["mailto"] if "enotify" in extensions else [],
            owner=self.mailbox.address if self.mailbox is not None else None,
        )

    async def cmd_capability(self, command: parser.Capability) -> None:
        await self.send(self.capability_lines() + responses.OK_CAPABILITY)

    async def cmd_starttls(self, command: parser.StartTls) -> None:
        if self.conn.secure:
            await self.error(responses.NO_TLS_ACTIVE)
            return
        await self.send(responses.OK_STARTTLS)
        try:
            await self.conn.start_tls()
        except (OSError, TimeoutError, ConnectionError) as exc:
            logger.info("managesieve starttls failed client=%s error=%s", self.conn.peer_ip, exc)
            self.done = True
            return
        # RFC 5804 2.2: after the handshake the server sends its capabilities again.
        await self.send(self.capability_lines() + responses.OK_TLS_STARTED)

    async def cmd_logout(self, command: parser.Logout) -> None:
        # RFC 5804 2.3
        self.done = True
        await self.send(responses.OK_LOGOUT)

    async def cmd_noop(self, command: parser.Noop) -> None:
        await self.send(responses.ok_noop(command.tag))

    async def cmd_unauthenticate(self, command: parser.Unauthenticate) -> None:
        # RFC 5804 2.14.1: back to the non-authenticated state; TLS stays.
        self.mailbox = None
        self.conn.signed_in = None
        self.state = State.NON_AUTHENTICATED
        self.conn.parser.set_limits(
            max_literal=settings.MAILHOST_MANAGESIEVE_MAX_LITERAL_BEFORE_AUTH,
            fatal_literals=True,
        )
        await self.send(responses.OK_UNAUTHENTICATED)

    # --- AUTHENTICATE (RFC 5804 2.1) --------------------------------------------------------

    async def cmd_authenticate(self, command: parser.Authenticate) -> None:
        if command.mechanism not in sasl.MECHANISMS:
            await self.error(responses.NO_MECHANISM)
            return
        if not self.login_allowed:
            await self.error(responses.NO_ENCRYPT_NEEDED)
            return
        if command.mechanism == sasl.LOGIN and command.initial_response is not None:
            # RFC 5804 2.1: LOGIN's server speaks first ("Username:").
            await self.error(responses.NO_INITIAL_RESPONSE)
            return
        await self.sasl_start(command.mechanism, command.initial_response)

    async def sasl_challenge(self, data: bytes) -> None:
        self.conn.parser.expect_sasl_response()
        await self.send(responses.sasl_challenge(base64.b64encode(data)))

    async def sasl_failed(self, error: sasl.Cancelled | sasl.Malformed) -> None:
        if isinstance(error, sasl.Cancelled):
            await self.send(responses.NO_AUTH_CANCELLED)
        else:
            await self.login_failed(responses.NO_AUTH_MALFORMED)

    async def logged_in(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
        self.state = State.AUTHENTICATED
        # After login a literal may carry a whole script; past the size limit it is skipped
        # and refused with QUOTA/MAXSIZE rather than ending the session.
        self.conn.parser.set_limits(
            max_literal=settings.MAILHOST_SIEVE_MAX_SCRIPT_SIZE, fatal_literals=False
        )
        await record(db, mailbox)
        self.conn.sign_in(mailbox.pk)
        await self.send(responses.OK_LOGGED_IN)

    async def login_failed(self, reply: bytes) -> None:
        if self.failures.add():
            await self.send(responses.BYE_AUTH_FAILURES)
            self.done = True
            return
        await self.send(reply)

    # --- Scripts (RFC 5804 2.5 - 2.12) ------------------------------------------------------

    async def store(self, fn: Callable[..., Any], /, **kwargs: Any) -> tuple[bool, Any]:
        """Run a script service; on a refusal reply NO with its code and return (False, None)."""
        try:
            return True, await db(fn, mailbox=self.mailbox, **kwargs)
        except NotFound:
            await self.send(responses.NO_NONEXISTENT)
        except SieveScriptActive:
            await self.send(responses.NO_ACTIVE)
        except AlreadyExists:
            await self.send(responses.NO_ALREADYEXISTS)
        except SieveQuotaExceeded as exc:
            await self.send(responses.no_quota(exc.resource, str(exc)))
        except SieveScriptInvalid as exc:
            await self.send(responses.no_script_errors(exc.errors))
        except InvalidValue as exc:
            await self.send(responses.no(f"Invalid script name: {exc}."))
        return False, None

    async def script_text(self, data: bytes) -> str | None:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            await self.send(responses.NO_NOT_UTF8)
            return None

    async def cmd_havespace(self, command: parser.HaveSpace) -> None:
        try:
            services.sievescript_name_validate(command.name)
        except InvalidValue as exc:
            await self.send(responses.no(f"Invalid script name: {exc}."))
            return
        done, _ = await self.store(
            services.sievescript_check_space, name=command.name, size=command.size
        )
        if done:
            await self.send(responses.OK_HAVESPACE)

    async def cmd_putscript(self, command: parser.PutScript) -> None:
        if not command.script:
            await self.send(responses.NO_EMPTY_SCRIPT)
            return
        text = await self.script_text(command.script)
        if text is None:
            return
        done, _ = await self.store(services.sievescript_put, name=command.name, text=text)
        if done:
            await self.send(responses.OK_PUTSCRIPT)

    async def cmd_checkscript(self, command: parser.CheckScript) -> None:
        text = await self.script_text(command.script)
        if text is None:
            return
        errors = await db(services.sievescript_check, text=text, mailbox=self.mailbox)
        await self.send(responses.no_script_errors(errors) if errors else responses.OK_CHECKSCRIPT)

    async def cmd_listscripts(self, command: parser.ListScripts) -> None:
        scripts = await db(selectors.sievescripts_of, self.mailbox.pk)
        entries = [(script.name, script.active) for script in scripts]
        await self.send(responses.script_list(entries) + responses.OK_LISTSCRIPTS)

    async def cmd_setactive(self, command: parser.SetActive) -> None:
        done, _ = await self.store(services.sievescript_activate, name=command.name)
        if done:
            await self.send(responses.OK_SETACTIVE)

    async def cmd_getscript(self, command: parser.GetScript) -> None:
        script = await db(selectors.sievescript_get, self.mailbox.pk, command.name)
        if script is None:
            await self.send(responses.NO_NONEXISTENT)
            return
        await self.send(responses.script_body(script.text) + responses.OK_GETSCRIPT)

    async def cmd_deletescript(self, command: parser.DeleteScript) -> None:
        done, _ = await self.store(services.sievescript_delete, name=command.name)
        if done:
            await self.send(responses.OK_DELETESCRIPT)

    async def cmd_renamescript(self, command: parser.RenameScript) -> None:
        done, _ = await self.store(
            services.sievescript_rename, old_name=command.old_name, new_name=command.new_name
        )
        if done:
            await self.send(responses.OK_RENAMESCRIPT)


# An oversized literal (after login; it was skipped): PUTSCRIPT's is over the size quota.
_TOO_LARGE = {
    "PUTSCRIPT": responses.NO_LITERAL_TOO_LARGE,
    "CHECKSCRIPT": responses.NO_CHECK_TOO_LARGE,
}


async def start() -> list[Listener]:
    await asyncio.to_thread(tls.server_context)  # made (or loaded) before the first STARTTLS
    family = Sessions(
        Caps(
            "managesieve",
            max_total="MAILHOST_MAX_CONNECTIONS",
            max_per_ip="MAILHOST_MAX_CONNECTIONS_PER_IP",
        ),
        lambda connection: "managesieve",
    )
    family.hear_sign_outs()
    server = await listen(
        lambda: Connection(family), name="managesieve", port=settings.MAILHOST_MANAGESIEVE_PORT
    )
    return [Listener("managesieve", Served(server, family))]
