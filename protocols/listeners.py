"""What a listener family's `start()` returns: named listeners the runner can stop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any


@dataclass
class Listener:
    # "smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "web", "worker"
    name: str
    server: Any  # asyncio.Server, or anything with close() and async wait_closed()

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
