"""IDLE (RFC 2177, RFC 9051 6.3.13): updates at once until the client sends DONE."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from protocols.imap import parser as p
from protocols.imap import responses as r
from protocols.imap import untagged as u

if TYPE_CHECKING:
    from protocols.imap.session import Session

# IDLE looks at the database this often even without change events.
POLL_SECONDS = 60


async def idle(session: Session, command: p.Simple) -> r.Reply | u.Done:
    await session.send(r.CONTINUE_IDLE)
    session.woken = False
    if session.selected is not None:
        session.selected.dirty = True
    await session.sync_updates(allow_expunge=True)
    deadline = asyncio.get_running_loop().time() + session.timeout
    while True:
        line, changed, quiet = await session.idle_wait(deadline, POLL_SECONDS)
        if line is not None:
            if line.strip().upper() == b"DONE":
                return r.OK_IDLE_DONE
            return u.Done(r.Reply("BAD", "Expected DONE"), updates=False)
        if quiet and session.selected is not None:
            # No event for a while: look anyway, in case one was lost (Redis restart).
            session.selected.dirty = True
            await session.sync_updates(allow_expunge=True)
        if changed:
            await session.sync_updates(allow_expunge=True)
