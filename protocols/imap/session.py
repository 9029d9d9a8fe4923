"""One IMAP connection: reads bytes into the parser, dispatches commands, writes replies.

The session keeps the selected folder's sequence-number-to-UID list in memory, read on first
need rather than at SELECT (which answers from the folder row's counters): until then the
session holds only the view's bounds (protocols/imap/uidcache.py). Changes made elsewhere
arrive as change events (mailboxes.events, handed over with call_soon_threadsafe)
and only mark the session dirty; the next command (or IDLE at once) asks the database what
changed since the MODSEQ it last reported and sends EXISTS / EXPUNGE / FETCH FLAGS.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import ssl
import sys
import zlib
from array import array
from dataclasses import dataclass, field
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
from mailboxes.models import ACL_RIGHTS, Folder, Mailbox
from mailboxes.storage import out_of_space
from protocols.imap import contexts, fetch, states, uidcache
from protocols.imap import parser as p
from protocols.imap import responses as r
from protocols.imap.commands import HANDLERS, UPDATES
from protocols.imap.errors import CommandError, ConnectionDone
from protocols.imap.flags import COMMON_KEYWORDS, FLAGS_LINE_BASE, flags_of
from protocols.imap.states import State
from protocols.imap.worker import db

if TYPE_CHECKING:
    from protocols.imap.commands.select import SelectView

logger = logging.getLogger(__name__)

# RFC 9585 INPROGRESS: a command still running after this many seconds says so, and again
# each time as long again has passed.
PROGRESS_INTERVAL = 1.0
INFLATE_CHUNK = 256 * 1024  # octets inflated per read at most (COMPRESS=DEFLATE)


@dataclass
class Selected:
    folder_id: int
    name: str
    uidvalidity: int
    readonly: bool
    known_modseq: int
    # Expunges up to here are reported; with view_uidnext, the view the client was told of.
    expunge_modseq: int
    view_uidnext: int  # UIDs from here on are new to the client (not yet in an EXISTS)
    count: int  # EXISTS while the sequence map is not read
    # seq -> uid: 4 bytes per message (a 100k-message folder costs 400 kB per session),
    # None until a command needs sequence numbers (Session.sequence_map).
    uids: array | None = None
    # \Recent: the UIDs claimed at SELECT are a range (how many of them: recent_at_select)
    # until the map is read; `recent` holds the rest (and all of them once the map is read).
    recent_range: tuple[int, int] = (0, 0)
    recent_at_select: int = 0
    recent: set[int] = field(default_factory=set)
    # Keywords of the folder, shared by every session of this process that selected it
    # (so no FLAGS response ever drops one another session announced), and the keywords
    # this session's last FLAGS response listed.
    keywords: set[str] = field(default_factory=set)
    announced: set[str] = field(default_factory=set)
    dirty: bool = False
    # What changed since known_modseq, read in the hop of the command's own write
    # (Session.db_and_changes): the next sync_updates sends it instead of asking again.
    prefetched: tuple | None = None
    # Highest MODSEQ named by a change event since the session last cleared `dirty`: a
    # change at or below the MODSEQ it has read up to is no reason to read again.
    event_modseq: int = 0
    # (uid -> highest modseq) this session already showed itself (STORE), not repeated by sync
    reported: dict[int, int] = field(default_factory=dict)
    # UIDs expunged elsewhere while EXPUNGE could not be sent yet
    pending_expunge: set[int] = field(default_factory=set)
    saved: list[int] | None = None  # SEARCHRES "$" (RFC 5182), as UIDs
    # SEARCH/SORT RETURN (UPDATE) contexts by their command's tag (RFC 5267 4.3): they end
    # with the selection
    contexts: dict[str, contexts.UpdateContext] = field(default_factory=dict)
    # RFC 4314: the session's rights on the folder (all of them on its own), and the
    # mailbox that owns it (another's, for a shared folder)
    rights: str = ACL_RIGHTS
    owner_id: int = 0

    def require(self, right: str) -> None:
        """NO [NOPERM] unless the session holds the right on the selected folder."""
        if right not in self.rights:
            raise CommandError(r.NO_PERMISSION)

    @property
    def exists(self) -> int:
        return self.count if self.uids is None else len(self.uids)

    @property
    def recent_count(self) -> int:
        if self.uids is None:
            return self.recent_at_select + len(self.recent)
        return len(self.recent)

    def seqs_of(self, uids) -> list[int | None]:
        """Sequence numbers of ascending UIDs (None where not in the map): for a large
        result one walk of the map, cheaper than a bisection each."""
        mapped, count = self.uids, len(self.uids)
        if len(uids) * 8 < count:
            return [self.seq_of(uid) for uid in uids]
        seqs: list[int | None] = []
        i = 0
        for uid in uids:
            while i < count and mapped[i] < uid:
                i += 1
            seqs.append(i + 1 if i < count and mapped[i] == uid else None)
        return seqs

    def seq_of(self, uid: int) -> int | None:
        """The message's sequence number (the map must be read: Session.sequence_map)."""
        i = bisect.bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None


