"""The SMTP listener family: MTA on MAILHOST_SMTP_PORT, MSA on MAILHOST_SUBMISSION_PORT
(STARTTLS) and MAILHOST_SUBMISSIONS_PORT (implicit TLS, RFC 8314), on the running loop.

    listeners = await start()   # [Listener("smtp"), Listener("submission"), Listener("submissions")]

Closing a listener stops accepting at once; `wait_closed()` then tells idle connections 421
and lets transactions in flight finish, for at most MAILHOST_SHUTDOWN_GRACE seconds.
"""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings

from mailhost.listeners import Listener
from mailhost.tls import server_context
from protocols.common.listener import Caps, Served, drain, listen
from protocols.smtp import databuffer, handler, replies
from protocols.smtp.replies import Reply
from protocols.smtp.session import Mode, SMTPSession

logger = logging.getLogger("mailhost.smtp")

# The listeners and the settings naming their ports (the supervisor of several worker
# processes opens them once: mailhost/processes.py).
PORTS = {
    "smtp": "MAILHOST_SMTP_PORT",
    "submission": "MAILHOST_SUBMISSION_PORT",
    "submissions": "MAILHOST_SUBMISSIONS_PORT",
}


_REFUSALS = {
    "total": replies.S421_TOO_MANY_CONNECTIONS,
    "per_ip": replies.S421_TOO_MANY_FROM_ADDRESS,
}


class ConnectionRegistry:
    """Open sessions of the three ports. Port 25 (anyone) and submission (587 and 465, users)
    have caps of their own, so idle strangers on 25 cannot keep users from sending. When port
    25 holds more than `busy_fraction` of its cap, its sessions that have not started a
    transaction get `busy_timeout` seconds for their next command."""

    def __init__(
        self,
        *,
        max_total: int,
        max_per_ip: int,
        submission_max_total: int | None = None,
        submission_max_per_ip: int | None = None,
        busy_fraction: float = 1.0,
        busy_timeout: float = 0,
    ) -> None:
        self.sessions: set[SMTPSession] = set()
        self.mta = Caps("smtp", max_total=max_total, max_per_ip=max_per_ip)
        self.submission = Caps(
            "submission",
            max_total=submission_max_total or max_total,
            max_per_ip=submission_max_per_ip or max_per_ip,
        )
        self.busy_above = int(max_total * busy_fraction) if busy_timeout else max_total
        self.busy_timeout = busy_timeout
        self.listeners = 0  # open listeners of the family; the last one stops the workers

    def pool(self, mode: Mode) -> Caps:
        return self.submission if mode.is_submission else self.mta

    @property
    def busy(self) -> bool:
        return self.mta.count > self.busy_above

    def add(self, session: SMTPSession) -> Reply | None:
        """Register a new session, or return the 421 that refuses it."""
        pool = self.pool(session.mode)
        refusal = pool.refusal(session.client_ip)
        if refusal is not None:
            return _REFUSALS[refusal]
        was_busy = self.busy
        self.sessions.add(session)
        pool.add(session.client_ip)
        if self.busy and not was_busy:
            logger.warning(
                "smtp busy connections=%d cap=%d idle_timeout=%ss",
                self.mta.count,
                self.mta.max_total,
                self.busy_timeout,
            )
            for other in self.sessions:
                if other is not session:
                    other.idle_deadline_shortened()
        return None

    def remove(self, session: SMTPSession) -> None:
        if session in self.sessions:
            self.sessions.discard(session)
            self.pool(session.mode).remove(session.client_ip)


class SMTPServer(Served):
    """One listening socket; what the runner closes."""

    def __init__(self, server: asyncio.Server, registry: ConnectionRegistry, mode: Mode) -> None:
        self.server = server
        self.registry = registry
        self.mode = mode

    def close(self) -> None:
        self.server.close()

    async def wait_closed(self) -> None:
        # Drain first: from Python 3.12 on, Server.wait_closed() waits for every connection.
        sessions = [s for s in self.registry.sessions if s.mode is self.mode]
        for session in sessions:
            session.begin_drain()
        pending = {asyncio.ensure_future(s.closed.wait()) for s in sessions}
        if pending:
            for future in await drain(pending, settings.MAILHOST_SHUTDOWN_GRACE):
                future.cancel()
            for session in sessions:
                if not session.closed.is_set() and session.transport is not None:
                    logger.warning("%s dropped at shutdown mid-transaction", session.client_ip)
                    session.transport.abort()
        await self.server.wait_closed()
        self.registry.listeners -= 1
        if self.registry.listeners == 0:
            await asyncio.get_running_loop().run_in_executor(None, handler.executor_shutdown)


async def start() -> list[Listener]:
    loop = asyncio.get_running_loop()
    # Generating the self-signed certificate the first time takes a moment: not on the loop.
    tls = await loop.run_in_executor(None, server_context)
    await loop.run_in_executor(None, databuffer.sweep_stale)
    registry = ConnectionRegistry(
        max_total=settings.MAILHOST_MAX_CONNECTIONS,
        max_per_ip=settings.MAILHOST_MAX_CONNECTIONS_PER_IP,
        submission_max_total=settings.MAILHOST_SUBMISSION_MAX_CONNECTIONS,
        submission_max_per_ip=settings.MAILHOST_SUBMISSION_MAX_CONNECTIONS_PER_IP,
        busy_fraction=settings.MAILHOST_SMTP_BUSY_FRACTION,
        busy_timeout=settings.MAILHOST_SMTP_BUSY_COMMAND_TIMEOUT,
    )
    hooks = handler.Handler()
    listeners = []
    plan = (
        (Mode.MTA, settings.MAILHOST_SMTP_PORT, None),
        (Mode.SUBMISSION, settings.MAILHOST_SUBMISSION_PORT, None),
        (Mode.SUBMISSIONS, settings.MAILHOST_SUBMISSIONS_PORT, tls),
    )
    try:
        for mode, port, implicit_tls in plan:

            def factory(mode: Mode = mode) -> SMTPSession:
                return SMTPSession(hooks, mode=mode, registry=registry, tls_context=tls, loop=loop)

            server = await listen(factory, name=mode.value, port=port, ssl=implicit_tls)
            listeners.append(Listener(mode.value, SMTPServer(server, registry, mode)))
            registry.listeners += 1
            logger.info(
                "%s listening on %s:%s",
                mode.value,
                settings.MAILHOST_BIND,
                server.sockets[0].getsockname()[1],
            )
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    return listeners
