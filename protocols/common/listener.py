"""Listening, for every mail front end (SMTP, IMAP, POP3, ManageSieve), in one place.

- `listen()` opens a listening socket on MAILHOST_BIND with MAILHOST_LISTEN_BACKLOG, behind the
  PROXY protocol reader (protocols/proxy.py), or takes the socket the supervisor opened for
  this listener when MAILHOST_PROCESSES runs several worker processes (mailhost/listeners.py).
- `Caps` counts a pool's open connections, in total and per client address, across the
  worker processes (the counts live in memory they share).
- `Sessions` is a family's open connections and their session tasks; `Served` is one listening
  server as the runner sees it: `close()` stops accepting and asks each open connection to end
  (`shutdown()`), `wait_closed()` gives them MAILHOST_SHUTDOWN_GRACE-bounded time to finish
  what they are doing (the drain on SIGTERM).
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Callable
from typing import Any, Protocol

from django.conf import settings

from mailhost import listeners, metrics
from protocols import proxy


async def listen(
    factory: Callable[[], asyncio.BaseProtocol],
    *,
    name: str,
    port: int,
    ssl: ssl_module.SSLContext | None = None,
    ssl_handshake_timeout: float | None = None,
) -> asyncio.Server:
    """The listener `name` on MAILHOST_BIND:port (0 picks a free port, as tests do)."""
    loop = asyncio.get_running_loop()
    where: dict[str, Any] = {"host": settings.MAILHOST_BIND, "port": port}
    inherited = listeners.inherited(name)
    if inherited is not None:
        where = {"host": None, "port": None, "sock": inherited}
    else:
        where["reuse_address"] = True
    return await proxy.create_server(
        loop,
        factory,
        where.pop("host"),
        where.pop("port"),
        name=name,
        ssl=ssl,
        ssl_handshake_timeout=ssl_handshake_timeout,
        backlog=settings.MAILHOST_LISTEN_BACKLOG,
        **where,
    )


class Caps:
    """Open connections of one pool (a listener family, or SMTP's port 25 apart from
    submission), capped in total and per client address. With several worker processes the
    caps hold for all of them together: each process writes its own row of a table they share
    (mailhost/listeners.py: `shared_counts`), and reads the sum."""

    def __init__(self, pool: str, *, max_total: int | str, max_per_ip: int | str) -> None:
        # A number, or the name of the setting that holds it (read at each connection).
        self._max_total = max_total
        self._max_per_ip = max_per_ip
        self.counts = listeners.shared_counts(pool)

    @property
    def max_total(self) -> int:
        return _value(self._max_total)

    @property
    def max_per_ip(self) -> int:
        return _value(self._max_per_ip)

    @property
    def count(self) -> int:
        return self.counts.total()

    def of(self, ip: str | None) -> int:
        return self.counts.get(ip or "")

    def refusal(self, ip: str | None) -> str | None:
        """ "total" or "per_ip" when one more connection from `ip` would pass a cap."""
        if self.count >= self.max_total:
            return "total"
        if self.of(ip) >= self.max_per_ip:
            return "per_ip"
        return None

    def add(self, ip: str | None) -> None:
        self.counts.add(ip or "", 1)

    def remove(self, ip: str | None) -> None:
        self.counts.add(ip or "", -1)


def _value(cap: int | str) -> int:
    return getattr(settings, cap) if isinstance(cap, str) else cap


async def drain(tasks: set[asyncio.Task], timeout: float) -> set[asyncio.Task]:
    """Wait up to `timeout` seconds for these sessions to end; the ones still running."""
    if not tasks:
        return set()
    _done, pending = await asyncio.wait(set(tasks), timeout=timeout)
    return pending


class Connection(Protocol):
    peer_ip: str | None
    signed_in: tuple[int, int] | None

    def sign_out(self) -> None: ...

    def shutdown(self) -> None: ...


class Sessions:
    """A listener family's open connections (under its caps) and their session tasks."""

    def __init__(self, caps: Caps, listener: Callable[[Any], str]) -> None:
        self.caps = caps
        self.listener = listener  # a connection's listener name, for the connection metric
        self.connections: set[Any] = set()
        self.tasks: set[asyncio.Task] = set()
        self._unsubscribe: Callable[[], None] | None = None

    def admit(self, connection: Connection) -> bool:
        if connection in self.connections:
            return True
        if self.caps.refusal(connection.peer_ip) is not None:
            return False
        self.connections.add(connection)
        self.caps.add(connection.peer_ip)
        metrics.connection_opened(self.listener(connection))
        return True

    def leave(self, connection: Connection) -> None:
        if connection in self.connections:
            self.connections.discard(connection)
            self.caps.remove(connection.peer_ip)

    def hear_sign_outs(self) -> None:
        """End the sessions of a mailbox whose password changed (the SIGN_OUT change event,
        from any process) that signed in before the change."""
        from mailboxes import events

        loop = asyncio.get_running_loop()

        def heard(event: events.ChangeEvent) -> None:
            if event.kind != events.SIGN_OUT or loop.is_closed():
                return
            try:
                loop.call_soon_threadsafe(self.sign_out, event.mailbox_id, event.modseq)
            except RuntimeError:
                pass  # the loop closed meanwhile

        self._unsubscribe = events.subscribe(heard)

    def sign_out(self, mailbox_id: int, changed_ns: int) -> None:
        for connection in list(self.connections):
            signed_in = connection.signed_in
            if signed_in is not None and signed_in[0] == mailbox_id and signed_in[1] <= changed_ns:
                connection.sign_out()

    def stop_hearing(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def track(self, task: asyncio.Task) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self, timeout: float) -> set[asyncio.Task]:
        return await drain(self.tasks, timeout)


class Served:
    """One listening server of a family as the runner sees it: close() stops accepting and
    asks every open connection of the family to end; wait_closed() lets them finish."""

    grace = 10.0  # seconds the sessions get to end after close()

    def __init__(self, server: asyncio.Server, sessions: Sessions) -> None:
        self.server = server
        self.sessions = sessions

    @property
    def sockets(self):
        return self.server.sockets

    def close(self) -> None:
        self.server.close()
        self.sessions.stop_hearing()
        for connection in list(self.sessions.connections):
            connection.shutdown()

    async def wait_closed(self) -> None:
        await self.sessions.drain(self.grace)
        await self.server.wait_closed()
