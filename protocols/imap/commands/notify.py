"""NOTIFY (RFC 5465): NOTIFY SET [STATUS] (filter events)... and NOTIFY NONE; the state and
the responses live in protocols/imap/notify.py."""

from __future__ import annotations

from protocols.imap import notify
from protocols.imap import parser as p
from protocols.imap.commands.mailbox import status_line
from protocols.imap.session import Session, db


async def notify_command(session: Session, command: p.Notify) -> None:
    session.server.unnotify(session)
    session.notify_state = None
    if command.groups is None:  # NOTIFY NONE
        await session.finish(command)
        return
    state = await db(notify.snapshot, session.mailbox.id, command.groups)
    selected_id = session.selected.folder_id if session.selected is not None else None
    if command.status:
        rows = await db(notify.initial_status, session.mailbox.id, state, selected_id)
        out = [
            status_line(
                session, folder, notify.status_items(state.events_for(name)), None, None, name
            )
            for name, folder in rows
        ]
        if out:
            await session.send(b"".join(out))
    session.notify_state = state
    session.server.notify_register(session, state.owners)
    await session.finish(command)


HANDLERS = {"NOTIFY": notify_command}
