"""One SMTP connection: aiosmtpd's SMTP protocol with what aiosmtpd lacks added on top.

aiosmtpd gives the connection, STARTTLS and the handler-hook contract. This subclass adds
PIPELINING (replies batched per RFC 2920 3.1), ENHANCEDSTATUSCODES on every reply (named in
replies.py), CHUNKING/BDAT (RFC 3030), DSN parameters (RFC 3461), SIZE enforced while
reading, AUTH only over TLS, implicit TLS, per-state timeouts (RFC 5321 4.5.3.2), and a DATA
reader that ends a message only at CRLF.CRLF and refuses bare CR/LF (SMTP smuggling).

Policy (is the domain ours, may this client relay, does the sender belong to the user) lives
in the handler's `handle_*` hooks (handler.py); the session parses and moves bytes.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import ssl
from base64 import b64decode, b64encode
from typing import TYPE_CHECKING, Any

from aiosmtpd.proxy_protocol import get_proxy
from aiosmtpd.smtp import SMTP, Envelope, Session, TLSSetupException
from django.conf import settings

from delivery.submission import EnvelopeRecipient
from mailboxes.throttle import log_value
from mailhost import metrics
from protocols.smtp import replies, syntax
from protocols.smtp.databuffer import SPOOL_WRITERS, IncomingMessage
from protocols.smtp.replies import Reply

if TYPE_CHECKING:
    from protocols.smtp.server import ConnectionRegistry

logger = logging.getLogger("mailhost.smtp")

READ_CHUNK = 256 * 1024
MAX_ERRORS = 10  # syntax errors and unknown commands before the connection is dropped
PROXY_HEADER_TIMEOUT = 10  # seconds for the load balancer's PROXY header
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


class MailSession(Session):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.mailbox = None  # the authenticated Mailbox
        self.auth_user = ""
        self.auth_failures = 0


class MailEnvelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
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


class SMTPSession(SMTP):
    # StreamReader limit: large enough that DATA reads big chunks; command lines are checked
    # against MAILHOST_MAX_LINE_LENGTH separately.
    line_length_limit = 64 * 1024

    def __init__(
        self,
        handler: Any,
        *,
        mode: Mode,
        registry: ConnectionRegistry | None = None,
        tls_context: ssl.SSLContext | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(
            handler,
            data_size_limit=settings.MAILHOST_MAX_MESSAGE_SIZE,
            enable_SMTPUTF8=True,
            hostname=settings.MAILHOST_HOSTNAME,
            tls_context=tls_context if mode is not Mode.SUBMISSIONS else None,
            require_starttls=False,
            timeout=settings.MAILHOST_SMTP_COMMAND_TIMEOUT,
            auth_require_tls=True,
            loop=loop,
        )
        self.mode = mode
        self.registry = registry
        self.max_size = settings.MAILHOST_MAX_MESSAGE_SIZE
        self.max_line = settings.MAILHOST_MAX_LINE_LENGTH
        self.plaintext_auth = settings.MAILHOST_ALLOW_PLAINTEXT_AUTH
        self.bare_line_endings = settings.MAILHOST_SMTP_BARE_LINE_ENDINGS
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
        self.client_ip = ""
        self._log_from: str | None = None  # MAIL FROM's address while its hook decides
        self._log_to: str | None = None  # RCPT TO's address while its hook decides
        self._out = bytearray()
        self._draining = False
        self._awaiting_command = False
        self._registered = False
        self.closed = asyncio.Event()

    # --- aiosmtpd plumbing -------------------------------------------------------------------

    def _create_session(self) -> MailSession:
        return MailSession(self.loop)

    def _create_envelope(self) -> MailEnvelope:
        return MailEnvelope()

    def _set_post_data_state(self) -> None:
        if self.envelope is not None:
            self.envelope.discard()
        super()._set_post_data_state()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        starttls = self._original_transport is not None
        super().connection_made(transport)
        if not starttls:
            peer = transport.get_extra_info("peername")
            self.client_ip = peer[0] if peer else ""

    def connection_lost(self, error: Exception | None) -> None:
        if self._registered and self.registry is not None:
            self.registry.remove(self)
            self._registered = False
        envelope = self.envelope
        if envelope is not None and envelope.mail_from is not None and envelope.rcpt_tos:
            self.log_event("smtp aborted", envelope, rcpts=str(len(envelope.rcpt_tos)))
        if envelope is not None:
            envelope.discard()  # an aborted transaction's data goes now, not when GC gets to it
        self.closed.set()
        super().connection_lost(error)

    def _timeout_cb(self) -> None:
        if self.transport is not None:
            incoming = self.envelope.incoming if self.envelope is not None else None
            expired = incoming is not None and self.loop.time() >= incoming.deadline - 0.01
            reply = replies.S421_DATA_TOO_SLOW if expired else replies.S421_TIMEOUT
            self.transport.write(self._pending() + reply.format(self.hostname).line)
        super()._timeout_cb()

    def _reset_data_timeout(self, incoming: IncomingMessage) -> None:
        """RFC 5321 4.5.3.2.5: a timeout per data block, and (ours) one for the whole
        message, so that a trickle of bytes cannot hold a session for ever."""
        remaining = incoming.deadline - self.loop.time()
        self._reset_timeout(max(0.001, min(self.data_timeout, remaining)))

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

    async def push(self, status: Any) -> None:
        if isinstance(status, bytes):
            line = status + b"\r\n"
        elif isinstance(status, Reply):
            line = status.line
            if status.code >= 400 and status.code != 535:  # 535: the login limiter logs it
                self.log_reject(status)
        else:
            line = str(status).encode("utf-8", "surrogateescape") + b"\r\n"
        self._out += line
        if b"\n" in self._reader._buffer:  # noqa: SLF001 - a whole command is waiting
            return
        await self.flush()

    async def flush(self) -> None:
        if self._out and self.transport is not None:
            self._writer.write(self._pending())
            await self._writer.drain()

    async def reply_and_close(self, reply: Reply) -> None:
        await self.push(reply)
        await self.flush()
        if self.transport is not None:
            self.transport.close()

    # --- Draining on shutdown ------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        return self.envelope is not None and self.envelope.mail_from is not None

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

    async def _handle_client(self) -> None:
        if self.proxy_protocol and not await self._read_proxy_header():
            return
        if self.registry is not None:
            refusal = self.registry.add(self)
            if refusal is not None:
                await self.reply_and_close(refusal.format(self.hostname))
                return
            self._registered = True
            metrics.connection_opened(self.mode.value)
        await self.push(replies.S220_GREETING.format(self.hostname))
        errors = 0
        while self.transport is not None:
            if self._draining and not self.in_transaction:
                await self.reply_and_close(replies.S421_SHUTTING_DOWN.format(self.hostname))
                return
            try:
                self._awaiting_command = True
                if self._cut_sooner():
                    self._reset_timeout(self.registry.busy_timeout)
                try:
                    line = await self._reader.readuntil(b"\n")
                except asyncio.LimitOverrunError as exc:
                    await self._discard_line(exc.consumed)
                    line = None
                finally:
                    self._awaiting_command = False
                reply = None
                if line is None or len(line) > self.max_line:
                    reply = replies.S500_LINE_TOO_LONG
                elif not line.endswith(b"\r\n") or b"\r" in line[:-2]:
                    reply = replies.S500_BARE_LINE_ENDING
                if reply is None:
                    command_bytes, _, arg_bytes = line[:-2].partition(b" ")
                    if not command_bytes:
                        reply = replies.S500_BAD_SYNTAX
                    elif not command_bytes.isascii() or not command_bytes.isalpha():
                        reply = replies.S500_UNRECOGNIZED
                if reply is None:
                    command = command_bytes.decode("ascii").upper()
                    method = self._smtp_methods.get(command)
                    if method is None:
                        reply = replies.S500_UNRECOGNIZED
                    elif (
                        self.must_starttls
                        and not self.tls_active
                        and command not in ALLOWED_BEFORE_STARTTLS
                    ):
                        reply = replies.S530_STARTTLS_FIRST
                if reply is not None:
                    errors += 1
                    if errors >= MAX_ERRORS:
                        await self.reply_and_close(
                            replies.S421_TOO_MANY_ERRORS.format(self.hostname)
                        )
                        return
                    await self.push(reply)
                    continue
                arg = arg_bytes.strip(b" ").decode("utf-8", "surrogateescape") or None
                self._reset_timeout()
                await method(arg)
            except asyncio.CancelledError:
                self._writer.close()
                raise
            except (ConnectionError, asyncio.IncompleteReadError):
                # The client went away (mid-DATA included): nothing of it was stored.
                if self.transport is not None:
                    self.transport.close()
                return
            except TLSSetupException:
                logger.info("%s TLS handshake failed", self.client_ip)
                if self.transport is not None:
                    self.transport.close()
                return
            except Exception:
                logger.exception("%s SMTP session error", self.client_ip)
                await self.push(replies.S451_LOCAL_ERROR)

    async def _read_proxy_header(self) -> bool:
        """The load balancer's PROXY header (v1 or v2): the real client's address."""
        self._reset_timeout(PROXY_HEADER_TIMEOUT)
        try:
            proxy = await get_proxy(self._reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            proxy = None
        if not proxy:
            logger.warning("%s no valid PROXY header; connection closed", self.client_ip)
            if self.transport is not None:
                self.transport.close()
            return False
        self.session.proxy_data = proxy
        if proxy.src_addr is not None:  # "PROXY UNKNOWN" (health checks) carries none
            self.client_ip = str(proxy.src_addr)
        self._reset_timeout()
        return True

    async def _discard_line(self, consumed: int) -> None:
        await self._reader.readexactly(consumed)
        while True:
            try:
                await self._reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as exc:
                await self._reader.readexactly(exc.consumed)

    def _check_sequence(self, *, need_mail: bool = False) -> Reply | None:
        if not self.session.host_name:
            return replies.S503_NEED_HELO
        if self.mode.is_submission and not self.session.authenticated:
            return replies.S530_AUTH_REQUIRED
        if need_mail and self.envelope.mail_from is None:
            return replies.S503_NEED_MAIL
        return None

    # --- Commands ------------------------------------------------------------------------------

    async def smtp_HELO(self, arg: str | None) -> None:
        if not arg:
            await self.push(replies.S501_HELO_SYNTAX.format("HELO"))
            return
        self._set_rset_state()
        self.session.extended_smtp = False
        self.session.host_name = arg
        await self.push(replies.S250_HELO.format(self.hostname))

    async def smtp_EHLO(self, arg: str | None) -> None:
        if not arg:
            await self.push(replies.S501_HELO_SYNTAX.format("EHLO"))
            return
        self._set_rset_state()
        self.session.extended_smtp = True
        self.session.host_name = arg
        lines = [
            self.hostname,
            "PIPELINING",
            f"SIZE {self.max_size}",
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "DSN",
            "SMTPUTF8",
            *(["REQUIRETLS"] if self.tls_active else []),  # RFC 8689 4.1: only under TLS
            "CHUNKING",
        ]
        if self.tls_context is not None and not self.tls_active:
            lines.append("STARTTLS")
        if self.auth_offered and (self.tls_active or self.plaintext_auth):
            lines.append("AUTH PLAIN LOGIN")
        for text in lines[:-1]:
            await self.push(f"250-{text}")
        await self.push(f"250 {lines[-1]}")

    async def smtp_NOOP(self, arg: str | None) -> None:
        await self.push(replies.S250_NOOP)

    async def smtp_RSET(self, arg: str | None) -> None:
        if arg:
            await self.push(replies.S501_SYNTAX.format("RSET"))
            return
        self._set_rset_state()
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
        # As aiosmtpd's smtp_STARTTLS: wrap the transport; connection_made() then resets the
        # session and drops any plaintext the client pipelined after STARTTLS (RFC 3207 4.2).
        import asyncio.sslproto as sslproto

        waiter = self.loop.create_future()
        self._tls_protocol = sslproto.SSLProtocol(
            self.loop, self, self.tls_context, waiter, server_side=True
        )
        self._original_transport = self.transport
        self._original_transport.set_protocol(self._tls_protocol)
        self.transport = self._tls_protocol._app_transport
        self._tls_protocol.connection_made(self._original_transport)
        try:
            await waiter
        except asyncio.CancelledError:
            raise
        except Exception as error:
            raise TLSSetupException() from error

    async def smtp_AUTH(self, arg: str | None) -> None:
        if not self.session.host_name or not self.session.extended_smtp:
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
        if self.in_transaction:
            await self.push(replies.S503_AUTH_IN_TRANSACTION)
            return
        args = (arg or "").split()
        if not args or len(args) > 2:
            await self.push(replies.S501_AUTH_SYNTAX)
            return
        args[0] = args[0].upper()
        if args[0] not in {"PLAIN", "LOGIN"}:
            await self.push(replies.S504_AUTH_MECHANISM)
            return
        reply = await self._call_handler_hook("AUTH", args)
        if reply is None:
            return  # the exchange was cancelled; its reply is sent
        if reply.code == 535:
            self.session.auth_failures += 1
            if self.session.auth_failures >= MAX_AUTH_FAILURES:
                await self.push(reply)
                await self.reply_and_close(replies.S421_TOO_MANY_ERRORS.format(self.hostname))
                return
        await self.push(reply)

    async def challenge_auth(
        self, challenge: str | bytes, encode_to_b64: bool = True, log_client_response: bool = False
    ) -> bytes | None:
        """Send a 334 challenge and return the decoded answer, or None (reply already sent)."""
        data = challenge.encode() if isinstance(challenge, str) else challenge
        text = b64encode(data).decode("ascii") if encode_to_b64 else data.decode("ascii")
        await self.push(replies.S334_CHALLENGE.format(text))
        await self.flush()
        line = await self._reader.readline()
        answer = line.strip()
        if answer == b"*":  # RFC 4954 4: the client cancels
            await self.push(replies.S501_AUTH_CANCELLED)
            return None
        try:
            return b64decode(answer, validate=True)
        except ValueError:
            await self.push(replies.S501_AUTH_BASE64)
            return None

    async def smtp_MAIL(self, arg: str | None) -> None:
        problem = self._check_sequence()
        if problem is None and self.envelope.mail_from is not None:
            problem = replies.S503_NESTED_MAIL
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
            await self.push(await self._call_handler_hook("MAIL", address, params))
        finally:
            self._log_from = None

    async def smtp_RCPT(self, arg: str | None) -> None:
        problem = self._check_sequence(need_mail=True)
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
            await self.push(await self._call_handler_hook("RCPT", address, params))
        finally:
            self._log_to = None

    def _check_data_start(self) -> Reply | None:
        problem = self._check_sequence(need_mail=True)
        if problem is not None:
            return problem
        if not self.envelope.rcpt_tos:
            # RFC 5321 3.3 / RFC 2920 3.1: MAIL was accepted but no recipient was.
            return replies.S554_NO_VALID_RECIPIENTS
        return None

    async def smtp_DATA(self, arg: str | None) -> None:
        problem = self._check_data_start()
        if problem is None and self.envelope.bdat:
            problem = replies.S503_DATA_AFTER_BDAT
        if problem is None and arg:
            problem = replies.S501_SYNTAX.format("DATA")
        if problem is not None:
            await self.push(problem)
            return
        await self.push(replies.S354_START_DATA)
        await self.flush()
        incoming = self._start_incoming(dot_stuffed=True)
        await self._read_data(incoming)
        reply = await self._finish(incoming)
        try:
            await self.push(reply)  # first: its log line names the transaction
        finally:
            self._set_post_data_state()

    def _start_incoming(self, *, dot_stuffed: bool) -> IncomingMessage:
        incoming = IncomingMessage(
            dot_stuffed=dot_stuffed,
            max_size=self.max_size,
            deadline=self.loop.time() + self.data_total_timeout,
        )
        self.envelope.incoming = incoming
        return incoming

    async def _read_data(self, incoming: IncomingMessage) -> None:
        """Read up to CRLF.CRLF (the only end of DATA, RFC 5321 4.1.1.4), in large chunks,
        handing each on as it comes; only a tail that may hold the terminator's start waits."""
        reader = self._reader
        pending = bytearray(b"\r\n")  # so that an empty message (".\r\n" at once) matches too
        skip = 2  # octets at the start of `pending` that are not message data
        while True:
            self._reset_data_timeout(incoming)
            chunk = await reader.read(READ_CHUNK)
            if not chunk:
                raise ConnectionResetError("client closed the connection during DATA")
            pending += chunk
            end = pending.find(b"\r\n.\r\n")
            if end >= 0:
                rest = pending[end + 5 :]
                if rest:
                    # Pipelined commands after the message go back for the command loop.
                    reader._buffer[0:0] = rest  # noqa: SLF001
                self._reset_timeout()
                await self._feed(incoming, bytes(pending[skip : end + 2]))
                return
            cut = len(pending) - 4
            if cut > skip:
                await self._feed(incoming, bytes(pending[skip:cut]))
                del pending[:cut]
                skip = 0

    async def _feed(self, incoming: IncomingMessage, data: bytes) -> None:
        """Hand a piece on; past the spool threshold in the spool thread, awaited before the
        next read (so no more than READ_CHUNK waits per connection) and never on the loop."""
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
        problem = self._check_data_start()
        envelope = self.envelope
        incoming = envelope.incoming
        if problem is None and incoming is None:
            envelope.bdat = True
            incoming = self._start_incoming(dot_stuffed=False)
        remaining = size
        while remaining:
            if incoming is not None:
                self._reset_data_timeout(incoming)
            else:
                self._reset_timeout(self.data_timeout)
            # What has come so far, not a fixed amount: the block timeout is per read.
            chunk = await self._reader.read(min(remaining, READ_CHUNK))
            if not chunk:
                raise ConnectionResetError("client closed the connection during BDAT")
            remaining -= len(chunk)
            if problem is None:
                await self._feed(incoming, chunk)
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
                self._set_post_data_state()
            return
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
        return await self._call_handler_hook("DATA")

    # --- Logging -------------------------------------------------------------------------------

    def log_event(self, event: str, envelope: MailEnvelope | None, **fields: str) -> None:
        """One line per event, `<event> key=value ...` (the admin's log, fail2ban's input)."""
        session = self.session
        pairs = {
            "client": self.client_ip,
            "service": self.mode.value,
            "helo": session.host_name if session and session.host_name else "",
            "auth": session.auth_user if session else "",
        }
        sender = self._log_from if envelope is None or envelope.mail_from is None else None
        if envelope is not None and envelope.mail_from is not None:
            sender = envelope.mail_from
        if sender is not None:
            pairs["from"] = f"<{sender}>"
        pairs.update(fields)
        text = " ".join(f"{key}={log_value(value)}" for key, value in pairs.items() if value)
        logger.info("%s %s", event, text)

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
