"""NOTIFY (RFC 5465): NOTIFY SET [STATUS] (filter events)... and NOTIFY NONE; the state and
the responses live in protocols/imap/notify.py. Also what the session sends between commands
for the events NOTIFY registered (flush, new_messages_fetch: the session reaches them through
commands.UPDATES)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from protocols.imap import notify
from protocols.imap import parser as p
from protocols.imap import responses as r
from protocols.imap import untagged as u
from protocols.imap.commands.fetchsearch import fetch_responses
from protocols.imap.commands.mailbox import status_response
from protocols.imap.errors import CommandError
from protocols.imap.worker import db

if TYPE_CHECKING:
    from protocols.imap.session import Session

logger = logging.getLogger("protocols.imap.session")


async def notify_command(session: Session, command: p.Notify) -> r.Reply | u.Done:
    session.set_notify(None)
    if command.groups is None:  # NOTIFY NONE
        return r.OK_COMPLETED
    state = await db(notify.snapshot, session.mailbox.id, command.groups)
    selected_id = session.selected.folder_id if session.selected is not None else None
    if command.status:
        rows = await db(notify.initial_status, session.mailbox.id, state, selected_id)
        await session.respond(
            *(
                status_response(
                    session, folder, notify.status_items(state.events_for(name)), None, None, name
                )
                for name, folder in rows
            )
        )
    session.set_notify(state)
    return r.OK_COMPLETED


async def flush(session: Session) -> None:
    """Send what NOTIFY's pending events changed outside the selected folder."""
    state = session.notify_state
    events, state.pending = state.pending, []
    selected_id = session.selected.folder_id if session.selected is not None else None
    status, lists, metadata = await db(
        notify.read_changes, session.mailbox.id, state, events, selected_id
    )
    out = [notify.list_response(*entry, utf8=session.utf8) for entry in lists]
    for name, folder in status:
        items = notify.status_items(state.events_for(name))
        out.append(status_response(session, folder, items, None, None, name))
    out += [u.MetadataChanged(name, tuple(entries), session.utf8) for name, entries in metadata]
    await session.respond(*out)


async def new_messages_fetch(session: Session, uids: list[int]) -> None:
    """RFC 5465 5.2: MessageNew's FETCH attributes, after the EXISTS (no tagged reply)."""
    ranges = tuple((uid, uid) for uid in uids)
    items = session.notify_state.selected_fetch
    command = p.Fetch("*", "FETCH", True, p.SequenceSet(ranges), (), fetch_items=items)
    try:
        await fetch_responses(session, command)
    except CommandError as exc:
        logger.info("notify fetch refused uids=%d reason=%s", len(uids), exc.reply.text)


HANDLERS = {"NOTIFY": notify_command}