class Session:
    def __init__(
        self,
        server,
        reader: asyncio.StreamReader,
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
        self.enabled: set[str] = set()
        self.condstore = False  # CONDSTORE enabled (RFC 7162 3.1: by ENABLE or first use)
        self.announce_modseq = False
        self.commands_before_auth = 0
        self.auth_failures = 0
        self.wakeup = asyncio.Event()
        self.notify_state = None  # NOTIFY SET (protocols/imap/notify.py)
        self.read_task: asyncio.Task | None = None
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

    # --- capabilities ------------------------------------------------------------------

    @property
    def plaintext_ok(self) -> bool:
        return self.tls or settings.MAILHOST_ALLOW_PLAINTEXT_AUTH

    def capabilities(self) -> list[str]:
        caps = ["IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE"]
        if self.state == State.NOT_AUTHENTICATED:
            if self.starttls_allowed and not self.tls:
                caps.append("STARTTLS")
            if self.plaintext_ok:
                caps.append("AUTH=PLAIN")
            else:
                caps.append("LOGINDISABLED")
            return caps
        caps += [
            "NAMESPACE",
            "UNSELECT",
            "UIDPLUS",
            "MOVE",
            "CHILDREN",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "SPECIAL-USE",
            "CREATE-SPECIAL-USE",
            "STATUS=SIZE",
            "ESEARCH",
            "SEARCHRES",
            "SORT",
            "SORT=DISPLAY",
            "ESORT",
            "THREAD=ORDEREDSUBJECT",
            "THREAD=REFERENCES",
            "QUOTA",
            "QUOTA=RES-STORAGE",
            "ACL",
            "RIGHTS=texk",
            "METADATA",
            "METADATA-SERVER",
            "LIST-METADATA",
            "NOTIFY",
            "MULTIAPPEND",
            "UNAUTHENTICATE",
            "OBJECTID",
            "PREVIEW",
            "REPLACE",
            "SAVEDATE",
            "MULTISEARCH",
            "CONTEXT=SEARCH",
            "CONTEXT=SORT",
            "INPROGRESS",
            "UIDONLY",
            *(["COMPRESS=DEFLATE"] if self.deflate is None else []),
            "CONDSTORE",
            "QRESYNC",
            "UTF8=ACCEPT",
            "BINARY",
            f"APPENDLIMIT={settings.MAILHOST_MAX_MESSAGE_SIZE}",
        ]
        return caps

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

    def fetch_form(self, uid: int, seq: int) -> tuple[int, str]:
        """The number and the verb of a FETCH response: `* seq FETCH`, or with UIDONLY
        `* uid UIDFETCH` (RFC 9586 3.3)."""
        return (uid, "UIDFETCH") if self.uidonly else (seq, "FETCH")

    # --- I/O ---------------------------------------------------------------------------

    async def send(self, data: bytes) -> None:
        self.writer.write(self.compressed(data))
        await self.writer.drain()

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
        if self.read_task is None:
            self.read_task = asyncio.ensure_future(self.reader.read(65536))
        try:
            await asyncio.wait_for(asyncio.shield(self.read_task), timeout)
        except TimeoutError:
            await self.send(r.BYE_TIMEOUT.untagged())
            raise ConnectionDone() from None
        task, self.read_task = self.read_task, None
        data = task.result()
        if not data:
            raise ConnectionDone()
        if self.inflate is None:
            return data
        out = self.inflate.decompress(data, INFLATE_CHUNK)
        if not out and not self.inflate.unconsumed_tail:
            return await self.read_some(timeout)  # a deflate block not complete yet
        return out

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
            self.wakeup.clear()  # before looking, so an event from here on wakes again
            if self.notify_state is not None and self.notify_state.pending:
                await self.notify_flush()
            if self.read_task is None:
                self.read_task = asyncio.ensure_future(self.reader.read(65536))
            wake = asyncio.ensure_future(self.wakeup.wait())
            try:
                done, _ = await asyncio.wait(
                    {self.read_task, wake},
                    timeout=max(0.0, deadline - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                wake.cancel()
            if self.read_task in done:
                task, self.read_task = self.read_task, None
                data = task.result()
                if not data:
                    raise ConnectionDone()
                return data
            if not done:
                await self.send(r.BYE_TIMEOUT.untagged())
                raise ConnectionDone()

    async def run(self) -> None:
        try:
            await self.send(
                r.Reply(
                    "OK",
                    f"{settings.MAILHOST_HOSTNAME} Mailhost IMAP ready",
                    "CAPABILITY " + " ".join(self.capabilities()),
                ).untagged()
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
                    await self.dispatch(item)
                    if self.shutting_down and self.state != State.LOGOUT:  # finished in flight
                        await self.bye_for_shutdown()
        except (ConnectionDone, ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        except Exception:
            logger.exception("IMAP session failed")
        finally:
            await self.close()

    async def progress(self, tag: str, count: int | None = None, total: int | None = None) -> None:
        """`* OK [INPROGRESS ("tag" count total)]` when the command has run PROGRESS_INTERVAL
        since it began or since the last one (RFC 9585 3); nothing otherwise."""
        now = asyncio.get_running_loop().time()
        if now - max(self.command_started, self.last_progress) < PROGRESS_INTERVAL:
            return
        self.last_progress = now
        numbers = " ".join("NIL" if n is None else str(n) for n in (count, total))
        quoted = r.quoted_or_literal(tag).decode("ascii")
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

    def unauthenticate(self) -> None:
        """Back to the state of a new connection, TLS and compression kept (RFC 8437 3)."""
        if self.selected is not None:
            self.unselect()
        self.server.release_user(self)
        self.mailbox = None
        self.enabled.clear()
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
            self.writer.write(self.compressed(bye.untagged()))
            self.writer.close()  # after the BYE is written; the pending read then ends

    async def bye_for_shutdown(self) -> None:
        if not self.said_bye:
            self.said_bye = True
            await self.send(self.bye.untagged())
        raise ConnectionDone()

    async def close(self) -> None:
        if self.read_task is not None:
            self.read_task.cancel()
        self.server.unwatch(self)
        self.server.unnotify(self)
        self.server.release_user(self)
        try:
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
            await self.send(r.BYE_LITERAL_TOO_BIG.untagged())
            await self.send(reply.tagged(error.tag))
            raise ConnectionDone()
        await self.count_unauthenticated()
        await self.send(reply.tagged(error.tag) if error.tag != "*" else reply.untagged())

    async def count_unauthenticated(self) -> None:
        if self.state == State.NOT_AUTHENTICATED:
            self.commands_before_auth += 1
            if self.commands_before_auth > settings.MAILHOST_IMAP_MAX_COMMANDS_BEFORE_AUTH:
                await self.send(r.BYE_TOO_MANY_COMMANDS.untagged())
                raise ConnectionDone()

    # --- dispatch ----------------------------------------------------------------------

    async def dispatch(self, command: p.Command) -> None:
        await self.count_unauthenticated()
        if not states.allowed(self.state, command.name):
            if self.state == State.AUTHENTICATED and command.name in states.SELECTED_ONLY:
                await self.send(r.BAD_NOT_SELECTED.tagged(command.tag))
            else:
                await self.send(r.BAD_STATE.tagged(command.tag))
            return
        if self.uidonly and states.uid_required(command):
            await self.send(r.BAD_UID_REQUIRED.tagged(command.tag))
            return
        handler = HANDLERS[command.name]
        self.command_started = asyncio.get_running_loop().time()
        self.last_progress = 0.0
        try:
            # A handler sends its untagged responses and returns its tagged reply (None when
            # it has sent that itself: LOGOUT, STARTTLS, SELECT...); finish sends it after any
            # updates the RFC allows now.
            reply = await handler(self, command)
            if reply is not None:
                await self.finish(command, reply)
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

    async def finish(self, command: p.Command, reply: r.Reply = r.OK_COMPLETED) -> None:
        """Send pending updates the RFC allows now, then the tagged reply."""
        await self.sync_updates(allow_expunge=expunge_allowed(command))
        if self.announce_modseq:
            self.announce_modseq = False
            if self.selected is not None:
                highest = await db(selectors.folder_highestmodseq, self.selected.folder_id)
                await self.send(r.Reply("OK", "Highest", f"HIGHESTMODSEQ {highest}").untagged())
        await self.send(reply.tagged(command.tag))

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
        self.wakeup.set()

    async def select(self, view: SelectView) -> Selected:
        """Select from a select_view read (the folder row, its counters and bounds): no
        per-message read."""
        folder, (first, uidnext) = view.folder, view.recent
        readonly, recent_at_select = view.readonly, view.recent_at_select
        keywords = self.server.keywords.get(folder.id)
        if keywords is None:
            keywords = set(await db(selectors.folder_keywords, folder.id))
            keywords = self.server.keywords.setdefault(folder.id, keywords)
        access = view.access
        selected = Selected(
            folder_id=folder.id,
            name=access.name if access is not None else folder.name,
            uidvalidity=folder.uidvalidity,
            readonly=readonly,
            known_modseq=folder.highestmodseq,
            expunge_modseq=folder.highestmodseq,
            view_uidnext=folder.uidnext,
            count=folder.message_count,
            recent_range=(first, uidnext),
            recent_at_select=recent_at_select,
            keywords=keywords,
            rights=access.rights if access is not None else ACL_RIGHTS,
            owner_id=folder.mailbox_id,
        )
        self.server.unwatch(self)
        self.selected = selected
        self.state = State.SELECTED
        self.server.watch(self, folder.id)
        return selected

    async def sequence_map(self) -> array:
        """The selected folder's seq -> UID map, read now if no command needed it yet: the
        view as of SELECT (and any EXISTS since), expunges since then included."""
        sel = self.selected
        if sel.uids is None:
            uids = await db(
                uidcache.folder_uids, sel.folder_id, sel.expunge_modseq, sel.view_uidnext
            )
            if len(uids) != sel.count:
                # The folder row's message_count disagrees with its rows: a services bug.
                logger.error(
                    "folder %s: %d messages in the view, %d announced",
                    sel.folder_id,
                    len(uids),
                    sel.count,
                )
            low, high = sel.recent_range
            sel.recent.update(uids[bisect.bisect_left(uids, low) : bisect.bisect_left(uids, high)])
            sel.uids = uids
        return sel.uids

    def unselect(self) -> None:
        self.server.unwatch(self)
        self.selected = None
        self.state = State.AUTHENTICATED

    def flag_names(self, uid: int, flags: list[str]) -> list[str]:
        if self.selected and uid in self.selected.recent and not self.rev2:
            return [*flags, "\\Recent"]
        return flags

    def flags_line(self) -> bytes:
        sel = self.selected
        keywords = set(COMMON_KEYWORDS) | (sel.keywords if sel else set())
        if sel is not None:
            sel.announced = set(keywords)
        return r.untagged("FLAGS " + r.flag_list([*FLAGS_LINE_BASE, *sorted(keywords)]))

    def keyword_update(self, flags) -> bytes:
        """A FLAGS response when `flags` use a keyword this client has not been told of
        (RFC 9051 7.3.5: FLAGS lists every flag in use); b"" otherwise."""
        sel = self.selected
        new = {f for f in flags if not f.startswith("\\")} - sel.announced
        if not new:
            return b""
        sel.keywords |= new
        return self.flags_line()

    async def resolve(self, sequence: p.SequenceSet, *, uid: bool) -> list[int]:
        """UIDs of the selected folder named by a sequence set (sequence numbers or UIDs)."""
        sel = self.selected
        uids = await self.sequence_map()
        if sequence.saved:
            if sel.saved is None:
                return []
            return [u for u in sel.saved if sel.seq_of(u) is not None]
        if not uids:
            if not uid and any(low != p.STAR and high != p.STAR for low, high in sequence.ranges):
                raise CommandError(r.BAD_INVALID_SEQUENCE)
            return []
        result: list[int] = []
        if uid:
            largest = uids[-1]
            for low, high in sequence.resolve(largest):
                start = bisect.bisect_left(uids, low)
                end = bisect.bisect_right(uids, high)
                result.extend(uids[start:end])
        else:
            count = len(uids)
            for low, high in sequence.resolve(count):
                if low < 1 or high > count:
                    raise CommandError(r.BAD_INVALID_SEQUENCE)
                result.extend(uids[low - 1 : high])
        if len(sequence.ranges) > 1:
            result = sorted(set(result))
        return result

    async def db_and_changes(self, fn, *args, **kwargs):
        """db(fn, ...) that also reads, in the same worker hop, what changed in the selected
        folder since the session last looked (its own write included): a command that writes
        and then reports costs one hop, not two."""
        sel = self.selected
        known, expunged = sel.known_modseq, sel.expunge_modseq
        # Cleared before the read: an event handled from here on marks the session dirty
        # again, so a change committed after the read is never taken as seen.
        sel.dirty = False
        sel.event_modseq = 0

        def both():
            value = fn(*args, **kwargs)
            return value, selectors.folder_changes_since(sel.folder_id, known, expunged)

        try:
            value, changes = await db(both)
        except BaseException:
            sel.dirty = True
            raise
        if changes is None:  # the folder is gone: the next sync asks, and says BYE
            sel.dirty = True
        elif sel.prefetched is None:
            sel.prefetched = changes
        else:  # an earlier read not sent yet: read again at the next sync
            sel.prefetched = None
            sel.dirty = True
        return value

    def notify_event(self, event) -> None:
        """Called on the loop with a change event of a mailbox NOTIFY registered for."""
        state = self.notify_state
        if state is not None:
            state.pending.append(event)
            self.wakeup.set()

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
            sel.dirty = False
            sel.event_modseq = 0
            changes = await db(
                selectors.folder_changes_since,
                sel.folder_id,
                sel.known_modseq,
                sel.expunge_modseq,
            )
        if changes is None:
            await self.send(r.BYE_MAILBOX_DELETED.untagged())
            raise ConnectionDone()
        highest, rows, expunged = changes
        out: list[bytes] = []
        if sel.uids is None and (expunged or any(row[0] < sel.view_uidnext for row in rows)):
            # Sequence numbers are needed (EXPUNGE, FETCH FLAGS): read the map first.
            await self.sequence_map()
        # membership by bisection: no per-sync copy of a large sequence map
        for uid, modseq in expunged:
            if sel.seq_of(uid) is not None:
                sel.pending_expunge.add(uid)
            sel.expunge_modseq = max(sel.expunge_modseq, modseq)
        if allow_expunge and sel.pending_expunge:
            gone = sorted(sel.pending_expunge)
            sel.pending_expunge.clear()
            out.extend(self.expunge_lines(gone))
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
            update = self.keyword_update(flags)
            if update:
                out.append(update)
            number, verb = self.fetch_form(uid, sel.seq_of(uid))
            out.append(
                fetch.flags_response(
                    number,
                    self.flag_names(uid, flags),
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
            sel.recent |= {u for u in new_uids if low <= u < high}
            if not sel.readonly:
                folder = Folder(pk=sel.folder_id, id=sel.folder_id)
                first, uidnext = await db(services.folder_claim_recent, folder=folder)
                sel.recent |= {u for u in new_uids if first <= u < uidnext}
            out.append(r.exists(sel.exists))
            if not self.rev2:
                out.append(r.untagged(f"{sel.recent_count} RECENT"))
            if self.notify_state is not None and self.notify_state.selected_fetch:
                # RFC 5465 5.2: MessageNew's FETCH attributes follow the EXISTS
                await self.send(b"".join(out))
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
        if out:
            await self.send(b"".join(out))

    async def notify_fetch(self, uids: list[int]) -> None:
        """RFC 5465 5.2: MessageNew's FETCH attributes for new messages (no tagged reply)."""
        await UPDATES["notify_fetch"](self, uids)

    def expunge_lines(self, gone_uids) -> list[bytes]:
        """Remove UIDs from the session and return EXPUNGE (or VANISHED) lines."""
        sel = self.selected
        gone = {u for u in gone_uids if sel.seq_of(u) is not None}
        for uid in gone:
            sel.recent.discard(uid)
        if not gone:
            return []
        # RFC 5267 4.3.4: a context's REMOVEFROM before the expunge, numbered as before it
        removals = []
        for context in sel.contexts.values():
            removes = contexts.removal_pairs(context, gone)
            number = contexts.numbering(context, sel.seq_of)
            removals.append(contexts.update_response(context, removes, [], number))
        if self.qresync or self.uidonly:
            # RFC 7162 3.2.10: VANISHED replaces EXPUNGE once QRESYNC is enabled; RFC 9586
            # 3.4 likewise once UIDONLY is.
            lines = [r.vanished(sorted(gone))]
        else:
            # Highest first: removing a message renumbers only those after it, so each
            # number sent is the message's number at that moment (RFC 9051 7.5.1).
            lines = [r.expunge(sel.seq_of(uid)) for uid in sorted(gone, reverse=True)]
        lines = [line for line in removals if line] + lines
        # One pass, however many went (deleting one by one from a 100k map is quadratic).
        sel.uids = array("I", (u for u in sel.uids if u not in gone))
        return lines


def expunge_allowed(command: p.Command) -> bool:
    # RFC 9051 7.5.1: no EXPUNGE during FETCH, STORE or SEARCH by sequence number.
    if command.name in ("FETCH", "STORE", "SEARCH", "SORT", "THREAD"):
        return bool(getattr(command, "uid", False))
    return True
