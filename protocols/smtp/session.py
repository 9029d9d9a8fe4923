"""One SMTP connection: asyncio moves the bytes, the sans-IO parser (parser.py) frames them,
the state table (states.py) says which command may come now, and one method per command
answers it. No aiosmtpd and no private asyncio attribute: an asyncio.Protocol, a buffer of
our own, loop.start_tls for STARTTLS.

What the session implements: PIPELINING (replies batched while more pipelined commands wait,
RFC 2920 3.1), ENHANCEDSTATUSCODES on every reply (named in replies.py), CHUNKING/BDAT (RFC
3030), DSN parameters (RFC 3461), SMTPUTF8, 8BITMIME, REQUIRETLS (RFC 8689), SIZE enforced
while reading, AUTH PLAIN/LOGIN only over TLS, STARTTLS and implicit TLS, the PROXY header
(MAILHOST_SMTP_PROXY_PROTOCOL), per-state timeouts (RFC 5321 4.5.3.2), and a DATA reader that
ends a message only at CRLF.CRLF and refuses bare CR/LF (SMTP smuggling).

Policy (is the domain ours, may this client relay, does the sender belong to the user) lives
in the handler's `handle_*` hooks (handler.py), called as
`handle_X(session_protocol, session, envelope, *args)`; the session parses and moves bytes.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import ssl
from base64 import b64encode
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings

from delivery.accept import EnvelopeRecipient
from mailboxes.throttle import log_value
from mailhost import metrics
from protocols import proxy
from protocols.common.login import FailureCount
from protocols.smtp import parser, replies, syntax
from protocols.smtp.databuffer import SPOOL_WRITERS, IncomingMessage
from protocols.smtp.replies import Reply
from protocols.smtp.states import TRANSACTION, State, after, refusal

if TYPE_CHECKING:
    from protocols.smtp.server import ConnectionRegistry

logger = logging.getLogger("mailhost.smtp")

# Received and not yet handled beyond this, the socket is not read until the session catches
# up (a pipelining client, a message arriving faster than it is spooled).
READ_BUFFER_LIMIT = 256 * 1024
MAX_ERRORS = 10  # syntax errors and unknown commands before the connection is dropped
PROXY_HEADER_TIMEOUT = 10  # seconds for the load balancer's PROXY header
TLS_HANDSHAKE_TIMEOUT = 60  # seconds for STARTTLS's handshake
MAX_AUTH_FAILURES = 3  # per connection; the shared throttle slows guessing across them
# RFC 3207 4: before STARTTLS on a port that requires it, only these are allowed.
ALLOWED_BEFORE_STARTTLS = {"EHLO", "HELO", "STARTTLS", "NOOP", "QUIT", "RSET"}


class Mode(enum.Enum):
    MTA = "smtp"  # port 25: mail for our domains from the world
    SUBMISSION = "submission"  # port 587: STARTTLS, then AUTH
    SUBMISSIONS = "submissions"  # port 465: implicit TLS, then AUTH

    @property
    def is_submission(self) -> bool:
        return self is not Mode.MTA


class TLSHandshakeFailed(Exception):
    """STARTTLS's handshake did not complete."""


class MailSession:
    """What the client said about itself: HELO name, ESMTP, login. STARTTLS starts anew."""

    def __init__(self) -> None:
        self.host_name: str | None = None
        self.extended_smtp = False
        self.authenticated = False
        self.mailbox = None  # the authenticated Mailbox
        self.auth_user = ""
        self.auth_failures = FailureCount(MAX_AUTH_FAILURES)


