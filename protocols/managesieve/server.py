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
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

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
from mailhost import metrics, tls
from mailhost.listeners import Listener
from protocols import proxy
from protocols.common import sasl
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

TLS_HANDSHAKE_TIMEOUT = 30.0
READ_BUFFER_LIMIT = 256 * 1024  # pipelined input beyond this waits in the socket
SHUTDOWN_CLOSE_GRACE = 2.0  # seconds a stopping listener's sessions get to see their BYE out
LOGIN_REFUSALS = {
    Refusal.FAILED: responses.NO_AUTH_FAILED,
    Refusal.IDENTITY: responses.NO_AUTH_FAILED,  # acting as someone else is not offered
    Refusal.THROTTLED: responses.NO_AUTH_THROTTLED,
    Refusal.APP_PASSWORD: responses.NO_AUTH_APP_PASSWORD,
}


def _db(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Awaitable[Any]:
    """Sync store work in a worker thread, on a usable database connection."""

    def call() -> Any:
        close_old_connections()
        return fn(*args, **kwargs)

    return sync_to_async(call, thread_sensitive=False)()


def sieve_extensions() -> list[str]:
    from mailboxes import sieve

    return sorted(sieve.CAPABILITIES)


class ConnectionClosed(Exception):
    pass


class Connection(asyncio.Protocol):
    """Bytes in and out of one client socket; no ManageSieve logic."""

    def __init__(self, family: Family) -> None:
        self.family = family
        self.secure = False
        self.parser = parser.Parser(
            max_line_length=settings.MAILHOST_MANAGESIEVE_MAX_LINE_LENGTH,
            max_literal=settings.MAILHOST_MANAGESIEVE_MAX_LITERAL_BEFORE_AUTH,
        )
        self.transport: asyncio.Transport | None = None
        self.peer_ip: str | None = None
        self._data = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._paused = False
        self._eof = False
        self.closed = False
        self.task: asyncio.Task | None = None
        self.awaiting_command = False
        self.stopping = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer_ip = peer[0] if peer else None
        if not self.family.admit(self):
            transport.write(responses.BYE_TOO_MANY_CONNECTIONS)
            transport.close()
            self.closed = True
            return
        self.task = asyncio.get_running_loop().create_task(Session(self).run())
        self.family.track(self.task)

    def data_received(self, data: bytes) -> None:
        self.parser.receive_data(data)
        self._data.set()
        if self.parser.buffered > READ_BUFFER_LIMIT and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._data.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._data.set()
        self._writable.set()
        self.family.leave(self)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    async def next_event(self, deadline: float) -> parser.Event | None:
        """The next parsed input; None on end of input or disconnect; TimeoutError when the
        deadline passes first."""
        while True:
            event = self.parser.next_event()
            if event is not parser.NEED_DATA:
                return event
            if self.closed or self._eof:
                return None
            if self._paused:
                self._paused = False
                self.transport.resume_reading()
            self._data.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.awaiting_command = True
            try:
                await asyncio.wait_for(self._data.wait(), remaining)
            finally:
                self.awaiting_command = False

    async def send(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionClosed()
        self.transport.write(data)
        if not self._writable.is_set():
            try:
                await asyncio.wait_for(
                    self._writable.wait(), settings.MAILHOST_MANAGESIEVE_IDLE_TIMEOUT
                )
            except TimeoutError:
                self.transport.abort()
                raise ConnectionClosed() from None
        if self.closed:
            raise ConnectionClosed()

    async def start_tls(self) -> None:
        # Whatever the client pipelined in the clear after STARTTLS is dropped, never read as
        # if it came through TLS (the STARTTLS command injection class of bugs).
        self.parser.discard_buffered()
        loop = asyncio.get_running_loop()
        self.transport = await loop.start_tls(
            self.transport,
            self,
            tls.server_context(),
            server_side=True,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT,
        )
        self.secure = True

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def shutdown(self) -> None:
        """The server stops: BYE now when the session waits for a command, else after its
        reply."""
        if self.stopping:
            return
        self.stopping = True
        if self.awaiting_command and not self.closed and self.transport is not None:
            self.transport.write(responses.BYE_SHUTDOWN)
            self.close()
        # A TLS close waits for the peer's close_notify; a peer that sends none (or reads
        # nothing) is cut after a short grace, so the listener stops in time.
        asyncio.get_running_loop().call_later(SHUTDOWN_CLOSE_GRACE, self.abort)

    def abort(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.abort()


class Session(EventLogin):
    """One ManageSieve session: the state table, the login and one method per command."""

    protocol = "managesieve"
    refusals = LOGIN_REFUSALS
    db = staticmethod(_db)

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
        await record(_db, mailbox)
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
            return True, await _db(fn, mailbox=self.mailbox, **kwargs)
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
        errors = await _db(services.sievescript_check, text=text, mailbox=self.mailbox)
        await self.send(responses.no_script_errors(errors) if errors else responses.OK_CHECKSCRIPT)

    async def cmd_listscripts(self, command: parser.ListScripts) -> None:
        scripts = await _db(selectors.sievescripts_of, self.mailbox.pk)
        entries = [(script.name, script.active) for script in scripts]
        await self.send(responses.script_list(entries) + responses.OK_LISTSCRIPTS)

    async def cmd_setactive(self, command: parser.SetActive) -> None:
        done, _ = await self.store(services.sievescript_activate, name=command.name)
        if done:
            await self.send(responses.OK_SETACTIVE)

    async def cmd_getscript(self, command: parser.GetScript) -> None:
        script = await _db(selectors.sievescript_get, self.mailbox.pk, command.name)
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


class Family:
    """The listener's bookkeeping: connection limits and open sessions."""

    def __init__(self) -> None:
        self.connections: set[Connection] = set()
        self.per_ip: Counter[str | None] = Counter()
        self.sessions: set[asyncio.Task] = set()

    def track(self, task: asyncio.Task) -> None:
        self.sessions.add(task)
        task.add_done_callback(self.sessions.discard)

    def admit(self, connection: Connection) -> bool:
        if (
            len(self.connections) >= settings.MAILHOST_MAX_CONNECTIONS
            or self.per_ip[connection.peer_ip] >= settings.MAILHOST_MAX_CONNECTIONS_PER_IP
        ):
            return False
        self.connections.add(connection)
        self.per_ip[connection.peer_ip] += 1
        metrics.connection_opened("managesieve")
        return True

    def leave(self, connection: Connection) -> None:
        if connection in self.connections:
            self.connections.discard(connection)
            self.per_ip[connection.peer_ip] -= 1
            if self.per_ip[connection.peer_ip] <= 0:
                del self.per_ip[connection.peer_ip]


class ManageSieveServer:
    """The listener as the runner sees it: close() stops accepting and ends open sessions."""

    def __init__(self, server: asyncio.Server, family: Family) -> None:
        self.server = server
        self.family = family

    @property
    def sockets(self):
        return self.server.sockets

    def close(self) -> None:
        self.server.close()
        for connection in list(self.family.connections):
            connection.shutdown()

    async def wait_closed(self) -> None:
        if self.family.sessions:
            await asyncio.wait(list(self.family.sessions), timeout=10)
        await self.server.wait_closed()


async def start() -> list[Listener]:
    await asyncio.to_thread(tls.server_context)  # made (or loaded) before the first STARTTLS
    loop = asyncio.get_running_loop()
    family = Family()
    server = await proxy.create_server(
        loop,
        lambda: Connection(family),
        settings.MAILHOST_BIND,
        settings.MAILHOST_MANAGESIEVE_PORT,
        name="managesieve",
        backlog=settings.MAILHOST_LISTEN_BACKLOG,
    )
    return [Listener("managesieve", ManageSieveServer(server, family))]
