"""IMAP listeners: "imap" (STARTTLS) and "imaps" (implicit TLS). asyncio only moves bytes.

Change events reach the event loop through one subscription per process; the server hands
each to the sessions that have the folder selected.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import weakref
from collections import defaultdict

from django.conf import settings

from mailboxes import events, services
from mailhost import listeners, metrics, tls
from mailhost.listeners import Listener
from protocols.common.listener import Caps, Served, drain, listen
from protocols.imap import responses as r
from protocols.imap.session import Alarms, Session, SessionProtocol, SessionReader
from protocols.imap.worker import close_db_connections

logger = logging.getLogger(__name__)

PORTS = {"imap": "MAILHOST_IMAP_PORT", "imaps": "MAILHOST_IMAPS_PORT"}  # see mailhost/processes.py


class ImapServer:
    """Process-wide state: open sessions, who watches which folder, connection counts."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.sessions: set[Session] = set()
        self.watchers: dict[int, set[Session]] = defaultdict(set)
        self.watching: dict[Session, tuple[int, int]] = {}  # (folder id, its mailbox id)
        # NOTIFY (RFC 5465): mailbox id -> sessions that hear all of its events
        self.notifiers: dict[int, set[Session]] = defaultdict(set)
        self.notifying: dict[Session, set[int]] = {}
        # Sessions per mailbox (MAILHOST_IMAP_MAX_CONNECTIONS_PER_USER), in every worker.
        self.per_user = listeners.shared_counts("imap-user")
        self.user_of: dict[Session, int] = {}
        # mailbox id -> the Mailbox row its signed-in sessions hold: one instance for all of
        # them (about 1.7 kB each). Sessions use its id; the services they hand it to read
        # the row again by that id.
        self.mailboxes: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self.signed_in_at: dict[Session, int] = {}  # time.time_ns() of the sign-in
        self.tasks: set[asyncio.Task] = set()
        self.alarms = Alarms(loop)  # the timers of the sessions in IDLE
        self.caps = Caps(
            "imap",
            max_total="MAILHOST_IMAP_MAX_CONNECTIONS",
            max_per_ip="MAILHOST_MAX_CONNECTIONS_PER_IP",
        )
        # folder id -> keywords in use, grown as sessions see them (never shrinks while up)
        self.keywords: dict[int, set[str]] = {}
        self.unsubscribe = events.subscribe(self._on_event_threadsafe)

    def _on_event_threadsafe(self, event: events.ChangeEvent) -> None:
        # A mailbox no session watches (none signed in to it, selecting or NOTIFYing it)
        # wakes no loop: sessions register (events.watch) before they read what it changes.
        if self.loop.is_closed() or (
            event.kind != events.SIGN_OUT and not events.watched_here(event.mailbox_id)
        ):
            return
        try:
            self.loop.call_soon_threadsafe(self._on_event, event)
        except RuntimeError:
            pass  # loop closed while shutting down

    def _on_event(self, event: events.ChangeEvent) -> None:
        if event.kind == events.SIGN_OUT:
            self.sign_out(event.mailbox_id, event.modseq)
            return
        for session in list(self.watchers.get(event.folder_id, ())):
            session.notify(event.modseq)
        for session in list(self.notifiers.get(event.mailbox_id, ())):
            session.notify_event(event)

    def notify_register(self, session: Session, mailbox_ids: set[int]) -> None:
        self.unnotify(session)
        self.notifying[session] = set(mailbox_ids)
        for mailbox_id in mailbox_ids:
            events.watch(mailbox_id)
            self.notifiers[mailbox_id].add(session)

    def unnotify(self, session: Session) -> None:
        for mailbox_id in self.notifying.pop(session, ()):
            events.unwatch(mailbox_id)
            self.notifiers[mailbox_id].discard(session)
            if not self.notifiers[mailbox_id]:
                del self.notifiers[mailbox_id]

    def watch(self, session: Session, folder_id: int, mailbox_id: int) -> None:
        """`session` has the folder (of mailbox `mailbox_id`) selected. Its own mailbox is
        watched since sign-in (claim_user), before SELECT read the folder; another's shared
        folder from now on, as the local watchers always were."""
        events.watch(mailbox_id)
        self.watchers[folder_id].add(session)
        self.watching[session] = (folder_id, mailbox_id)

    def unwatch(self, session: Session) -> None:
        folder_id, mailbox_id = self.watching.pop(session, (None, None))
        if folder_id is not None:
            events.unwatch(mailbox_id)
            self.watchers[folder_id].discard(session)
            if not self.watchers[folder_id]:
                del self.watchers[folder_id]

    def claim_user(self, session: Session, mailbox_id: int) -> bool:
        if self.per_user.get(str(mailbox_id)) >= settings.MAILHOST_IMAP_MAX_CONNECTIONS_PER_USER:
            return False
        self.per_user.add(str(mailbox_id), 1)
        events.watch(mailbox_id)  # before the session reads anything of the mailbox
        self.user_of[session] = mailbox_id
        self.signed_in_at[session] = time.time_ns()
        return True

    def sign_out(self, mailbox_id: int, changed_ns: int) -> None:
        """The mailbox's password changed at `changed_ns`: its sessions signed in before then
        end with a BYE (at once when waiting for a command, else after their reply)."""
        for session, user in list(self.user_of.items()):
            if user == mailbox_id and self.signed_in_at.get(session, 0) <= changed_ns:
                session.shutdown(r.BYE_SIGNED_OUT)

    def release_user(self, session: Session) -> None:
        mailbox_id = self.user_of.pop(session, None)
        self.signed_in_at.pop(session, None)
        if mailbox_id is not None:
            self.per_user.add(str(mailbox_id), -1)
            events.unwatch(mailbox_id)

    def handle(self, reader, writer, *, tls_active: bool, starttls_allowed: bool) -> None:
        """A new connection (the StreamReaderProtocol's callback): its session runs in a task
        made here, whose coroutine is the session's own run(). A coroutine returned to the
        protocol would cost every connection a frame around run() and the protocol's task
        done-callback closure (issue 22: about 600 bytes an idle connection)."""
        peer = writer.get_extra_info("peername")
        ip = peer[0] if peer else ""
        if self.caps.refusal(ip) is not None:
            self._track(self.loop.create_task(self._refuse(writer)))
            return
        session = Session(self, reader, writer, tls=tls_active, starttls_allowed=starttls_allowed)
        self.sessions.add(session)
        self.caps.add(ip)
        metrics.connection_opened("imaps" if tls_active else "imap")
        metrics.IMAP_SESSIONS.inc()  # not track_inprogress(): no tracker object per session
        self.tasks.add(self.loop.create_task(session.run()))

    def session_ended(self, session: Session) -> None:
        """Called by the session's run() as its last step, in its task."""
        metrics.IMAP_SESSIONS.dec()
        self.sessions.discard(session)
        self.tasks.discard(asyncio.current_task())
        self.caps.remove(session.client_ip or "")

    def _track(self, task: asyncio.Task) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _refuse(self, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(r.BYE_TOO_MANY_CONNECTIONS.untagged())
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()


class _Group(Served):
    """Both listeners stop together and end their sessions' event subscription."""

    def __init__(self, server: asyncio.Server, imap: ImapServer, last: bool):
        self.server = server
        self.imap = imap
        self.last = last

    def close(self) -> None:
        self.server.close()
        if self.last:
            self.imap.unsubscribe()
            for session in list(self.imap.sessions):
                session.shutdown()

    async def wait_closed(self) -> None:
        await self.server.wait_closed()
        if not self.last:
            return
        # Sessions end after their BYE (idle ones at once, others after their command).
        pending = await drain(self.imap.tasks, 5)
        for task in pending:
            task.cancel()
        if pending:
            # A graceful TLS close would wait for the peer; shutdown must not.
            for session in list(self.imap.sessions):
                session.writer.transport.abort()
            await asyncio.wait(pending, timeout=1)
        loop = asyncio.get_running_loop()
        # STOREs' training on replies, handed to its thread, is done before the process ends.
        await loop.run_in_executor(None, services.reply_trainer.drain, 5)
        await loop.run_in_executor(None, close_db_connections)


async def start() -> list[Listener]:
    loop = asyncio.get_running_loop()
    imap = ImapServer(loop)
    context = tls.server_context()

    # partial, not a coroutine function around handle: one coroutine frame less per session
    plain = functools.partial(imap.handle, tls_active=False, starttls_allowed=True)
    implicit = functools.partial(imap.handle, tls_active=True, starttls_allowed=False)

    limit = settings.MAILHOST_IMAP_MAX_LINE_LENGTH + 1024

    done = loop.create_future()  # every connection's StreamWriter._complete_fut
    done.set_result(None)

    def streams(callback):
        # asyncio.start_server's own factory, so that protocols/proxy.py can stand in front.
        def factory() -> asyncio.StreamReaderProtocol:
            reader = SessionReader(limit=limit, loop=loop)
            return SessionProtocol(reader, callback, loop=loop, done=done)

        return factory

    server_plain = await listen(streams(plain), name="imap", port=settings.MAILHOST_IMAP_PORT)
    server_tls = await listen(
        streams(implicit), name="imaps", port=settings.MAILHOST_IMAPS_PORT, ssl=context
    )
    return [
        Listener("imap", _Group(server_plain, imap, last=False)),
        Listener("imaps", _Group(server_tls, imap, last=True)),
    ]
