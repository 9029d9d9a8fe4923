"""POP3 listeners: "pop3" (STLS, RFC 2595) and "pop3s" (implicit TLS, RFC 8314).

asyncio only moves bytes here: Connection feeds the sans-IO parser and writes replies;
Session holds the state (states.py) and has one method per command, each awaiting the
mailboxes services in a worker thread. Every reply comes from responses.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from django.conf import settings

from mailhost import fanout, tls
from mailhost.listeners import Listener
from protocols.common import sasl
from protocols.common.connection import TLS_HANDSHAKE_TIMEOUT, ConnectionClosed, LineConnection, db
from protocols.common.listener import Caps, Served, Sessions, listen
from protocols.common.login import (
    Credentials,
    EventLogin,
    FailureCount,
    Refusal,
    plaintext_allowed,
    record,
)
from protocols.pop3 import lease, parser, responses
from protocols.pop3.maildrop import (
    Entry,
    Maildrop,
    MaildropUnavailable,
    multiline_body,
    open_maildrop,
    open_wire_stream,
    read_wire_form,
    streams,
    top_of,
    update,
)
from protocols.pop3.states import State, allowed

if TYPE_CHECKING:
    from mailboxes.models import Mailbox

logger = logging.getLogger(__name__)

TAKEOVER = "pop3-takeover"  # the fanout topic (mailhost/fanout.py)
PORTS = {"pop3": "MAILHOST_POP3_PORT", "pop3s": "MAILHOST_POP3S_PORT"}  # see mailhost/processes.py

EXPIRE_VALUES = {"", "NEVER", "0"}
# Seconds a session ended by a takeover has to see its last bytes out before the connection
# is cut (a phone that lost signal reads nothing, and TLS would wait for its close_notify).
TAKEOVER_CLOSE_GRACE = 5.0
LOGIN_REFUSALS = {
    Refusal.FAILED: responses.ERR_AUTH_FAILED,
    Refusal.IDENTITY: responses.ERR_AUTH_FAILED,  # acting as someone else is not offered
    Refusal.THROTTLED: responses.ERR_AUTH_THROTTLED,
    Refusal.APP_PASSWORD: responses.ERR_AUTH_APP_PASSWORD,
}


class Connection(LineConnection):
    """Bytes in and out of one POP3 client socket; no POP3 logic."""

    need_data = parser.NEED_DATA
    refusal = responses.encode(responses.ERR_TOO_MANY_CONNECTIONS)
    # RFC 2449 8 / RFC 3206 4: the session ended so deletes nothing (RFC 1939 6).
    goodbye = responses.encode(responses.ERR_SHUTDOWN)
    signed_out = responses.encode(responses.ERR_SIGNED_OUT)

    def __init__(self, family: Family, *, implicit_tls: bool) -> None:
        super().__init__(
            family,
            parser.Parser(max_line_length=settings.MAILHOST_POP3_MAX_LINE_LENGTH),
            secure=implicit_tls,
        )
        self.family = family
        self.superseded = False  # a newer session took the maildrop over

    def session(self) -> Awaitable[None]:
        return Session(self).run()

    def idle_timeout(self) -> float:
        return settings.MAILHOST_POP3_IDLE_TIMEOUT

    def ended(self) -> bool:
        return self.superseded

    async def next_event(self, deadline: float) -> parser.Event | None:
        """The next parsed input, or None on end of input, disconnect or idle timeout."""
        try:
            return await super().next_event(deadline)
        except TimeoutError:
            return None

    def supersede(self) -> None:
        """The maildrop is another session's now: a last -ERR [IN-USE] line and the close, at
        once when the session waits for a command (the half-open session of a phone that lost
        signal), else after its reply. What a peer that reads nothing leaves unsent (the rest
        of a RETR, that line) is dropped TAKEOVER_CLOSE_GRACE seconds later."""
        if self.superseded or self.closed or self.transport is None:
            return
        self.superseded = True
        self._data.set()  # next_event() returns None: the session ends
        if self.awaiting_command:
            self.transport.write(responses.encode(responses.ERR_TAKEN_OVER))
            self.close()
        asyncio.get_running_loop().call_later(TAKEOVER_CLOSE_GRACE, self.abort)


class Session(EventLogin):
    """One POP3 session: the state table, the maildrop and one method per command."""

    protocol = "pop3"
    refusals = LOGIN_REFUSALS
    db = staticmethod(db)

    def __init__(self, connection: Connection) -> None:
        self.conn = connection
        self.state = State.AUTHORIZATION
        self.user: str | None = None  # after USER, waiting for PASS
        self.failures = FailureCount(settings.MAILHOST_POP3_MAX_AUTH_FAILURES)
        self.errors = 0
        self.mailbox_id: int | None = None
        self.holder = lease.new_holder()
        self.maildrop: Maildrop | None = None
        self.retrieved: set[int] = set()
        self.heartbeat: asyncio.Task | None = None
        self.handlers: dict[type, Callable[[Any], Awaitable[None]]] = {
            parser.User: self.cmd_user,
            parser.Pass: self.cmd_pass,
            parser.Auth: self.cmd_auth,
            parser.Capa: self.cmd_capa,
            parser.Stls: self.cmd_stls,
            parser.Quit: self.cmd_quit,
            parser.Stat: self.cmd_stat,
            parser.List: self.cmd_list,
            parser.Retr: self.cmd_retr,
            parser.Dele: self.cmd_dele,
            parser.Noop: self.cmd_noop,
            parser.Rset: self.cmd_rset,
            parser.Top: self.cmd_top,
            parser.Uidl: self.cmd_uidl,
        }
        self.done = False

    async def reply(self, line: str) -> None:
        await self.conn.send(responses.encode(line))

    async def run(self) -> None:
        try:
            await self.reply(responses.greeting(settings.MAILHOST_HOSTNAME))
            while not self.done:
                # RFC 1939 3: the autologout timer restarts with every command; when it runs
                # out the connection closes without UPDATE and without a reply.
                deadline = time.monotonic() + settings.MAILHOST_POP3_IDLE_TIMEOUT
                event = await self.conn.next_event(deadline)
                if event is None:
                    break
                await self.dispatch(event)
                if self.conn.stopping and not self.done:
                    await self.reply(responses.ERR_SHUTDOWN)
                    break
                if self.conn.superseded and not self.done:
                    await self.reply(responses.ERR_TAKEN_OVER)
                    break
                if self.conn.revoked and not self.done:
                    await self.reply(responses.ERR_SIGNED_OUT)
                    break
        except (ConnectionClosed, ConnectionError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("POP3 session failed (peer %s)", self.conn.peer_ip)
            try:
                await self.reply(responses.ERR_SERVER)
            except Exception:
                pass
        finally:
            await asyncio.shield(self.end())

    async def end(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.cancel()
        self.conn.family.lease_holders.pop(self.holder, None)
        if self.mailbox_id is not None:
            mailbox_id, self.mailbox_id = self.mailbox_id, None
            try:
                await db(lease.release, mailbox_id, self.holder)
            except Exception:
                logger.exception("releasing the POP3 lease of mailbox %s failed", mailbox_id)
        self.conn.close()

    async def error(self, line: str) -> None:
        """A client mistake: -ERR and go on, until there were too many."""
        self.errors += 1
        if self.errors > settings.MAILHOST_POP3_MAX_BAD_COMMANDS:
            await self.reply(responses.ERR_TOO_MANY_ERRORS)
            self.done = True
            return
        await self.reply(line)

    async def dispatch(self, event: parser.Event) -> None:
        if isinstance(event, parser.SaslResponse):
            await self.sasl_response(event.data)
        elif isinstance(event, parser.LineTooLong):
            await self.error(responses.ERR_LINE_TOO_LONG)
        elif isinstance(event, parser.UnknownCommand):
            await self.error(responses.ERR_UNKNOWN_COMMAND)
        elif isinstance(event, parser.BadArguments):
            await self.error(responses.ERR_BAD_ARGUMENTS)
        elif not allowed(self.state, event):
            await self.error(responses.ERR_WRONG_STATE)
        else:
            if not isinstance(event, parser.Pass):
                self.user = None  # RFC 1939 7: PASS must directly follow USER
            await self.handlers[type(event)](event)

    # --- AUTHORIZATION ----------------------------------------------------------------------

    @property
    def login_allowed(self) -> bool:
        return plaintext_allowed(self.conn.secure)

    async def cmd_capa(self, command: parser.Capa) -> None:
        # RFC 2449 5
        before_login = self.state is State.AUTHORIZATION
        lines = responses.capabilities(
            stls=before_login and not self.conn.secure,
            login=before_login and self.login_allowed,
            expire=settings.MAILHOST_POP3_EXPIRE,
            login_delay=settings.MAILHOST_POP3_LOGIN_DELAY,
        )
        await self.conn.send(responses.multiline(responses.OK_CAPA, lines))

    async def cmd_stls(self, command: parser.Stls) -> None:
        if self.conn.secure:
            await self.reply(responses.ERR_TLS_ACTIVE)
            return
        await self.reply(responses.OK_STLS)
        try:
            await self.conn.start_tls()
        except (OSError, TimeoutError, ConnectionError) as exc:
            logger.info("POP3 STLS handshake with %s failed: %s", self.conn.peer_ip, exc)
            self.done = True
            return
        # RFC 2595 4: the session starts over; nothing learnt in the clear is kept.
        self.user = None

    async def cmd_user(self, command: parser.User) -> None:
        if not self.login_allowed:
            await self.reply(responses.ERR_PLAINTEXT_DISALLOWED)
            return
        self.user = command.name
        await self.reply(responses.OK_USER)

    async def cmd_pass(self, command: parser.Pass) -> None:
        user, self.user = self.user, None
        if not self.login_allowed:
            await self.reply(responses.ERR_PLAINTEXT_DISALLOWED)
            return
        if user is None:
            await self.reply(responses.ERR_PASS_WITHOUT_USER)
            return
        await self.login(Credentials(authcid=user, password=command.password))

    async def cmd_auth(self, command: parser.Auth) -> None:
        if command.mechanism is None:
            # Bare AUTH lists the mechanisms (RFC 1734 practice that clients still use).
            mechanisms = ["PLAIN"] if self.login_allowed else []
            await self.conn.send(responses.multiline(responses.OK_AUTH_MECHANISMS, mechanisms))
            return
        if command.mechanism != "PLAIN":
            await self.reply(responses.ERR_AUTH_MECHANISM)
            return
        if not self.login_allowed:
            await self.reply(responses.ERR_PLAINTEXT_DISALLOWED)
            return
        # RFC 5034 4: without an initial response, an empty challenge asks for it.
        await self.sasl_start(sasl.PLAIN, command.initial_response)

    async def sasl_challenge(self, data: bytes) -> None:
        self.conn.parser.expect_sasl_response()
        await self.reply(responses.SASL_CONTINUE)  # PLAIN's challenge, which is empty

    async def sasl_failed(self, error: sasl.Cancelled | sasl.Malformed) -> None:
        cancelled = isinstance(error, sasl.Cancelled)
        await self.reply(
            responses.ERR_AUTH_CANCELLED if cancelled else responses.ERR_AUTH_MALFORMED
        )

    async def logged_in(self, mailbox: Mailbox) -> None:
        # Named before the await, so that end() gives the lease back even when the session is
        # cancelled while taking it (releasing a lease this holder never got is a no-op).
        self.mailbox_id = mailbox.pk
        attempt = await db(
            lease.acquire, mailbox.pk, self.holder, take_over=settings.MAILHOST_POP3_TAKEOVER
        )
        if attempt.outcome is lease.Outcome.IN_USE:
            self.mailbox_id = None
            await self.reply(responses.ERR_IN_USE)
            return
        if attempt.outcome is lease.Outcome.LOGIN_DELAY:
            self.mailbox_id = None
            await self.reply(responses.ERR_LOGIN_DELAY)
            return
        self.take_maildrop(attempt, mailbox.address)
        try:
            self.maildrop = await db(open_maildrop, mailbox)
        except MaildropUnavailable:
            logger.error("POP3 login of %s: no INBOX", mailbox.address)
            await self.give_back_lease()
            await self.reply(responses.ERR_MAILDROP_UNAVAILABLE)
            return
        except Exception:
            await self.give_back_lease()
            raise
        await record(db, mailbox)
        self.conn.sign_in(mailbox.pk)
        self.state = State.TRANSACTION
        self.heartbeat = asyncio.get_running_loop().create_task(self.keep_lease())
        await self.reply(responses.ok_login(*self.maildrop.totals()))

    async def login_failed(self, reply: str) -> None:
        if self.failures.add():
            await self.reply(responses.ERR_AUTH_FAILED_CLOSING)
            self.done = True
            return
        await self.reply(reply)

    def take_maildrop(self, attempt: lease.Attempt, address: str) -> None:
        """Enter this session in the registry of lease holders; an older session of this
        process (or of another worker process of this server) that held the maildrop ends now
        (one elsewhere, at its next renewal)."""
        holders = self.conn.family.lease_holders
        holders[self.holder] = self.conn
        if attempt.outcome is lease.Outcome.TAKEN_OVER:
            older = holders.pop(attempt.previous, None)
            if older is not None:
                older.supersede()
            else:  # perhaps another worker process's session (MAILHOST_PROCESSES)
                fanout.send(TAKEOVER, {"holder": attempt.previous})
            logger.info(
                "pop3 takeover client=%s user=%s older=%s",
                self.conn.peer_ip,
                address,
                "ended" if older is not None else "elsewhere",
            )

    async def give_back_lease(self) -> None:
        mailbox_id, self.mailbox_id = self.mailbox_id, None
        if mailbox_id is not None:
            await db(lease.release, mailbox_id, self.holder)

    async def keep_lease(self) -> None:
        interval = settings.MAILHOST_POP3_LEASE_SECONDS / 3
        while True:
            await asyncio.sleep(interval)
            mailbox_id = self.mailbox_id
            if mailbox_id is None:
                return
            try:
                kept = await db(lease.renew, mailbox_id, self.holder)
            except Exception:
                logger.exception("renewing the POP3 lease of mailbox %s failed", mailbox_id)
                continue
            if not kept:
                # Another session holds the maildrop now: this one must not touch it.
                logger.warning("POP3 lease of mailbox %s lost; closing the session", mailbox_id)
                self.mailbox_id = None
                self.conn.supersede()
                return

    # --- TRANSACTION ------------------------------------------------------------------------

    async def message(self, number: int) -> Entry | None:
        """The entry for a message number, or None after replying -ERR."""
        entry = self.maildrop.get(number)
        if entry is None:
            await self.reply(responses.ERR_NO_SUCH_MESSAGE)
            return None
        if number in self.maildrop.deleted:
            await self.reply(responses.ERR_MESSAGE_DELETED)
            return None
        return entry

    async def cmd_stat(self, command: parser.Stat) -> None:
        await self.reply(responses.ok_stat(*self.maildrop.totals()))

    async def cmd_list(self, command: parser.List) -> None:
        if command.message is not None:
            entry = await self.message(command.message)
            if entry is not None:
                await self.reply(responses.ok_list_one(command.message, entry.size))
            return
        live = self.maildrop.live()
        first = responses.ok_list(len(live), sum(e.size for _, e in live))
        lines = (responses.list_entry(n, e.size) for n, e in live)
        await self.conn.send(responses.multiline(first, lines))

    async def cmd_uidl(self, command: parser.Uidl) -> None:
        if command.message is not None:
            entry = await self.message(command.message)
            if entry is not None:
                await self.reply(responses.ok_uidl_one(command.message, entry.unique_id))
            return
        lines = (responses.uidl_entry(n, e.unique_id) for n, e in self.maildrop.live())
        await self.conn.send(responses.multiline(responses.OK_UIDL, lines))

    async def wire_form(self, entry: Entry) -> bytes | None:
        try:
            return await db(read_wire_form, entry)
        except FileNotFoundError:
            # Expunged through IMAP during this session, and its bytes are gone.
            await self.reply(responses.ERR_MESSAGE_GONE)
            return None

    async def cmd_retr(self, command: parser.Retr) -> None:
        entry = await self.message(command.message)
        if entry is None:
            return
        if streams(entry):
            if await self.send_streamed(entry, responses.ok_retr(entry.size), None):
                self.retrieved.add(command.message)
            return
        data = await self.wire_form(entry)
        if data is None:
            return
        self.retrieved.add(command.message)
        await self.reply(responses.ok_retr(len(data)))
        await self.conn.send(multiline_body(data))

    async def cmd_top(self, command: parser.Top) -> None:
        entry = await self.message(command.message)
        if entry is None:
            return
        if streams(entry):
            await self.send_streamed(entry, responses.OK_TOP, command.lines)
            return
        data = await self.wire_form(entry)
        if data is None:
            return
        await self.reply(responses.OK_TOP)
        await self.conn.send(multiline_body(top_of(data, command.lines)))

    async def send_streamed(self, entry: Entry, first: str, top: int | None) -> bool:
        """A large message's RETR or TOP reply, read from the store a chunk at a time as the
        client takes it (maildrop.open_wire_stream): never whole in memory."""
        try:
            stream = await db(open_wire_stream, entry, top)
        except FileNotFoundError:
            await self.reply(responses.ERR_MESSAGE_GONE)  # expunged through IMAP meanwhile
            return False
        try:
            await self.reply(first)
            while chunk := await db(next, stream, b""):
                await self.conn.send(chunk)
        except OSError as exc:  # the store failed mid-message: the reply cannot be finished
            logger.error("pop3 stream_failed blob=%s error=%s", entry.blob_name, exc)
            raise ConnectionClosed() from exc
        finally:
            await db(stream.close)
        await self.conn.send(b".\r\n")
        return True

    async def cmd_dele(self, command: parser.Dele) -> None:
        # RFC 1939 5: only marks; the message goes in the UPDATE state.
        if await self.message(command.message) is None:
            return
        self.maildrop.deleted.add(command.message)
        await self.reply(responses.ok_dele(command.message))

    async def cmd_noop(self, command: parser.Noop) -> None:
        await self.reply(responses.OK)

    async def cmd_rset(self, command: parser.Rset) -> None:
        self.maildrop.deleted.clear()
        await self.reply(responses.ok_rset(*self.maildrop.totals()))

    # --- QUIT and UPDATE --------------------------------------------------------------------

    async def cmd_quit(self, command: parser.Quit) -> None:
        self.done = True
        if self.state is State.AUTHORIZATION:
            await self.reply(responses.OK_BYE)
            return
        self.state = State.UPDATE
        if settings.MAILHOST_POP3_EXPIRE == "0":
            # RFC 2449 6.7: EXPIRE 0 means no mail is left on the server once retrieved.
            self.maildrop.deleted.update(self.retrieved)
        try:
            removed = await db(update, self.maildrop, self.retrieved, holder=self.holder)
        except lease.LeaseLost:
            await self.reply(responses.ERR_TAKEN_OVER)
            return
        except Exception:
            logger.exception("POP3 UPDATE of mailbox %s failed", self.mailbox_id)
            await self.reply(responses.ERR_UPDATE_FAILED)
            return
        # Given back before the +OK: a client that logs in again the moment it reads it (or
        # from another front end) must find the maildrop free.
        await self.give_back_lease()
        await self.reply(responses.ok_bye_update(len(removed)))


class Family(Sessions):
    """The POP3 listeners' shared bookkeeping: connection limits, open sessions, and the
    sessions holding a maildrop lease, by holder (a takeover ends the older one at once)."""

    def __init__(self) -> None:
        super().__init__(
            Caps(
                "pop3",
                max_total="MAILHOST_MAX_CONNECTIONS",
                max_per_ip="MAILHOST_MAX_CONNECTIONS_PER_IP",
            ),
            lambda connection: "pop3s" if connection.secure else "pop3",
        )
        self.lease_holders: dict[str, Connection] = {}
        if fanout.active():
            loop = asyncio.get_running_loop()
            fanout.subscribe(
                TAKEOVER, lambda message: loop.call_soon_threadsafe(self.taken_over, message)
            )

    def taken_over(self, message: dict) -> None:
        """A session of another worker process took over a maildrop: end its holder here."""
        older = self.lease_holders.pop(str(message.get("holder")), None)
        if older is not None:
            older.supersede()


async def start() -> list[Listener]:
    if settings.MAILHOST_POP3_EXPIRE not in EXPIRE_VALUES:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            f"MAILHOST_POP3_EXPIRE={settings.MAILHOST_POP3_EXPIRE!r}: use NEVER or 0 (or unset)"
        )
    context = await asyncio.to_thread(tls.server_context)
    family = Family()
    family.hear_sign_outs()
    plain = await listen(
        lambda: Connection(family, implicit_tls=False),
        name="pop3",
        port=settings.MAILHOST_POP3_PORT,
    )
    secure = await listen(
        lambda: Connection(family, implicit_tls=True),
        name="pop3s",
        port=settings.MAILHOST_POP3S_PORT,
        ssl=context,
        ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT,
    )
    return [Listener("pop3", Served(plain, family)), Listener("pop3s", Served(secure, family))]
