"""One client socket of a line protocol whose parser is sans-IO (POP3, ManageSieve): bytes
in and out, flow control both ways, STARTTLS, and the ends (idle, refused, shutdown). No
protocol logic: the front end's subclass names its parser, its replies and its session."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from mailhost import tls
from protocols.common.listener import Sessions

TLS_HANDSHAKE_TIMEOUT = 30.0
SIGN_OUT_CLOSE_GRACE = 5.0
# Pipelined input beyond this is left in the socket until the session catches up.
READ_BUFFER_LIMIT = 256 * 1024


def db(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Awaitable[Any]:
    """Run sync store work in a worker thread, on a usable database connection (one left
    broken by a database restart, or past its age, is replaced first)."""

    def call() -> Any:
        close_old_connections()
        return fn(*args, **kwargs)

    return sync_to_async(call, thread_sensitive=False)()


class ConnectionClosed(Exception):
    pass


class LineConnection(asyncio.Protocol):
    """Bytes in and out of one client socket; the subclass sets what differs."""

    need_data: Any  # the parser's NEED_DATA
    refusal: bytes  # written to a connection over the caps, before the close
    goodbye: bytes  # written at shutdown to a session waiting for a command
    signed_out: bytes  # written when the account's password changed (sign_out)
    shutdown_grace: float | None = None  # then cut a stopping session that did not end

    def __init__(self, sessions: Sessions, parser: Any, *, secure: bool) -> None:
        self.sessions = sessions
        self.secure = secure
        self.parser = parser
        self.transport: asyncio.Transport | None = None
        self.peer_ip: str | None = None
        self._data = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._paused = False
        self._eof = False
        self.closed = False
        self.task: asyncio.Task | None = None
        # Shutdown: a session waiting for a command gets the goodbye at once, one running a
        # command after its reply.
        self.awaiting_command = False
        self.stopping = False
        # (mailbox id, time.time_ns() of the sign-in) while a session is signed in
        self.signed_in: tuple[int, int] | None = None
        self.revoked = False  # signed out by a password change: ends at its next read

    # --- what the subclass provides

    def session(self) -> Awaitable[None]:
        raise NotImplementedError

    def idle_timeout(self) -> float:
        raise NotImplementedError

    def ended(self) -> bool:
        """True when the session must end at its next read (besides close and end of input)."""
        return False

    # --- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer_ip = peer[0] if peer else None
        if not self.sessions.admit(self):
            transport.write(self.refusal)
            transport.close()
            self.closed = True
            return
        self.task = asyncio.get_running_loop().create_task(self.session())
        self.sessions.track(self.task)

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
        self.sessions.leave(self)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # --- used by the session

    async def next_event(self, deadline: float) -> Any:
        """The next parsed input; None on end of input or disconnect; TimeoutError when the
        deadline passes first."""
        while True:
            if self.ended() or self.revoked:
                return None
            event = self.parser.next_event()
            if event is not self.need_data:
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
            # A client that stops reading is idle too: it must not hold its session forever.
            try:
                await asyncio.wait_for(self._writable.wait(), self.idle_timeout())
            except TimeoutError:
                self.transport.abort()
                raise ConnectionClosed() from None
        if self.closed:
            raise ConnectionClosed()

    async def start_tls(self) -> None:
        # RFC 2595 4 (and the STARTTLS command injection class of bugs): whatever the client
        # sent in the clear after the command is dropped, never read as if it came through TLS.
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

    def abort(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.abort()

    def sign_in(self, mailbox_id: int) -> None:
        self.signed_in = (mailbox_id, time.time_ns())

    def sign_out(self) -> None:
        """The account's password changed: the signed_out line and the close, at once when
        the session waits for a command, else after its reply (the session loop sends it);
        a peer that reads nothing is cut SIGN_OUT_CLOSE_GRACE seconds later."""
        if self.revoked or self.closed or self.transport is None:
            return
        self.revoked = True
        self._data.set()  # next_event() returns None: the session ends
        if self.awaiting_command:
            self.transport.write(self.signed_out)
            self.close()
        asyncio.get_running_loop().call_later(SIGN_OUT_CLOSE_GRACE, self.abort)

    def shutdown(self) -> None:
        """The server stops: the goodbye now when the session waits for a command, else after
        its reply."""
        if self.stopping:  # every listener of the family reaches every connection
            return
        self.stopping = True
        if self.awaiting_command and not self.closed and self.transport is not None:
            self.transport.write(self.goodbye)
            self.close()
        if self.shutdown_grace is not None:
            # A TLS close waits for the peer's close_notify; a peer that sends none (or reads
            # nothing) is cut after a short grace, so the listener stops in time.
            asyncio.get_running_loop().call_later(self.shutdown_grace, self.abort)
