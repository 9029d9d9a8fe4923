"""Message commands: APPEND STORE COPY MOVE EXPUNGE, UID EXPUNGE (UIDPLUS, CONDSTORE, MOVE)."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from django.conf import settings

from mailboxes import selectors, services
from mailboxes.exceptions import NoPermission
from mailboxes.models import ACL_RIGHTS, Folder
from protocols.imap import mime
from protocols.imap import parser as p
from protocols.imap import responses as r
from protocols.imap import untagged as u
from protocols.imap.errors import CommandError
from protocols.imap.flags import flags_of
from protocols.imap.worker import db, together

if TYPE_CHECKING:
    from protocols.imap.session import Session

logger = logging.getLogger(__name__)


def folder_ref(session: Session) -> Folder:
    sel = session.selected
    return Folder(
        id=sel.folder_id,
        mailbox_id=sel.owner_id,
        name=sel.name,
        uidvalidity=sel.uidvalidity,
    )


def allowed_flags(flags, rights: str) -> list[str]:
    """The flags the rights let one set (RFC 4314 4: on APPEND and COPY the others are
    dropped silently): \\Seen needs "s", \\Deleted "t", any other "w"."""
    if rights == ACL_RIGHTS:
        return list(flags)
    return [f for f in flags if _flag_right(f) in rights]


def _flag_right(flag: str) -> str:
    lowered = flag.lower()
    return "s" if lowered == "\\seen" else "t" if lowered == "\\deleted" else "w"


def _append_to(mailbox_id: int, name: str, messages) -> tuple[Folder | None, list[int]]:
    """Find the folder and file the messages (all or none), in one worker hop; (None, [])
    when there is no such folder. NoPermission without the "i" right (RFC 4314 4)."""
    access = selectors.folder_access(mailbox_id, name)
    if access is None:
        return None, []
    if "i" not in access.rights:
        raise NoPermission(name)
    folder = access.folder
    if access.shared:
        messages = [
            dataclasses.replace(m, flags=allowed_flags(m.flags, access.rights)) for m in messages
        ]
    if len(messages) == 1:
        message = messages[0]
        stored = [
            services.message_append(
                folder=folder,
                raw=message.data,  # as sent: NUL octets too (BODY[] shows them as 0x80)
                flags=message.flags,
                internal_date=message.date,
                mime_cache=_structure_cache(message.data),
            )
        ]
    else:
        # MULTIAPPEND (RFC 3502): all of them or none
        stored = services.messages_append(
            folder=folder, messages=[(m.data, m.flags, m.date) for m in messages]
        )
    return folder, [message.uid for message in stored]


def _structure_cache(raw: bytes) -> dict | None:
    """The cache FETCH would write on first reading the message's structure (ENVELOPE,
    BODYSTRUCTURE, sections), made while its bytes are at hand: its first FETCH then neither
    reads the blob nor writes the row. Not for messages FETCH streams (it reads as little of
    those as it can), nor for one the parser fails on (FETCH tries again, as before)."""
    if len(raw) >= settings.MAILHOST_BLOB_STREAM_MIN:
        return None
    try:
        return {"imap": mime.analyze(raw)}
    except Exception:
        logger.exception("imap structure of an appended message failed")
        return None


async def append(session: Session, command: p.Append) -> r.Reply | u.Done:
    # RFC 9051 6.3.12, MULTIAPPEND RFC 3502, APPENDLIMIT RFC 7889, APPENDUID RFC 4315
    for message in command.messages:
        if len(message.data) > settings.MAILHOST_MAX_MESSAGE_SIZE:
            raise CommandError(r.NO_TOO_BIG)
        if not message.data:
            raise CommandError(r.NO_CANNOT.with_text("Empty message"))
    # With a folder selected, its changes (this message's EXISTS when it is the target) are
    # read in the same hop.
    folder, uids = await (session.db_and_changes if session.selected is not None else db)(
        _append_to, session.mailbox.id, command.mailbox, command.messages
    )
    if folder is None:
        raise CommandError(r.NO_TRYCREATE)
    code = f"APPENDUID {folder.uidvalidity} {r.sequence_text(uids)}"
    return r.Reply("OK", "APPEND completed", code)


async def store(session: Session, command: p.Store) -> r.Reply | u.Done:
    # RFC 9051 6.4.6; UNCHANGEDSINCE and MODIFIED RFC 7162 3.1.3
    sel = session.selected
    if sel.readonly:
        raise CommandError(r.NO_READ_ONLY)
    for flag in command.flags:  # RFC 4314 4: \\Seen needs "s", \\Deleted "t", others "w"
        if flag.lower() != "\\recent":
            sel.require(_flag_right(flag))
    if command.mode == "replace" and sel.rights != ACL_RIGHTS:
        # FLAGS (replace) clears every other flag too: every right it touches is needed.
        for right in "stw":
            sel.require(right)
    uids = await session.resolve(command.sequence, uid=command.uid)
    if command.unchangedsince is not None:
        session.enable_condstore()
    result = services.StoreResult()
    if uids:
        store = services.messages_store_flags
        # Flags are not mail: shared with other sessions' writes, not synced. A new \\Answered
        # trains on the replies inside a transaction it is part of (see the service): alone.
        if not any(f.lower() == "\\answered" for f in command.flags):
            store = together(store, synced=False)
        result = await session.db_and_changes(
            store,
            folder=folder_ref(session),
            uids=uids,
            flags=[f for f in command.flags if f.lower() != "\\recent"],
            mode=command.mode,
            unchangedsince=command.unchangedsince,
            reader=sel.reader,
        )
    out = []
    # Keywords a FLAGS response must announce first (RFC 9051 7.3.5): those stored, and any
    # another session set on these messages that the FETCH lines below show.
    shown = set(command.flags)
    changed = {uid: (flags, modseq) for uid, flags, modseq in result.changed}
    for uid, (_flags, modseq) in changed.items():
        sel.reported[uid] = modseq
    if not command.silent or session.condstore:
        unchanged = [u for u in uids if u not in changed and u not in result.modified]
        rows = (
            await db(selectors.message_flag_rows, sel.folder_id, unchanged, reader=sel.reader)
            if unchanged and not command.silent
            else []
        )
        current = {row[0]: (flags_of(row), row[1]) for row in rows}
        current.update(changed)
        for uid in uids:
            if uid not in current:
                continue
            if command.silent and uid not in changed:
                continue
            flags, modseq = current[uid]
            seq = sel.seq_of(uid)
            if seq is None:
                continue
            sel.reported[uid] = max(sel.reported.get(uid, 0), modseq)
            # RFC 9586 3.3: `* uid UIDFETCH (...)` with UIDONLY, no UID item
            number, verb = session.fetch_form(uid, seq)
            uid_item = uid if (command.uid or session.qresync) and not session.uidonly else None
            if command.silent:
                # RFC 7162 3.1.3: .SILENT still reports the new MODSEQ (with the UID under
                # QRESYNC, 3.2.4, as every FETCH not asked for).
                out.append(u.FetchFlags(number, None, uid=uid_item, modseq=modseq, verb=verb))
                continue
            shown.update(flags)
            out.append(
                u.FetchFlags(
                    number,
                    sel.flag_names(uid, flags, rev2=session.rev2),
                    uid=uid_item,
                    modseq=modseq if session.condstore else None,
                    verb=verb,
                )
            )
    await session.respond(*sel.keyword_update(shown), *out)
    reply = r.OK_COMPLETED
    if result.modified:
        numbers = result.modified if command.uid else [sel.seq_of(u) for u in result.modified]
        reply = r.Reply(
            "OK", "Conditional STORE failed", f"MODIFIED {r.sequence_text(n for n in numbers if n)}"
        )
    return reply


async def _target(session: Session, name: str) -> Folder:
    access = await db(selectors.folder_access, session.mailbox.id, name)
    if access is None:
        raise CommandError(r.NO_TRYCREATE)
    if "i" not in access.rights:  # RFC 4314 4: COPY and MOVE into a folder need "i"
        raise CommandError(r.NO_PERMISSION)
    return access.folder


async def copy(session: Session, command: p.Copy) -> r.Reply | u.Done:
    # RFC 9051 6.4.7 (COPY) and 6.4.8 / RFC 6851 (MOVE); COPYUID RFC 4315
    sel = session.selected
    uids = await session.resolve(command.sequence, uid=command.uid)
    target = await _target(session, command.mailbox)
    moving = command.name == "MOVE"
    if moving and sel.readonly:
        raise CommandError(r.NO_READ_ONLY)
    if moving:  # RFC 6851 3.3 / RFC 4314: MOVE takes the messages away: "t" and "e"
        sel.require("t")
        sel.require("e")
    if not uids:
        return r.Reply("OK", "No messages")
    service = services.messages_move if moving else services.messages_copy
    # Between two mailboxes only through a shared folder, its rights checked above.
    pairs = await db(
        service,
        source=folder_ref(session),
        uids=uids,
        target=target,
        shared=True,
        reader=sel.reader,
    )
    code = None
    if pairs:
        code = (
            f"COPYUID {target.uidvalidity} {r.sequence_text(s for s, _ in pairs)} "
            f"{r.sequence_text(d for _, d in pairs)}"
        )
        # sequence_text sorts; source and destination UIDs both ascend, so pairs stay aligned
    if target.id == sel.folder_id:
        sel.dirty = True
    if moving:
        out = []
        if code:
            out.append(r.Reply("OK", "Moved", code))
        out.extend(sel.expunge([s for s, _ in pairs], vanished=session.vanished, rev2=session.rev2))
        await session.respond(*out)
        return r.Reply("OK", "MOVE completed")
    return r.Reply("OK", "COPY completed", code)


NO_NO_SUCH_MESSAGE = r.Reply("NO", "No such message", "NONEXISTENT")


async def replace(session: Session, command: p.Replace) -> r.Reply | u.Done:
    # RFC 8508 3: APPEND to the mailbox and expunge the message, as one
    sel = session.selected
    if sel.readonly:
        raise CommandError(r.NO_READ_ONLY)
    message = command.message
    if len(message.data) > settings.MAILHOST_MAX_MESSAGE_SIZE:
        raise CommandError(r.NO_TOO_BIG)
    if not message.data:
        raise CommandError(r.NO_CANNOT.with_text("Empty message"))
    uids = await session.resolve(
        p.SequenceSet(((command.number, command.number),)), uid=command.uid
    )
    if not uids:
        raise CommandError(NO_NO_SUCH_MESSAGE)
    target = await _target(session, command.mailbox)
    stored = await session.db_and_changes(
        services.message_replace,
        source=folder_ref(session),
        uid=uids[0],
        target=target,
        raw=message.data,
        flags=message.flags,
        internal_date=message.date,
    )
    # RFC 8508 3.3: APPENDUID untagged, then the old message's EXPUNGE
    await session.respond(
        r.Reply("OK", "Replacement message ready", f"APPENDUID {target.uidvalidity} {stored.uid}"),
        *sel.expunge(uids, vanished=session.vanished, rev2=session.rev2),
    )
    return r.Reply("OK", "REPLACE completed")


# Not mail (mailboxes/transactions.py): shared with other sessions' writes, synced only when
# it removes blob files (sync_this_transaction makes the shared transaction synced).
EXPUNGE = together(services.messages_expunge, synced=False)


async def expunge(session: Session, command) -> r.Reply | u.Done:
    # RFC 9051 6.4.3; UID EXPUNGE RFC 4315 2.1
    sel = session.selected
    if sel.readonly:
        raise CommandError(r.NO_READ_ONLY)
    sel.require("e")  # RFC 4314 4
    await session.sync_updates(allow_expunge=True)
    if isinstance(command, p.UidExpunge):
        wanted = await session.resolve(command.sequence, uid=True)
        gone = (
            await session.db_and_changes(EXPUNGE, folder=folder_ref(session), uids=wanted)
            if wanted
            else []
        )
    else:
        # Only messages the client was told of go (arrivals it has not seen in an EXISTS
        # stay): its view is every message below its UIDNEXT, a bound, not the whole map.
        gone = await session.db_and_changes(
            EXPUNGE, folder=folder_ref(session), below_uid=sel.view_uidnext
        )
    if gone:
        await session.sequence_map()  # the view as it was, expunged messages included
    await session.respond(*sel.expunge(gone, vanished=session.vanished, rev2=session.rev2))
    return r.OK_COMPLETED
