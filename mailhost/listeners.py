"""What a listener family's `start()` returns: named listeners the runner can stop."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Any

# A client that vanishes without FIN or RST (a phone losing signal) leaves a half-open session
# behind, holding its POP3 maildrop or an IMAP connection slot until the autologout (10 and
# 30 minutes). TCP keepalive finds such a peer within two minutes of silence: probes after
# KEEPALIVE_IDLE seconds, KEEPALIVE_INTERVAL apart, given up after KEEPALIVE_PROBES unanswered.
# A live client answers the probes from its kernel, so an idle session is not cut.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_PROBES = 60, 10, 6
KEEPALIVE_LISTENERS = frozenset({"imap", "imaps", "pop3", "pop3s", "managesieve"})


@dataclass
class Listener:
    # "smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "managesieve",
    # "web", "worker"
    name: str
    server: Any  # asyncio.Server, or anything with close() and async wait_closed()

    def __post_init__(self) -> None:
        if self.name in KEEPALIVE_LISTENERS:
            for sock in getattr(self.server, "sockets", None) or ():
                keep_alive(sock)

    @property
    def port(self) -> int | None:
        if hasattr(self.server, "port"):
            return self.server.port
        sockets = getattr(self.server, "sockets", None)
        return sockets[0].getsockname()[1] if sockets else None

    def close(self) -> None:
        self.server.close()

    async def wait_closed(self) -> None:
        result = self.server.wait_closed()
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            await result


def keep_alive(sock: Any) -> None:
    """TCP keepalive on a listening socket; the sockets it accepts inherit it (Linux)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)
