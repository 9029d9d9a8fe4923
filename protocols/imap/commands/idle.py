"""IDLE (RFC 2177, RFC 9051 6.3.13): updates at once until the client sends DONE."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from protocols.imap import parser as p
from protocols.imap import responses as r
from protocols.imap import untagged as u
from protocols.imap.errors import ConnectionDone

if TYPE_CHECKING:
    from protocols.imap.session import Session

# IDLE looks at the database this often even without change events.
POLL_SECONDS = 60


async def idle(session: Session, command: p.Simple) -> u.Waiting:
    await session.send(r.CONTINUE_IDLE)
    session.woken = False
    if session.selected is not None:
        session.selected.dirty = True
    await session.sync_updates(allow_expunge=True)
    deadline = asyncio.get_running_loop().time() + session.timeout
    return await _next(session, u.Waiting(command, deadline, POLL_SECONDS, _woke))


async def _woke(session: Session, waiting: u.Waiting) -> r.Reply | u.Done | u.Waiting:
    """After the session's wait: the client's bytes into the parser, the changes a change
    event (or, with neither, POLL_SECONDS of quiet) tells of out to the client."""
    came = session.reader.ready() or session.woken
    changed, session.woken = session.woken, False
    if session.reader.ready():
        session.parser.feed(await session.read_ready())
    if not came and session.selected is not None:
        # No event for a while: look anyway, in case one was lost (Redis restart).
        session.selected.dirty = True
        await session.sync_updates(allow_expunge=True)
    if changed:
        await session.sync_updates(allow_expunge=True)
    return await _next(session, waiting)


async def _next(session: Session, waiting: u.Waiting) -> r.Reply | u.Done | u.Waiting:
    """DONE (or another line) ends IDLE; else BYE when the autologout time has passed or
    the server shuts down (RFC 9051 7.1.5: at once while idling); else wait again."""
    line = session.parser.next_line()
    if line is not None:
        if line.strip().upper() == b"DONE":
            return r.OK_IDLE_DONE
        return u.Done(r.Reply("BAD", "Expected DONE"), updates=False)
    if waiting.deadline - asyncio.get_running_loop().time() <= 0:
        await session.respond(r.BYE_TIMEOUT)
        raise ConnectionDone()
    if session.shutting_down:
        await session.bye_for_shutdown()
    return waiting