class MailEnvelope:
    """One mail transaction: sender, recipients, message data."""

    def __init__(self) -> None:
        self.mail_from: str | None = None
        self.rcpt_tos: list[str] = []
        self.smtp_utf8 = False
        self.content: bytes | None = None
        self.original_content: bytes | None = None
        self.params = syntax.MailParams()
        self.recipients: list[EnvelopeRecipient] = []  # parallel to rcpt_tos, with DSN params
        self.incoming: IncomingMessage | None = None  # the message data so far
        self.bdat = False  # BDAT started (DATA may not follow)
        self.unauthenticated_hosted_sender = (
            False  # let through MAILHOST_SMTP_HOSTED_SENDER_CLIENTS
        )

    def discard(self) -> None:
        """Free the message data at once (the transaction is over or aborted)."""
        if self.incoming is not None:
            self.incoming.discard()
            self.incoming = None


class SMTPSession(asyncio.Protocol):
    # Each verb's method (smtp_VERB), looked up once for the class (and for each subclass)
    # rather than bound fourteen times for every connection.
    commands: ClassVar[dict[str, Callable[..., Awaitable[None]]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.commands = _command_methods(cls)

    def __init__(
        self,
        handler: Any,
        *,
        mode: Mode,
        registry: ConnectionRegistry | None = None,
        tls_context: ssl.SSLContext | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.handler = handler
        self.loop = loop or asyncio.get_running_loop()
        self.mode = mode
        self.registry = registry
        self.hostname = settings.MAILHOST_HOSTNAME
        # STARTTLS's context (465 is TLS from the first byte: nothing to start there).
        self.tls_context = tls_context if mode is not Mode.SUBMISSIONS else None
        self.command_timeout = settings.MAILHOST_SMTP_COMMAND_TIMEOUT
        self.max_size = settings.MAILHOST_MAX_MESSAGE_SIZE
        self.max_line = settings.MAILHOST_MAX_LINE_LENGTH
        self.plaintext_auth = settings.MAILHOST_ALLOW_PLAINTEXT_AUTH
        self.data_timeout = settings.MAILHOST_SMTP_DATA_TIMEOUT
        self.data_total_timeout = settings.MAILHOST_SMTP_DATA_TOTAL_TIMEOUT
        self.auth_offered = mode.is_submission or settings.MAILHOST_SMTP_AUTH_ON_MTA
        self.must_starttls = mode is Mode.SUBMISSION and not self.plaintext_auth
        # Port 465's TLS starts before any byte we could read, so PROXY is for 25 and 587.
        # MAILHOST_PROXY_TRUSTED (protocols/proxy.py, every listener) supersedes it when set.
        self.proxy_protocol = (
            settings.MAILHOST_SMTP_PROXY_PROTOCOL
            and not settings.MAILHOST_PROXY_TRUSTED
            and mode is not Mode.SUBMISSIONS
        )
        self.parser = parser.Parser(max_line=self.max_line)
        self.state = State.CONNECTED
        self.session = MailSession()
        self.envelope = MailEnvelope()
        self.transport: asyncio.Transport | None = None
        self.client_ip = ""
        self.closed = asyncio.Event()
        self._log_from: str | None = None  # MAIL FROM's address while its hook decides
        self._log_to: str | None = None  # RCPT TO's address while its hook decides
        self._log_head_key: tuple | None = None  # what _log_head_text was made of
        self._log_head_text = ""
        self._out = bytearray()
        self._input: asyncio.Future | None = None  # the session waits for input
        self._writable: asyncio.Future | None = None  # the session waits for the socket
        self._read_paused = False
        self._write_paused = False
        self._eof = False
        self._deadline = 0.0  # loop time of the current timeout
        self._timer: asyncio.TimerHandle | None = None
        self._draining = False
        self._awaiting_command = False
        self._registered = False
        self._task: asyncio.Task | None = None

    # --- asyncio callbacks ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else ""
        self._reset_timeout()
        # Held here: the loop keeps only a weak reference to a task.
        self._task = self.loop.create_task(self._run())

    def data_received(self, data: bytes) -> None:
        self.parser.receive_data(data)
        if self.parser.buffered > READ_BUFFER_LIMIT and not self._read_paused:
            self._read_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        # The client is gone: what it pipelined and the session has not handled is dropped
        # (a message whose end came with the FIN is not accepted unanswered).
        self._eof = True
        self._wake()
        return False

    def connection_lost(self, error: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._registered and self.registry is not None:
            self.registry.remove(self)
            self._registered = False
        envelope = self.envelope
        if envelope.mail_from is not None and envelope.rcpt_tos:
            self.log_event("smtp aborted", envelope, rcpts=str(len(envelope.rcpt_tos)))
        envelope.discard()  # an aborted transaction's data goes now, not when GC gets to it
        self.transport = None
        self.closed.set()
        self._wake()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def _wake(self) -> None:
        if self._input is not None and not self._input.done():
            self._input.set_result(None)

    # --- Input ---------------------------------------------------------------------------------

    async def _wait_input(self) -> None:
        if self._read_paused and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()
        self._input = self.loop.create_future()
        try:
            await self._input
        finally:
            self._input = None

    async def _next_event(self, *, command: bool = False) -> parser.Event | None:
        """The next parsed input; None once the client has closed or the connection is lost.
        `command`: the session waits between commands (a drain may end it there)."""
        while True:
            if self._eof or self.transport is None:
                return None
            event = self.parser.next_event()
            if event is not parser.NEED_DATA:
                return event
            self._awaiting_command = command
            try:
                await self._wait_input()
            finally:
                self._awaiting_command = False

    # --- Timeouts (RFC 5321 4.5.3.2): one deadline, one timer re-armed only when it fires early --

    def _reset_timeout(self, duration: float | None = None) -> None:
        self._deadline = self.loop.time() + (duration or self.command_timeout)
        timer = self._timer
        if timer is None or timer.when() > self._deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(self._deadline, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        if self.loop.time() + 0.001 < self._deadline:  # moved on since it was armed
            self._timer = self.loop.call_at(self._deadline, self._timer_fired)
            return
        self._timeout()

    def _timeout(self) -> None:
        if self.transport is not None:
            incoming = self.envelope.incoming
            expired = incoming is not None and self.loop.time() >= incoming.deadline - 0.01
            reply = replies.S421_DATA_TOO_SLOW if expired else replies.S421_TIMEOUT
            self.transport.write(self._pending() + reply.format(self.hostname).line)
            self.transport.close()

    def _reset_data_timeout(self, incoming: IncomingMessage) -> None:
        """RFC 5321 4.5.3.2.5: a timeout per data block, and (ours) one for the whole
        message, so that a trickle of bytes cannot hold a session for ever."""
        remaining = incoming.deadline - self.loop.time()
        self._reset_timeout(max(0.001, min(self.data_timeout, remaining)))

    # --- TLS ------------------------------------------------------------------------------------

    @property
    def tls_active(self) -> bool:
        transport = self.transport
        return transport is not None and transport.get_extra_info("ssl_object") is not None

    def tls_description(self) -> str:
        transport = self.transport
        sslobj = transport.get_extra_info("ssl_object") if transport is not None else None
        if sslobj is None:
            return ""
        cipher = sslobj.cipher()
        return f"{sslobj.version()} with cipher {cipher[0] if cipher else 'unknown'}"

    # --- Output: replies are batched while more pipelined commands wait (RFC 2920 3.1) ------

    def _pending(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    async def push(self, status: Reply | bytes | str) -> None:
        if isinstance(status, Reply):
            line = status.line
            if status.code >= 400 and status.code != 535:  # 535: the login limiter logs it
                self.log_reject(status)
        elif isinstance(status, bytes):
            line = status + b"\r\n"
        else:
            line = status.encode("utf-8", "surrogateescape") + b"\r\n"
        if self.parser.command_waiting():  # a whole command is waiting
            self._out += line
            return
        if self._out:  # the replies of the pipelined commands before this one
            self._out += line
            line = self._pending()
        # Written here rather than through flush(): a reply a command, and no coroutine for
        # each unless the socket's buffer is full.
        if self._write(line):
            await self._drained()

    async def flush(self) -> None:
        if self._out and self._write(self._pending()):
            await self._drained()

    def _write(self, data: bytes) -> bool:
        """Hand `data` to the transport; True when its buffer is full (await _drained)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False  # a timeout or the client ended it: nobody reads these
        transport.write(data)
        return self._write_paused

    async def _drained(self) -> None:
        self._writable = self.loop.create_future()
        try:
            await self._writable
        finally:
            self._writable = None

    async def reply_and_close(self, reply: Reply) -> None:
        await self.push(reply)
        await self.flush()
        if self.transport is not None:
            self.transport.close()

    @property
    def _ended(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    # --- Draining on shutdown ------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        return self.state in TRANSACTION

    def begin_drain(self) -> None:
        """Stop after the transaction in flight; an idle connection is told 421 now."""
        self._draining = True
        if self._awaiting_command and not self.in_transaction and self.transport is not None:
            self.transport.write(
                self._pending() + replies.S421_SHUTTING_DOWN.format(self.hostname).line
            )
            self.transport.close()

    # --- Under pressure: idle strangers on port 25 wait less --------------------------------------

    def _cut_sooner(self) -> bool:
        """Port 25 is busy and this session is an idle stranger (no AUTH, no transaction)."""
        return (
            self.registry is not None
            and self.registry.busy
            and not self.mode.is_submission
            and not self.in_transaction
            and not self.session.authenticated
        )

    def idle_deadline_shortened(self) -> None:
        """Port 25 just became busy: an idle stranger waiting for a command gets the short
        timeout from now on."""
        if self._awaiting_command and self._cut_sooner() and self.transport is not None:
            self._reset_timeout(self.registry.busy_timeout)

    # --- The command loop --------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._handle_client()
        except ConnectionError:
            pass  # the client went away while being answered
        except Exception:
            logger.exception("%s SMTP session error", self.client_ip)
        finally:
            if self.transport is not None:
                self.transport.close()

    async def _handle_client(self) -> None:
        if self.proxy_protocol and not await self._read_proxy_header():
            return
        if self.registry is not None:
            refused = self.registry.add(self)
            if refused is not None:
                await self.reply_and_close(refused.format(self.hostname))
                return
            self._registered = True
            metrics.connection_opened(self.mode.value)
        await self.push(replies.for_host(replies.S220_GREETING, self.hostname))
        errors = 0
        while not self._ended:
            if self._draining and not self.in_transaction:
                await self.reply_and_close(replies.S421_SHUTTING_DOWN.format(self.hostname))
                return
            try:
                if self._cut_sooner():
                    self._reset_timeout(self.registry.busy_timeout)
                event = await self._next_event(command=True)
                if event is None:
                    return  # the client went away: nothing of a transaction was stored
                if isinstance(event, parser.BadCommand):
                    reply = event.reply
                elif (
                    self.must_starttls
                    and not self.tls_active
                    and event.verb not in ALLOWED_BEFORE_STARTTLS
                ):
                    reply = replies.S530_STARTTLS_FIRST
                else:
                    reply = None
                if reply is not None:
                    errors += 1
                    if errors >= MAX_ERRORS:
                        await self.reply_and_close(
                            replies.S421_TOO_MANY_ERRORS.format(self.hostname)
                        )
                        return
                    await self.push(reply)
                    continue
                self._reset_timeout()
                await self.commands[event.verb](self, event.arg)
            except ConnectionError:
                # The client went away (mid-DATA included): nothing of it was stored.
                return
            except TLSHandshakeFailed:
                logger.info("%s TLS handshake failed", self.client_ip)
                return
            except Exception:
                logger.exception("%s SMTP session error", self.client_ip)
                await self.push(replies.S451_LOCAL_ERROR)

    async def _read_proxy_header(self) -> bool:
        """The load balancer's PROXY header (v1 or v2): the real client's address."""
        self._reset_timeout(PROXY_HEADER_TIMEOUT)
        header = None
        while not (self._eof or self.transport is None):
            try:
                header = self.parser.proxy_header()
            except proxy.ProxyHeaderError:
                header = None
                break
            if header is not parser.NEED_DATA:
                break
            header = None
            await self._wait_input()
        if header is None:
            logger.warning("%s no valid PROXY header; connection closed", self.client_ip)
            return False
        if header.source is not None:  # "PROXY UNKNOWN" (health checks) carries none
            self.client_ip = header.source[0]
        self._reset_timeout()
        return True

    def _auth_required(self) -> bool:
        return self.mode.is_submission and not self.session.authenticated

    def _set_rset_state(self) -> None:
        """A new, empty transaction (RSET, HELO/EHLO, the end of a message)."""
        self.envelope.discard()
        self.envelope = MailEnvelope()

    # --- Commands ------------------------------------------------------------------------------

    async def smtp_HELO(self, arg: str | None) -> None:
        if not arg:
            await self.push(replies.S501_HELO_SYNTAX.format("HELO"))
            return
        self._set_rset_state()
        self.state = after(self.state, "HELO")
        self.session.extended_smtp = False
        self.session.host_name = arg
        await self.push(replies.for_host(replies.S250_HELO, self.hostname))

    async def smtp_EHLO(self, arg: str | None) -> None:
        if not arg:
            await self.push(replies.S501_HELO_SYNTAX.format("EHLO"))
            return
        self._set_rset_state()
        self.state = after(self.state, "EHLO")
        self.session.extended_smtp = True
        self.session.host_name = arg
        tls_active = self.tls_active
        lines = [
            self.hostname,
            "PIPELINING",
            f"SIZE {self.max_size}",
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "DSN",
            "SMTPUTF8",
            *(["REQUIRETLS"] if tls_active else []),  # RFC 8689 4.1: only under TLS
            "CHUNKING",
        ]
        if self.tls_context is not None and not tls_active:
            lines.append("STARTTLS")
        if self.auth_offered and (tls_active or self.plaintext_auth):
            lines.append("AUTH PLAIN LOGIN")
        await self.push("\r\n".join(f"250-{text}" for text in lines[:-1]) + f"\r\n250 {lines[-1]}")

    async def smtp_NOOP(self, arg: str | None) -> None:
        await self.push(replies.S250_NOOP)

    async def smtp_RSET(self, arg: str | None) -> None:
        if arg:
            await self.push(replies.S501_SYNTAX.format("RSET"))
            return
        self._set_rset_state()
        self.state = after(self.state, "RSET")
        await self.push(replies.S250_RESET)

    async def smtp_QUIT(self, arg: str | None) -> None:
        await self.reply_and_close(replies.S221_BYE)

    async def smtp_VRFY(self, arg: str | None) -> None:
        # RFC 5321 3.5.3: 252 says nothing about whether the address exists.
        await self.push(replies.S252_VRFY if arg else replies.S501_SYNTAX.format("VRFY address"))

    async def smtp_EXPN(self, arg: str | None) -> None:
        await self.push(replies.S502_NOT_IMPLEMENTED)

    async def smtp_HELP(self, arg: str | None) -> None:
        await self.push(replies.S214_HELP)

    async def smtp_STARTTLS(self, arg: str | None) -> None:
        if arg:
            await self.push(replies.S501_SYNTAX.format("STARTTLS"))
            return
        if self.tls_active:
            await self.push(replies.S503_TLS_ALREADY)
            return
        if self.tls_context is None:
            await self.push(replies.S454_TLS_UNAVAILABLE)
            return
        await self.push(replies.S220_READY_TLS)
        await self.flush()
        # RFC 3207 4.2: whatever the client pipelined in the clear after STARTTLS is dropped,
        # never read as if it came through TLS; no await between here and the handshake.
        self.parser.discard_buffered()
        self._read_paused = False  # start_tls resumes reading when it is done
        try:
            transport = await self.loop.start_tls(
                self.transport,
                self,
                self.tls_context,
                server_side=True,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT,
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:
            raise TLSHandshakeFailed() from error
        if transport is None or self.transport is None:
            raise ConnectionResetError("connection lost during the TLS handshake")
        self.transport = transport
        # RFC 3207 4.2: the session starts over, as if just connected.
        self.session = MailSession()
        self._set_rset_state()
        self.state = after(self.state, "STARTTLS")
        self._reset_timeout()

    async def smtp_AUTH(self, arg: str | None) -> None:
        if self.state is State.CONNECTED or not self.session.extended_smtp:
            await self.push(replies.S503_NEED_HELO)
            return
        if not self.auth_offered:
            await self.push(replies.S503_AUTH_NOT_OFFERED)
            return
        if not (self.tls_active or self.plaintext_auth):
            await self.push(replies.S538_ENCRYPTION_REQUIRED)
            return
        if self.session.authenticated:
            await self.push(replies.S503_AUTH_ALREADY)
            return
        problem = refusal(self.state, "AUTH", auth_required=False)
        if problem is not None:
            await self.push(problem)
            return
        args = (arg or "").split()
        if not args or len(args) > 2:
            await self.push(replies.S501_AUTH_SYNTAX)
            return
        args[0] = args[0].upper()
        if args[0] not in {"PLAIN", "LOGIN"}:
            await self.push(replies.S504_AUTH_MECHANISM)
            return
        reply = await self.handler.handle_AUTH(self, self.session, self.envelope, args)
        if reply is None:
            return  # the session replied (a line too long)
        if reply.code == 535 and self.session.auth_failures.add():
            await self.push(reply)
            await self.reply_and_close(replies.S421_TOO_MANY_ERRORS.format(self.hostname))
            return
        await self.push(reply)

    async def challenge_auth(self, challenge: bytes) -> bytes | None:
        """Send a 334 challenge (raw octets, sent in base64) and return the client's answer as
        sent, for protocols.common.sasl to read; None when the line was too long (replied)."""
        await self.push(replies.S334_CHALLENGE.format(b64encode(challenge).decode("ascii")))
        await self.flush()
        self.parser.start_line()
        event = await self._next_event()
        if event is None:
            raise ConnectionResetError("client closed the connection during AUTH")
        assert isinstance(event, parser.Line)
        if event.too_long:
            await self.push(replies.S500_LINE_TOO_LONG)
            return None
        return event.data

    async def smtp_MAIL(self, arg: str | None) -> None:
        problem = refusal(self.state, "MAIL", auth_required=self._auth_required())
        if problem is not None:
            await self.push(problem)
            return
        if not arg or arg[:5].upper() != "FROM:":
            await self.push(replies.S501_MAIL_SYNTAX)
            return
        try:
            address, rest = syntax.split_path(arg[5:])
            if rest and not self.session.extended_smtp:
                raise syntax.SyntaxProblem(replies.S501_MAIL_SYNTAX)
            params = syntax.parse_mail_params(rest, max_size=self.max_size)
        except syntax.SyntaxProblem as problem:
            await self.push(problem.reply)
            return
        if not address.isascii() and not params.smtputf8:
            await self.push(replies.S553_SMTPUTF8_REQUIRED)
            return
        if params.require_tls and not self.tls_active:
            await self.push(replies.S530_REQUIRETLS_NEEDS_TLS)
            return
        # The hook checks the sender and, when it accepts it, starts the envelope.
        self._log_from = address
        try:
            reply = await self.handler.handle_MAIL(
                self, self.session, self.envelope, address, params
            )
            if self.envelope.mail_from is not None:
                self.state = after(self.state, "MAIL")
            await self.push(reply)
        finally:
            self._log_from = None

    async def smtp_RCPT(self, arg: str | None) -> None:
        problem = refusal(self.state, "RCPT", auth_required=self._auth_required())
        if problem is not None:
            await self.push(problem)
            return
        if not arg or arg[:3].upper() != "TO:":
            await self.push(replies.S501_RCPT_SYNTAX)
            return
        try:
            address, rest = syntax.split_path(arg[3:], allow_postmaster=True)
            if not address:
                raise syntax.SyntaxProblem(replies.S553_BAD_RECIPIENT_SYNTAX)
            if rest and not self.session.extended_smtp:
                raise syntax.SyntaxProblem(replies.S501_RCPT_SYNTAX)
            params = syntax.parse_rcpt_params(rest)
        except syntax.SyntaxProblem as problem:
            await self.push(problem.reply)
            return
        envelope = self.envelope
        if not address.isascii() and not envelope.smtp_utf8:
            await self.push(replies.S553_SMTPUTF8_RECIPIENT)
            return
        if len(envelope.rcpt_tos) >= settings.MAILHOST_MAX_RECIPIENTS:
            await self.push(replies.S452_TOO_MANY_RECIPIENTS)
            return
        # The hook checks the recipient and, when it accepts it, adds it to the envelope.
        self._log_to = address
        try:
            reply = await self.handler.handle_RCPT(self, self.session, envelope, address, params)
            if envelope.rcpt_tos and envelope is self.envelope:
                self.state = after(self.state, "RCPT")
            await self.push(reply)
        finally:
            self._log_to = None

    async def smtp_DATA(self, arg: str | None) -> None:
        problem = refusal(self.state, "DATA", auth_required=self._auth_required())
        if problem is None and arg:
            problem = replies.S501_SYNTAX.format("DATA")
        if problem is not None:
            await self.push(problem)
            return
        await self.push(replies.S354_START_DATA)
        if self._out:  # kept back by data that came with the command
            await self.flush()
        incoming = self._start_incoming(dot_stuffed=True)
        self.parser.start_data()
        while True:
            self._reset_data_timeout(incoming)
            event = await self._next_event()
            if event is None:
                raise ConnectionResetError("client closed the connection during DATA")
            if event.end:
                self._reset_timeout()
            await self._feed(incoming, event.data)
            if event.end:
                break
        reply = await self._finish(incoming)
        try:
            await self.push(reply)  # first: its log line names the transaction
        finally:
            self._set_rset_state()
            self.state = after(self.state, "DATA")

    def _start_incoming(self, *, dot_stuffed: bool) -> IncomingMessage:
        incoming = IncomingMessage(
            dot_stuffed=dot_stuffed,
            max_size=self.max_size,
            deadline=self.loop.time() + self.data_total_timeout,
        )
        self.envelope.incoming = incoming
        return incoming

    async def _feed(self, incoming: IncomingMessage, data: bytes) -> None:
        """Hand a piece on; past the spool threshold in the spool thread, awaited before the
        next piece (so no more than READ_BUFFER_LIMIT waits per connection) and never on the
        loop."""
        if not data:
            return
        if incoming.spools(data):
            await self.loop.run_in_executor(SPOOL_WRITERS, incoming.feed, data)
        else:
            incoming.feed(data)

    async def smtp_BDAT(self, arg: str | None) -> None:
        parts = (arg or "").split()
        if not (1 <= len(parts) <= 2 and parts[0].isdigit() and len(parts[0]) <= 20) or (
            len(parts) == 2 and parts[1].upper() != "LAST"
        ):
            # Without a valid size the chunk cannot be skipped: its bytes would be read as
            # commands. Close instead (RFC 3030 leaves this open).
            await self.reply_and_close(replies.S501_BDAT_SYNTAX)
            return
        size, last = int(parts[0]), len(parts) == 2
        problem = refusal(self.state, "BDAT", auth_required=self._auth_required())
        envelope = self.envelope
        incoming = envelope.incoming
        if problem is None and incoming is None:
            envelope.bdat = True
            incoming = self._start_incoming(dot_stuffed=False)
        self.parser.start_chunk(size)
        while True:
            if incoming is not None:
                self._reset_data_timeout(incoming)
            else:
                self._reset_timeout(self.data_timeout)
            # What has come so far, not a fixed amount: the block timeout is per read.
            event = await self._next_event()
            if event is None:
                raise ConnectionResetError("client closed the connection during BDAT")
            if problem is None:
                await self._feed(incoming, event.data)
            if event.end:
                break
        self._reset_timeout()
        if problem is not None:
            await self.push(problem)
            return
        if incoming.problem is not None or last:
            # RFC 3030 2: a failed chunk fails the transaction; later chunks get 503.
            reply = await self._finish(incoming)
            try:
                await self.push(reply)
            finally:
                self._set_rset_state()
                self.state = after(self.state, "BDAT LAST")
            return
        self.state = after(self.state, "BDAT")
        await self.push(replies.S250_BDAT_CHUNK.format(size))

    async def _finish(self, incoming: IncomingMessage) -> Reply:
        if incoming.buffer.path is not None:
            # Reading a spooled message back (up to MAILHOST_MAX_MESSAGE_SIZE) off the loop;
            # the worker owns the file now (and removes it), not connection_lost.
            self.envelope.incoming = None
            content = await self.loop.run_in_executor(None, incoming.finish)
        else:
            content = incoming.finish()
        if incoming.problem is not None:
            return incoming.problem
        self.envelope.content = content
        self.envelope.original_content = content
        return await self.handler.handle_DATA(self, self.session, self.envelope)

    # --- Logging -------------------------------------------------------------------------------

    def log_event(self, event: str, envelope: MailEnvelope | None, **fields: str) -> None:
        """One line per event, `<event> key=value ...` (the admin's log, fail2ban's input)."""
        if not logger.isEnabledFor(logging.INFO):
            return
        parts = [self._log_head()]
        if envelope is not None and envelope.mail_from is not None:
            sender = envelope.mail_from
        else:
            sender = self._log_from
        if sender is not None:
            parts.append(f"from={log_value(f'<{sender}>')}")
        parts += [f"{key}={log_value(value)}" for key, value in fields.items() if value]
        logger.info("%s %s", event, " ".join(parts))

    def _log_head(self) -> str:
        """The line's client=, service=, helo= and auth=, made again only when one of them
        changed: every accepted message logs them (checking each value cost more than the
        rest of the line's making)."""
        session = self.session
        key = (self.client_ip, session.host_name, session.auth_user)
        if key != self._log_head_key:
            pairs = (
                ("client", self.client_ip),
                ("service", self.mode.value),
                ("helo", session.host_name or ""),
                ("auth", session.auth_user),
            )
            self._log_head_text = " ".join(f"{k}={log_value(v)}" for k, v in pairs if v)
            self._log_head_key = key
        return self._log_head_text

    def log_reject(self, reply: Reply) -> None:
        fields = {}
        if self._log_to is not None:
            fields["to"] = f"<{self._log_to}>"
        elif self.envelope is not None and self.envelope.rcpt_tos:
            fields["rcpts"] = str(len(self.envelope.rcpt_tos))
        fields["reply"] = str(reply)
        self.log_event("smtp reject", self.envelope, **fields)
        metrics.smtp_rejected(reason=replies.reason(reply), code=reply.code)

    def log_accepted(
        self, envelope: MailEnvelope, queue_id: str, size: int, *, seconds: float, **more: str
    ) -> None:
        """The acceptance line; its queue id is the one delivery's lines carry. `seconds`:
        from the end of the data to this 250 (the storing the client waited for); `more`:
        fields to add (port 25's check results)."""
        metrics.smtp_accepted(protocol=self.mode.value, seconds=seconds)
        self.log_event(
            "smtp accepted",
            envelope,
            queue=queue_id,
            rcpts=str(len(envelope.rcpt_tos)),
            size=str(size),
            tls="yes" if self.tls_active else "no",
            **more,
        )


def _command_methods(cls: type[SMTPSession]) -> dict[str, Callable[..., Awaitable[None]]]:
    return {verb: getattr(cls, f"smtp_{verb}") for verb in parser.VERBS}


SMTPSession.commands = _command_methods(SMTPSession)
