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


async def idle(session: Session, command: p.Simple) -> r.Reply | u.Done:
    await session.send(r.CONTINUE_IDLE)
    session.wakeup.clear()
    if session.selected is not None:
        session.selected.dirty = True
    await session.sync_updates(allow_expunge=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + session.timeout
    wake_task: asyncio.Task | None = None
    try:
        while True:
            line = session.parser.next_line()
            if line is not None:
                if line.strip().upper() == b"DONE":
                    break
                return u.Done(r.Reply("BAD", "Expected DONE"), updates=False)
            if session.read_task is None:
                session.read_task = asyncio.ensure_future(session.reader.read(65536))
            if wake_task is None:
                wake_task = asyncio.ensure_future(session.wakeup.wait())
            remaining = deadline - loop.time()
            if remaining <= 0:
                await session.respond(r.BYE_TIMEOUT)
                raise ConnectionDone()
            if session.shutting_down:
                await session.bye_for_shutdown()
            session.awaiting_command = True  # a shutdown may say BYE now
            try:
                done, _ = await asyncio.wait(
                    {session.read_task, wake_task},
                    timeout=min(remaining, POLL_SECONDS),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                session.awaiting_command = False
            if not done and session.selected is not None:
                # No event for a while: look anyway, in case one was lost (Redis restart).
                session.selected.dirty = True
                await session.sync_updates(allow_expunge=True)
            if wake_task in done:
                wake_task = None
                session.wakeup.clear()
                await session.sync_updates(allow_expunge=True)
            if session.read_task.done():
                task, session.read_task = session.read_task, None
                data = task.result()
                if not data:
                    raise ConnectionDone()
                session.parser.feed(data)
    finally:
        if wake_task is not None:
            wake_task.cancel()
    return r.OK_IDLE_DONE
