"""One IMAP connection: reads bytes into the parser, dispatches commands, writes replies.

A handler (protocols/imap/commands/) sends its untagged responses as values
(protocols/imap/untagged.py, written by its `wire`) and returns its tagged reply, a Reply or a
Done that also says what the connection does next (close, compress, TLS): the session carries
that out. The selected state is protocols/imap/selected.py's Selected, what CAPABILITY lists
protocols/imap/capability.py's.

The session keeps the selected folder's sequence-number-to-UID list in memory, read on first
need rather than at SELECT (which answers from the folder row's counters): until then the
session holds only the view's bounds (protocols/imap/uidcache.py). Changes made elsewhere
arrive as change events (mailboxes.events, handed over with call_soon_threadsafe)
and only mark the session dirty; the next command (or IDLE at once) asks the database what
changed since the MODSEQ it last reported and sends EXISTS / EXPUNGE / FETCH FLAGS.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import ssl
import sys
import zlib
from array import array
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from django.conf import settings

from mailboxes import selectors, services
from mailboxes.exceptions import (
    AlreadyExists,
    FolderError,
    KeywordLimit,
    NoPermission,
    NotFound,
    QuotaExceeded,
)
from mailboxes.models import Folder, Mailbox
from mailboxes.storage import out_of_space
from protocols.imap import capability, states, uidcache
from protocols.imap import parser as p
from protocols.imap import responses as r
from protocols.imap import untagged as u
from protocols.imap.commands import HANDLERS, UPDATES
from protocols.imap.errors import CommandError, ConnectionDone
from protocols.imap.flags import flags_of
from protocols.imap.selected import NONE, Selected, recent_in_map, resolve_in
from protocols.imap.states import State
from protocols.imap.worker import db

if TYPE_CHECKING:
    from protocols.imap.commands.select import SelectView

logger = logging.getLogger(__name__)

# RFC 9585 INPROGRESS: a command still running after this many seconds says so, and again
# each time as long again has passed.
PROGRESS_INTERVAL = 1.0
INFLATE_CHUNK = 256 * 1024  # octets inflated per read at most (COMPRESS=DEFLATE)
# Octets of a command's untagged responses held back to go out with its tagged reply (one
# write: over TLS one record and one send, not one per response); more are written at once.
HOLD_LIMIT = 64 * 1024
NO_CONTEXT = contextvars.Context()  # the wait timers' callback, wake(), reads none


class SessionReader(asyncio.StreamReader):
    """The connection's StreamReader, that also resolves the future its session waits on
    (`waiter`) when bytes, the end of input or an error arrive: an idle session waits on that
    one future, resolved by the client's bytes, a change event or its timer, instead of
    keeping a read task (a Task, two coroutines, a future) and a wake-up task beside it."""

    waiter: asyncio.Future | None = None

    def ready(self) -> bool:
        """A read returns without waiting: bytes are buffered, or the input ended or failed."""
        return bool(self._buffer) or self._eof or self._exception is not None

    def feed_data(self, data: bytes) -> None:
        super().feed_data(data)
        wake(self.waiter)

    def feed_eof(self) -> None:
        super().feed_eof()
        wake(self.waiter)

    def set_exception(self, exc: BaseException) -> None:
        super().set_exception(exc)
        wake(self.waiter)


class SessionProtocol(asyncio.StreamReaderProtocol):
    """StreamReaderProtocol whose writers waiting for drain() are kept in a list: the deque
    asyncio gives each connection costs 760 bytes, a list while empty 56 (a connection has one
    writer, that waits only while the client reads slowly). Its close future is made when
    first needed (the connection's end, or the session's wait_closed), and its writer's
    completed future is one shared by every writer (`done`: asyncio 3.11's StreamWriter makes
    one, sets it and never reads it): 144 bytes each that an idle connection keeps no more
    (issue 22)."""

    def __init__(self, *args, done: asyncio.Future, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._drain_waiters = []  # appended, removed and walked only: a list serves
        self._closed = None  # the future super() made goes now; see _get_close_waiter
        self._done = done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._stream_writer is not None:
            self._stream_writer._complete_fut = self._done

    def _get_close_waiter(self, stream: asyncio.StreamWriter) -> asyncio.Future:
        if self._closed is None:
            self._closed = self._loop.create_future()
        return self._closed

    def connection_lost(self, exc: Exception | None) -> None:
        self._get_close_waiter(None)  # for super() to resolve, and a later wait_closed
        super().connection_lost(exc)

    def __del__(self) -> None:
        if self._closed is not None:
            super().__del__()


def wake(waiter: asyncio.Future | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class Alarms:
    """Wake-ups for many waiters with one loop timer per GRAIN of loop time rather than one per
    waiter (a timer handle, uvloop's timer and libuv's: about 500 bytes each, issue 22). A
    waiter is woken at its time or up to GRAIN after it, never before (the loop's clock
    resolution aside)."""

    GRAIN = 0.1  # seconds

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.slots: dict[int, set[asyncio.Future]] = {}

    def add(self, waiter: asyncio.Future, delay: float) -> set[asyncio.Future]:
        """Wake `waiter` in `delay` seconds; the set returned is where it waits (discard it
        from there when it is woken otherwise)."""
        slot = math.ceil((self.loop.time() + max(delay, 0.0)) / self.GRAIN)
        waiters = self.slots.get(slot)
        if waiters is None:
            waiters = self.slots[slot] = set()
            self.loop.call_at(slot * self.GRAIN, self._ring, slot, context=NO_CONTEXT)
        waiters.add(waiter)
        return waiters

    def _ring(self, slot: int) -> None:
        for waiter in self.slots.pop(slot, ()):
            wake(waiter)


class Session:
    # Thousands are open at once, most of them idle (issue 22): no __dict__ each.
    __slots__ = (
        "server",
        "reader",
        "writer",
        "tls",
        "starttls_allowed",
        "parser",
        "_state",
        "mailbox",
        "selected",
        "enabled",
        "condstore",
        "announce_modseq",
        "commands_before_auth",
        "auth_failures",
        "woken",
        "waiter",
        "notify_state",
        "awaiting_command",
        "shutting_down",
        "bye",
        "said_bye",
        "client_ip",
        "deflate",
        "inflate",
        "command_started",
        "last_progress",
        "held",
        "held_size",
        "__weakref__",
    )

    def __init__(
        self,
        server,
        reader: SessionReader,
        writer: asyncio.StreamWriter,
        *,
        tls: bool,
        starttls_allowed: bool,
    ):
        self.server = server
        self.reader = reader
        self.writer = writer
        self.tls = tls
        self.starttls_allowed = starttls_allowed
        self.parser = p.Parser()
        self.state = State.NOT_AUTHENTICATED  # the setter also sets the parser's limits
        self.mailbox: Mailbox | None = None
        self.selected: Selected | None = None
        self.enabled: frozenset[str] = NONE  # replaced, not changed
        self.condstore = False  # CONDSTORE enabled (RFC 7162 3.1: by ENABLE or first use)
        self.announce_modseq = False
        self.commands_before_auth = 0
        self.auth_failures = 0
        # A change event came (notify, notify_event) since the session last looked; `waiter`
        # is the future an idle session waits on (wait_input).
        self.woken = False
        self.waiter: asyncio.Future | None = None
        self.notify_state = None  # NOTIFY SET (protocols/imap/notify.py)
        # Shutdown (SIGTERM): a session waiting for a command says BYE at once, one running a
        # command after its reply.
        self.awaiting_command = False
        self.shutting_down = False
        self.bye = r.BYE_SHUTDOWN
        self.said_bye = False
        peer = writer.get_extra_info("peername")
        self.client_ip = peer[0] if peer else None
        # COMPRESS=DEFLATE (RFC 4978): raw deflate both ways once the OK has gone out
        self.deflate = None
        self.inflate = None
        self.command_started = 0.0  # loop time the running command began (INPROGRESS)
        self.last_progress = 0.0
        # While a command runs, its untagged responses wait here for the next write (its
        # tagged reply, a continuation request, HOLD_LIMIT reached); None: written at once.
        self.held: list[bytes] | None = None
        self.held_size = 0

    @property
    def state(self) -> State:
        return self._state

    @state.setter
    def state(self, value: State) -> None:
        self._state = value
        # Before login only LOGIN and AUTHENTICATE take literals, and small ones: a
        # stranger may not make us hold a message-sized literal (issue 14).
        limit = settings.MAILHOST_IMAP_MAX_LITERAL_SIZE
        if value == State.NOT_AUTHENTICATED:
            limit = min(limit, settings.MAILHOST_IMAP_MAX_LITERAL_BEFORE_AUTH)
        self.parser.max_literal = limit

    @property
    def utf8(self) -> bool:
        return bool(self.enabled & {"UTF8=ACCEPT", "IMAP4REV2"})

    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    @property
    def uidonly(self) -> bool:
        """RFC 9586: messages are named by UID only, in commands and in responses."""
        return "UIDONLY" in self.enabled

    @property
    def vanished(self) -> bool:
        """Expunges are told as VANISHED: RFC 7162 3.2.10 once QRESYNC is enabled, RFC 9586
        3.4 once UIDONLY is."""
        return self.qresync or self.uidonly

    def fetch_form(self, uid: int, seq: int) -> tuple[int, str]:
        """The number and the verb of a FETCH response: `* seq FETCH`, or with UIDONLY
        `* uid UIDFETCH` (RFC 9586 3.3)."""
        return (uid, "UIDFETCH") if self.uidonly else (seq, "FETCH")

    # --- I/O ---------------------------------------------------------------------------

    async def send(self, data: bytes) -> None:
        """Write `data`, after the untagged responses held (hold)."""
        if self.held:
            self.held.append(data)
            data = b"".join(self.held)
            self.held.clear()
            self.held_size = 0
        self.writer.write(self.compressed(data))
        await self.writer.drain()

    async def respond(self, *responses) -> None:
        """Send untagged responses (protocols/imap/untagged.py's values, or Reply): held
        while the session holds them (a command runs), else written at once."""
        if not responses:
            return
        data = u.wire(responses)
        held = self.held
        if held is None:
            await self.send(data)
            return
        held.append(data)
        self.held_size += len(data)
        if self.held_size >= HOLD_LIMIT:
            await self.send(b"")

    def hold(self) -> None:
        """A command begins: its untagged responses wait for its next write (the bytes on
        the wire are the same, in fewer writes)."""
        self.held = []

    async def release(self) -> None:
        """Write what is held, and write untagged responses at once from here on (the
        command has its reply, or waits: IDLE)."""
        if self.held:
            await self.send(b"")
        self.held = None

    def write_held(self) -> None:
        """The connection ends: what is held goes out as it closes (a BYE among it)."""
        held, self.held = self.held, None
        if held and not self.writer.transport.is_closing():
            self.writer.write(self.compressed(b"".join(held)))

    def compressed(self, data: bytes) -> bytes:
        if self.deflate is None:
            return data
        # RFC 4978 4: each response flushed, so the client can read it at once
        return self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)

    def start_compression(self) -> None:
        """COMPRESS DEFLATE answered OK: from here on both directions are deflated. Octets
        the client sent after the command (pipelined) were compressed already."""
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)
        pending = self.parser.take_buffer()
        if pending:
            self.parser.feed(self.inflate.decompress(pending, INFLATE_CHUNK))

    async def read_some(self, timeout: float | None = None) -> bytes:
        if self.inflate is not None and self.inflate.unconsumed_tail:
            # At most INFLATE_CHUNK octets out per read: a small deflated input may inflate
            # a thousandfold, and the parser's limits apply to what comes out; the rest of
            # the input waits here, not in the socket.
            out = self.inflate.decompress(self.inflate.unconsumed_tail, INFLATE_CHUNK)
            if out:
                return out
        if not await self.wait_input(timeout):
            await self.respond(r.BYE_TIMEOUT)
            raise ConnectionDone()
        data = await self.read_ready()
        if self.inflate is None:
            return data
        out = self.inflate.decompress(data, INFLATE_CHUNK)
        if not out and not self.inflate.unconsumed_tail:
            return await self.read_some(timeout)  # a deflate block not complete yet
        return out

    async def wait_input(self, timeout: float | None, *, events: bool = False) -> bool:
        """Wait until the client's bytes (or the end of its input) are there, or with
        `events` a change event came (`woken`), at most `timeout` seconds: False when the time
        ran out first. One future, resolved by the reader, notify() or the timer."""
        armed = self.arm_wait(timeout, events=events)
        if armed is not None:
            try:
                await armed[0]
            finally:
                self.disarm_wait(armed)
        return self.reader.ready() or (events and self.woken)

    def arm_wait(
        self, timeout: float | None, *, events: bool, coarse: bool = False
    ) -> tuple[asyncio.Future, asyncio.TimerHandle | set | None] | None:
        """wait_input's future and its timer, or None when there is nothing to wait for;
        disarm_wait after the wait. Apart so that IDLE awaits the future in its own frame:
        one coroutine less for each of thousands of idle sessions (issue 22). `coarse`: the
        timer is a place in the server's Alarms (up to Alarms.GRAIN late), not one of its own."""
        reader = self.reader
        if reader.ready() or (events and self.woken):
            return None
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        reader.waiter = waiter
        if events:
            self.waiter = waiter
        if timeout is None:
            timer = None
        elif coarse:
            timer = self.server.alarms.add(waiter, timeout)
        else:
            # wake() reads no context variable: no copy of the context per timer (64 bytes)
            timer = loop.call_later(timeout, wake, waiter, context=NO_CONTEXT)
        return waiter, timer

    def disarm_wait(self, armed: tuple[asyncio.Future, asyncio.TimerHandle | set | None]) -> None:
        self.reader.waiter = self.waiter = None
        waiter, timer = armed
        if isinstance(timer, set):
            timer.discard(waiter)
        elif timer is not None:
            timer.cancel()

    async def read_ready(self) -> bytes:
        """The bytes wait_input found (they are buffered: no wait); ConnectionDone at the end
        of the input."""
        data = await self.reader.read(65536)
        if not data:
            raise ConnectionDone()
        return data

    @property
    def timeout(self) -> float:
        if self.state == State.NOT_AUTHENTICATED:
            return settings.MAILHOST_IMAP_PREAUTH_TIMEOUT
        return settings.MAILHOST_IMAP_IDLE_TIMEOUT

    async def read_line(self) -> bytes:
        """A raw line (AUTHENTICATE responses, IDLE's DONE)."""
        while True:
            line = self.parser.next_line()
            if line is not None:
                return line
            self.parser.feed(await self.read_some(self.timeout))

    async def read_or_notify(self, timeout: float) -> bytes:
        """read_some, that between commands also sends what NOTIFY's events changed in
        folders not selected as they come (RFC 5465 3: at any time; the selected folder's
        EXPUNGE waits for a command, RFC 9051 7.5.1)."""
        if self.notify_state is None or self.parser.in_command:
            return await self.read_some(timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self.woken = False  # before looking, so an event from here on wakes again
            if self.notify_state is not None and self.notify_state.pending:
                await self.notify_flush()
            if not await self.wait_input(max(0.0, deadline - loop.time()), events=True):
                await self.respond(r.BYE_TIMEOUT)
                raise ConnectionDone()
            if self.reader.ready():
                return await self.read_ready()

    async def run(self) -> None:
        try:
            await self.respond(
                r.Reply(
                    "OK",
                    f"{settings.MAILHOST_HOSTNAME} Mailhost IMAP ready",
                    "CAPABILITY " + " ".join(capability.of(self)),
                )
            )
            loop = asyncio.get_running_loop()
            command_deadline = None
            while self.state != State.LOGOUT:
                item = self.parser.next_command()
                if item is p.NEED_DATA:
                    if self.shutting_down and not self.parser.in_command:
                        await self.bye_for_shutdown()
                    # The timeout bounds a whole command, not each read: a client that
                    # trickles a byte at a time (slowloris) is cut off all the same.
                    timeout = self.timeout
                    if self.parser.in_command:
                        if command_deadline is None:
                            command_deadline = loop.time() + timeout
                        timeout = max(0.0, command_deadline - loop.time())
                    else:
                        command_deadline = None
                    self.awaiting_command = not self.parser.in_command
                    try:
                        self.parser.feed(await self.read_or_notify(timeout))
                    finally:
                        self.awaiting_command = False
                    continue
                command_deadline = None
                if item is p.NEED_CONTINUATION:
                    await self.send(r.CONTINUE_LITERAL)
                elif isinstance(item, p.ParseError):
                    await self.parse_error(item)
                else:
                    waiting = await self.dispatch(item)
                    while waiting is not None:  # IDLE
                        # Its wait awaited in this frame: an idle session keeps no coroutine
                        # of the command's (issue 22); then its woke() under the command's
                        # error mapping, with the next wait or None once it has its reply.
                        armed = self.arm_waiting(waiting)
                        try:
                            if armed is not None:
                                await armed[0]
                        finally:
                            self.disarm_waiting(armed)
                        waiting = await self.complete(waiting.command, waiting.woke(self, waiting))
                    if self.shutting_down and self.state != State.LOGOUT:  # finished in flight
                        await self.bye_for_shutdown()
        except (ConnectionDone, ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        except Exception:
            logger.exception("IMAP session failed")
        finally:
            try:
                await self.close()
            finally:
                self.server.session_ended(self)

    async def progress(self, tag: str, count: int | None = None, total: int | None = None) -> None:
        """`* OK [INPROGRESS ("tag" count total)]` when the command has run PROGRESS_INTERVAL
        since it began or since the last one (RFC 9585 3); nothing otherwise."""
        now = asyncio.get_running_loop().time()
        if now - max(self.command_started, self.last_progress) < PROGRESS_INTERVAL:
            return
        self.last_progress = now
        numbers = " ".join("NIL" if n is None else str(n) for n in (count, total))
        quoted = r.quoted_or_literal(tag).decode("ascii")
        # written now, not held: the client is to see it while the command runs
        await self.send(
            r.Reply("OK", "Still working", f"INPROGRESS ({quoted} {numbers})").untagged()
        )

    async def db_progress(self, tag: str, fn, *args, **kwargs):
        """db(fn, ...) with INPROGRESS responses while it runs (one worker hop that may be
        long: a SEARCH, SORT or THREAD of a large folder)."""
        future = db(fn, *args, **kwargs)
        while True:
            done, _ = await asyncio.wait({future}, timeout=PROGRESS_INTERVAL)
            if done:
                return future.result()
            await self.progress(tag)

    def enable(self, name: str) -> bool:
        """ENABLE one extension (RFC 5161); False when it was enabled already. QRESYNC brings
        CONDSTORE (RFC 7162 3.2.3); UTF8=ACCEPT and IMAP4rev2 let the parser take UTF-8
        strings (RFC 6855 3)."""
        if name in self.enabled:
            return False
        self.enabled |= {name, "CONDSTORE"} if name == "QRESYNC" else {name}
        if name in ("CONDSTORE", "QRESYNC"):
            self.enable_condstore()
        self.parser.utf8 = self.utf8
        return True

    def log_in(self, mailbox: Mailbox) -> bool:
        """The authenticated state as `mailbox`; False when the mailbox holds as many
        connections as MAILHOST_IMAP_MAX_CONNECTIONS_PER_USER allows."""
        if not self.server.claim_user(self, mailbox.id):
            return False
        self.mailbox = self.server.mailboxes.setdefault(mailbox.id, mailbox)
        self.state = State.AUTHENTICATED
        return True

    def arm_waiting(
        self, waiting: u.Waiting
    ) -> tuple[asyncio.Future, asyncio.TimerHandle | set | None] | None:
        """A waiting command's wait (IDLE, RFC 2177), for run() to await: the client's bytes,
        a change event, at most `waiting.seconds` and never past its deadline (its timer in
        the server's Alarms: thousands of sessions in IDLE, a loop timer for each GRAIN)."""
        self.awaiting_command = True  # a shutdown may say BYE now
        remaining = waiting.deadline - asyncio.get_running_loop().time()
        return self.arm_wait(min(remaining, waiting.seconds), events=True, coarse=True)

    def disarm_waiting(self, armed: tuple[asyncio.Future, asyncio.TimerHandle | set | None] | None):
        self.awaiting_command = False
        if armed is not None:
            self.disarm_wait(armed)

    def unauthenticate(self) -> None:
        """Back to the state of a new connection, TLS and compression kept (RFC 8437 3)."""
        if self.selected is not None:
            self.unselect()
        self.server.release_user(self)
        self.mailbox = None
        self.enabled = NONE
        self.condstore = self.announce_modseq = False
        self.parser.utf8 = False
        self.commands_before_auth = 0
        self.state = State.NOT_AUTHENTICATED

    def shutdown(self, bye: r.Reply = r.BYE_SHUTDOWN) -> None:
        """The server stops (SIGTERM), or the account's password changed (BYE_SIGNED_OUT):
        RFC 9051 7.1.5 BYE, now when the session waits for a command or is in IDLE, else
        after the reply to the command it runs."""
        if self.shutting_down:
            return
        self.shutting_down = True
        self.bye = bye
        if self.awaiting_command and not self.said_bye:
            self.said_bye = True
            # A connection the client closed, its session not yet ended: no BYE to write
            # (uvloop's transports raise on a write after their close, asyncio's drop it).
            if not self.writer.transport.is_closing():
                self.writer.write(self.compressed(bye.untagged()))
            self.writer.close()  # after the BYE is written; the pending read then ends

    async def bye_for_shutdown(self) -> None:
        if not self.said_bye:
            self.said_bye = True
            await self.respond(self.bye)
        raise ConnectionDone()

    async def close(self) -> None:
        self.server.unwatch(self)
        self.server.unnotify(self)
        self.server.release_user(self)
        try:
            self.write_held()
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 5)
        except (Exception, asyncio.CancelledError):
            pass

    async def parse_error(self, error: p.ParseError) -> None:
        if error.status == "NO":
            reply = r.Reply("NO", error.text, error.code)
        else:
            reply = r.Reply("BAD", error.text, error.code)
        if error.fatal:
            await self.respond(r.BYE_LITERAL_TOO_BIG)
            await self.send(reply.tagged(error.tag))
            raise ConnectionDone()
        await self.count_unauthenticated()
        await self.send(reply.tagged(error.tag) if error.tag != "*" else reply.untagged())

    async def count_unauthenticated(self) -> None:
        if self.state == State.NOT_AUTHENTICATED:
            self.commands_before_auth += 1
            if self.commands_before_auth > settings.MAILHOST_IMAP_MAX_COMMANDS_BEFORE_AUTH:
                await self.respond(r.BYE_TOO_MANY_COMMANDS)
                raise ConnectionDone()

    # --- dispatch ----------------------------------------------------------------------

    async def dispatch(self, command: p.Command) -> u.Waiting | None:
        await self.count_unauthenticated()
        if not states.allowed(self.state, command.name):
            if self.state == State.AUTHENTICATED and command.name in states.SELECTED_ONLY:
                await self.send(r.BAD_NOT_SELECTED.tagged(command.tag))
            else:
                await self.send(r.BAD_STATE.tagged(command.tag))
            return None
        if self.uidonly and states.uid_required(command):
            await self.send(r.BAD_UID_REQUIRED.tagged(command.tag))
            return None
        handler = HANDLERS[command.name]
        self.command_started = asyncio.get_running_loop().time()
        self.last_progress = 0.0
        self.hold()
        return await self.complete(command, handler(self, command))

    async def complete(
        self, command: p.Command, outcome: Awaitable[r.Reply | u.Done | u.Waiting]
    ) -> u.Waiting | None:
        """Await a handler's outcome (or a waiting command's next) and finish the command
        with it, a failure mapped to its reply; a Waiting is returned for run() to wait."""
        try:
            # A handler sends its untagged responses and returns its tagged reply, a Reply
            # or a Done (what goes with it, and what the connection does next): finish sends
            # it after any updates the RFC allows now. IDLE returns a Waiting instead.
            result = await outcome
            if isinstance(result, u.Waiting):
                await self.release()  # what it said before it waits goes out now
                return result
            await self.finish(command, result)
        except CommandError as exc:
            await self.finish(command, exc.reply)
        except NotFound:
            await self.finish(command, r.NO_NONEXISTENT)
        except AlreadyExists:
            await self.finish(command, r.NO_ALREADY_EXISTS)
        except NoPermission:
            await self.finish(command, r.NO_PERMISSION)
        except QuotaExceeded:
            await self.finish(command, r.NO_OVER_QUOTA)
        except KeywordLimit as exc:
            await self.finish(command, r.NO_LIMIT.with_text(str(exc)))
        except FolderError as exc:
            await self.finish(command, r.NO_CANNOT.with_text(str(exc) or r.NO_CANNOT.text))
        except (ConnectionDone, ConnectionError, ssl.SSLError):
            raise
        except Exception as exc:
            logger.exception("IMAP %s failed", command.name)
            if out_of_space(exc):  # as Dovecot answers: the client may free space and retry
                await self.send(r.NO_NO_SPACE.tagged(command.tag))
            else:
                await self.send(r.NO_SERVERBUG.tagged(command.tag))
        await self.release()
        return None

    async def finish(self, command: p.Command, outcome: r.Reply | u.Done) -> None:
        """Send pending updates the RFC allows now, then the tagged reply; then do what the
        handler's Done asks for."""
        done = outcome if isinstance(outcome, u.Done) else u.Done(outcome)
        if done.updates:
            await self.sync_updates(allow_expunge=expunge_allowed(command))
            if self.announce_modseq:
                self.announce_modseq = False
                if self.selected is not None:
                    highest = await db(selectors.folder_highestmodseq, self.selected.folder_id)
                    await self.respond(r.Reply("OK", "Highest", f"HIGHESTMODSEQ {highest}"))
        await self.send(u.wire(done.before) + done.reply.tagged(command.tag) + u.wire(done.after))
        if done.then is u.After.CLOSE:
            self.state = State.LOGOUT
            raise ConnectionDone()
        if done.then is u.After.COMPRESS:
            self.start_compression()
        elif done.then is u.After.TLS:
            await self.start_tls()

    async def start_tls(self) -> None:
        """STARTTLS answered OK: the handshake, then a new parser (RFC 9051 6.2.1)."""
        # Anything pipelined after STARTTLS was sent in clear text: drop it (CVE-2011-0411
        # class).
        self.parser.take_buffer()
        from mailhost import tls

        await self.writer.start_tls(tls.server_context())
        self.tls = True
        self.parser = p.Parser()

    def enable_condstore(self) -> None:
        """A CONDSTORE-enabling command ran (RFC 7162 3.1): from now on FETCH responses carry
        MODSEQ, and a selected mailbox's HIGHESTMODSEQ is announced once."""
        if not self.condstore:
            self.condstore = True
            self.announce_modseq = self.selected is not None

    # --- the selected folder ---------------------------------------------------------

    def notify(self, modseq: int = 0) -> None:
        """Called on the loop when a change event names the selected folder (with the
        change's MODSEQ; 0 when it has none, as a folder's deletion)."""
        sel = self.selected
        if sel is not None:
            sel.dirty = True
            sel.event_modseq = max(sel.event_modseq, modseq or sys.maxsize)
        self.woken = True
        wake(self.waiter)

    async def select(self, view: SelectView) -> Selected:
        """Select from a select_view read (the folder row, its counters and bounds): no
        per-message read."""
        folder_id = view.folder.id
        keywords = self.server.keywords.get(folder_id)
        if keywords is None:
            keywords = set(await db(selectors.folder_keywords, folder_id))
            keywords = self.server.keywords.setdefault(folder_id, keywords)
        selected = Selected.of_view(view, keywords)
        self.server.unwatch(self)
        self.selected = selected
        self.state = State.SELECTED
        self.server.watch(self, folder_id, view.folder.mailbox_id)
        return selected

    async def sequence_map(self) -> array:
        """The selected folder's seq -> UID map, read now if no command needed it yet: the
        view as of SELECT (and any EXISTS since), expunges since then included."""
        sel = self.selected
        if sel.uids is None:
            self.install_map(await db(self.map_reader()))
        return sel.uids

    def map_reader(self):
        """sequence_map's read as a function for a worker thread (a command that reads the
        map in its own hop installs it after with install_map)."""
        sel = self.selected
        folder_id, modseq, uidnext = sel.folder_id, sel.expunge_modseq, sel.view_uidnext

        def read() -> array:
            return uidcache.folder_uids(folder_id, modseq, uidnext)

        return read

    def install_map(self, uids: array) -> None:
        sel = self.selected
        if len(uids) != sel.count:
            # The folder row's message_count disagrees with its rows: a services bug.
            logger.error(
                "folder %s: %d messages in the view, %d announced",
                sel.folder_id,
                len(uids),
                sel.count,
            )
        sel.add_recent(recent_in_map(uids, sel.recent_range))
        sel.uids = uids

    def unselect(self) -> None:
        self.server.unwatch(self)
        self.selected = None
        self.state = State.AUTHENTICATED

    async def resolve(self, sequence: p.SequenceSet, *, uid: bool) -> list[int]:
        """UIDs of the selected folder named by a sequence set (sequence numbers or UIDs)."""
        uids = await self.sequence_map()
        return resolve_in(uids, sequence, uid=uid, saved=self.selected.saved)

    async def db_and_changes(self, fn, *args, if_dirty: bool = False, **kwargs):
        """db(fn, ...) that also reads, in the same worker hop, what changed in the selected
        folder since the session last looked (its own write included): a command that writes
        and then reports costs one hop, not two. `if_dirty`: read them only when a change
        event came (a read-only command: a change it did not make is what there is to see)."""
        sel = self.selected
        if if_dirty and not sel.dirty:
            return await db(fn, *args, **kwargs)
        # An earlier read not sent yet is sent first, and this one read again then: arrivals
        # it claimed \Recent for would be lost with it, so this one claims none.
        first_read = sel.prefetched is None
        read = self.changes_reader(claim=first_read)
        # Cleared before the read: an event handled from here on marks the session dirty
        # again, so a change committed after the read is never taken as seen.
        sel.dirty = False
        sel.event_modseq = 0

        def both():
            return fn(*args, **kwargs), read()

        try:
            value, changes = await db(both)
        except BaseException:
            sel.dirty = True
            raise
        if changes is None:  # the folder is gone: the next sync asks, and says BYE
            sel.dirty = True
        elif first_read:
            sel.prefetched = changes
        else:  # an earlier read not sent yet: read again at the next sync
            sel.prefetched = None
            sel.dirty = True
        return value

    def changes_reader(self, *, claim: bool):
        """The selected folder's changes since the session last looked, as a function for a
        worker thread (folder_changes_since's triple and the claimed \\Recent range, see
        read_changes), made on the loop from the view as it is now."""
        sel = self.selected
        folder_id, known, expunged = sel.folder_id, sel.known_modseq, sel.expunge_modseq
        reader, view_uidnext = sel.reader, sel.view_uidnext
        claim = claim and not sel.readonly

        def read():
            return read_changes(folder_id, known, expunged, reader, view_uidnext, claim=claim)

        return read

    def set_notify(self, state) -> None:
        """NOTIFY SET's state (protocols/imap/notify.py), or None for NOTIFY NONE: the server
        hands the session the change events of the mailboxes it names (RFC 5465)."""
        self.server.unnotify(self)
        self.notify_state = state
        if state is not None:
            self.server.notify_register(self, state.owners)

    def notify_event(self, event) -> None:
        """Called on the loop with a change event of a mailbox NOTIFY registered for."""
        state = self.notify_state
        if state is not None:
            state.pending.append(event)
            self.woken = True
            wake(self.waiter)

    async def notify_flush(self) -> None:
        """Send what NOTIFY's pending events changed outside the selected folder."""
        await UPDATES["notify"](self)

    async def sync_updates(self, *, allow_expunge: bool) -> None:
        if self.notify_state is not None and self.notify_state.pending:
            await self.notify_flush()
        sel = self.selected
        if sel is None:
            return
        changes, sel.prefetched = sel.prefetched, None
        if changes is None:
            if not (sel.dirty or (allow_expunge and sel.pending_expunge)):
                return
            read = self.changes_reader(claim=True)
            sel.dirty = False
            sel.event_modseq = 0
            changes = await db(read)
        if changes is None:
            await self.respond(r.BYE_MAILBOX_DELETED)
            raise ConnectionDone()
        highest, rows, expunged, claimed = changes
        out: list = []
        if sel.uids is None and (expunged or any(row[0] < sel.view_uidnext for row in rows)):
            # Sequence numbers are needed (EXPUNGE, FETCH FLAGS): read the map first.
            await self.sequence_map()
        # membership by bisection: no per-sync copy of a large sequence map
        arrived = set()
        for uid, modseq in expunged:
            if sel.seq_of(uid) is not None:
                arrived.add(uid)
            sel.expunge_modseq = max(sel.expunge_modseq, modseq)
        if arrived:
            sel.pending_expunge |= arrived
        if allow_expunge and sel.pending_expunge:
            gone = sorted(sel.pending_expunge)
            sel.pending_expunge = NONE
            out.extend(sel.expunge(gone, vanished=self.vanished, rev2=self.rev2))
        # A message that came and went between two looks is never announced.
        gone_now = {uid for uid, _ in expunged}
        new_uids = []
        for row in rows:
            uid, modseq = row[0], row[1]
            if uid >= sel.view_uidnext:
                if uid not in gone_now:
                    new_uids.append(uid)
                continue
            if uid in sel.pending_expunge or sel.seq_of(uid) is None:
                continue
            if sel.reported.get(uid, 0) >= modseq:
                # Shown already, this state or a later one (a STORE shows rows it read
                # after this read was made): an older state now would drop its MODSEQ.
                continue
            flags = flags_of(row)
            out.extend(sel.keyword_update(flags))
            number, verb = self.fetch_form(uid, sel.seq_of(uid))
            out.append(
                u.FetchFlags(
                    number,
                    sel.flag_names(uid, flags, rev2=self.rev2),
                    # RFC 7162 3.2.4: with QRESYNC the UID is in every unsolicited FETCH
                    # (a UIDFETCH is numbered by it already)
                    uid=uid if self.qresync and not self.uidonly else None,
                    modseq=modseq if self.condstore else None,
                    verb=verb,
                )
            )
        sel.reported.clear()
        if new_uids:
            if sel.uids is None:
                sel.count += len(new_uids)
            else:
                sel.uids.extend(new_uids)
            sel.view_uidnext = new_uids[-1] + 1
            low, high = sel.recent_range
            sel.add_recent(uid for uid in new_uids if low <= uid < high)
            if not sel.readonly:
                if claimed is None:  # not claimed in the read's hop
                    claimed = await db(claim_recent, sel.folder_id, sel.view_uidnext)
                first, uidnext = claimed
                sel.add_recent(uid for uid in new_uids if first <= uid < uidnext)
            out.append(u.Exists(sel.exists))
            if not self.rev2:
                out.append(u.Recent(sel.recent_count))
            if self.notify_state is not None and self.notify_state.selected_fetch:
                # RFC 5465 5.2: MessageNew's FETCH attributes follow the EXISTS
                await self.respond(*out)
                out = []
                await self.notify_fetch(new_uids)
        if sel.contexts and (rows or new_uids):
            # RFC 5267 4.3.3: ADDTO after the EXISTS that numbers the arrivals
            changed = {row[0] for row in rows} | set(new_uids)
            out.extend(await UPDATES["contexts"](self, changed))
        sel.known_modseq = max(sel.known_modseq, highest, *(row[1] for row in rows))
        if sel.dirty and 0 < sel.event_modseq <= sel.known_modseq:
            # Every event since the read names a change it saw (the write of this very
            # command, typically): every MODSEQ up to the folder's highest had committed.
            sel.dirty = False
        await self.respond(*out)

    async def notify_fetch(self, uids: list[int]) -> None:
        """RFC 5465 5.2: MessageNew's FETCH attributes for new messages (no tagged reply)."""
        await UPDATES["notify_fetch"](self, uids)


def read_changes(
    folder_id: int,
    known_modseq: int,
    expunge_modseq: int,
    reader: int | None,
    view_uidnext: int,
    *,
    claim: bool,
):
    """In a worker thread: folder_changes_since's (highest, rows, expunged), or None when
    the folder is gone, and with `claim` the \\Recent range claimed for the arrivals these
    rows announce (None when there are none): sync_updates's read and its claim in one hop."""
    changes = selectors.folder_changes_since(folder_id, known_modseq, expunge_modseq, reader=reader)
    if changes is None:
        return None
    highest, rows, expunged = changes
    claimed = None
    if claim:
        # sync_updates's arrivals: rows at or above the view's UIDNEXT not expunged since
        gone = {uid for uid, _ in expunged}
        new_uids = [row[0] for row in rows if row[0] >= view_uidnext and row[0] not in gone]
        if new_uids:
            try:
                claimed = claim_recent(folder_id, new_uids[-1] + 1)
            except Folder.DoesNotExist:  # deleted since the read: the sync's own hop says so
                claimed = None
    return highest, rows, expunged, claimed


def claim_recent(folder_id: int, upto: int) -> tuple[int, int]:
    # Only what this update announces: a claim up to the folder's UIDNEXT would take
    # arrivals this session has not seen yet, and the update that does announce them would
    # not mark them (\Recent nowhere, imaptest's checkpoint).
    return services.folder_claim_recent(folder_id=folder_id, upto=upto)


def expunge_allowed(command: p.Command) -> bool:
    # RFC 9051 7.5.1: no EXPUNGE during FETCH, STORE or SEARCH by sequence number.
    if command.name in ("FETCH", "STORE", "SEARCH", "SORT", "THREAD"):
        return bool(getattr(command, "uid", False))
    return True
