"""SELECT EXAMINE CLOSE UNSELECT CHECK, with CONDSTORE and QRESYNC (RFC 7162)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings

from mailboxes import selectors, services
from mailboxes.models import Folder
from protocols.imap import objectid
from protocols.imap import parser as p
from protocols.imap import responses as r
from protocols.imap import untagged as u
from protocols.imap.errors import CommandError
from protocols.imap.flags import FLAGS_LINE_BASE, flags_of
from protocols.imap.worker import db

if TYPE_CHECKING:
    from protocols.imap.session import Session


@dataclass
class SelectView:
    """What SELECT/EXAMINE reads, in one worker hop (select_view)."""

    folder: Folder
    readonly: bool
    recent: tuple[int, int]  # [first, uidnext): the UIDs that are \Recent for this session
    recent_at_select: int  # how many of them are in the view
    first_unseen: tuple[int, int] | None  # (UID, sequence number) when asked for
    access: selectors.FolderAccess | None = None


# RFC 4314 4: a folder the session may change nothing in is selected read-only.
WRITE_RIGHTS = frozenset("stwe")


def select_view(
    mailbox_id: int, name: str, *, readonly: bool, first_unseen: bool
) -> SelectView | None:
    """The folder row, its \\Recent claim (RFC 3501 2.3.2) and SELECT's counts, in one
    worker hop; None when there is no such folder (or one shared without the "r" right:
    then a view without a folder's counts, which SELECT refuses)."""
    access = selectors.folder_access(mailbox_id, name)
    if access is None:
        return None
    folder = access.folder
    if "r" not in access.rights:
        return SelectView(folder, True, (0, 0), 0, None, access)
    readonly = readonly or not (WRITE_RIGHTS & set(access.rights))
    first, uidnext = folder.first_recent_uid, folder.uidnext
    if not readonly and first < uidnext:
        # EXAMINE shows \Recent without taking it from the next read-write session.
        first, uidnext = services.folder_claim_recent(folder=folder)
    # Claimed UIDs from folder.uidnext on are not in the view yet: sync_updates marks them
    # when it announces them.
    recent_high = min(uidnext, folder.uidnext)
    recent_at_select = 0
    if first < recent_high:
        recent_at_select = selectors.folder_view_count(
            folder.id, folder.highestmodseq, first, recent_high
        )
    unseen = None
    if first_unseen and folder.unseen_count:
        unseen = selectors.folder_first_unseen(
            folder.id,
            folder.highestmodseq,
            folder.uidnext,
            folder.message_count,
            reader=access.reader,
        )
    return SelectView(folder, readonly, (first, uidnext), recent_at_select, unseen, access)


def _qresync_data(
    folder_id: int, params: p.QresyncParams, uids: list[int], reader: int | None = None
):
    """VANISHED (EARLIER) UIDs and changed flag rows since the client's MODSEQ."""
    vanished = selectors.folder_vanished_since(folder_id, params.modseq)
    if params.known_uids is not None:
        known = params.known_uids.resolve(uids[-1] if uids else 0)
        vanished = [u for u in vanished if any(lo <= u <= hi for lo, hi in known)]
    rows = selectors.message_flag_rows(folder_id, changed_since=params.modseq, reader=reader)
    return vanished, rows


def permanent_flags(keywords: set[str]) -> r.Reply:
    """RFC 9051 7.1: `\\*` says new keywords may be created; not when the folder holds as
    many as MAILHOST_IMAP_MAX_KEYWORDS_PER_FOLDER (as far as this process knows)."""
    flags = " ".join(FLAGS_LINE_BASE)
    if len(keywords) < settings.MAILHOST_IMAP_MAX_KEYWORDS_PER_FOLDER:
        flags += " \\*"
    return r.Reply("OK", "Flags permitted", f"PERMANENTFLAGS ({flags})")


async def select(session: Session, command: p.Select) -> r.Reply | u.Done:
    # RFC 9051 6.3.2 / 6.3.3
    if command.qresync is not None and not session.qresync:
        raise CommandError(r.BAD_CONDSTORE_OFF)
    if session.uidonly and command.qresync is not None and command.qresync.seq_match:
        raise CommandError(r.BAD_UID_REQUIRED)  # RFC 9586 3: no sequence match data
    if session.selected is not None:
        previous = True
        session.unselect()
    else:
        previous = False
    if command.condstore:
        session.condstore = True
    readonly = command.name == "EXAMINE"
    view = await db(
        select_view,
        session.mailbox.id,
        command.mailbox,
        readonly=readonly,
        # RFC 3501 6.3.1 requires [UNSEEN n] (RFC 9051 dropped it): counted, not mapped.
        # It is a sequence number, which UIDONLY never sends (RFC 9586 3).
        first_unseen=not session.rev2 and not session.uidonly,
    )
    if previous:
        # RFC 7162 3.2.11 / RFC 9051 7.1: the previous mailbox is closed.
        await session.respond(r.OK_CLOSED)
    if view is None:
        raise CommandError(r.NO_NONEXISTENT)
    if view.access is not None and "r" not in view.access.rights:
        raise CommandError(r.NO_PERMISSION)  # RFC 4314 4: SELECT and EXAMINE need "r"
    folder = view.folder
    readonly = view.readonly
    sel = await session.select(view)
    out = [sel.flags_response()]
    if readonly:
        out.append(r.Reply("OK", "No permanent flags permitted", "PERMANENTFLAGS ()"))
    else:
        out.append(permanent_flags(sel.keywords))
    out.append(u.Exists(sel.exists))
    if not session.rev2:
        out.append(u.Recent(sel.recent_count))
        first_unseen = view.first_unseen
        if first_unseen is not None and 1 <= first_unseen[1] <= sel.exists:
            out.append(r.Reply("OK", "First unseen", f"UNSEEN {first_unseen[1]}"))
    out.append(r.Reply("OK", "UIDs valid", f"UIDVALIDITY {folder.uidvalidity}"))
    out.append(r.Reply("OK", "Predicted next UID", f"UIDNEXT {folder.uidnext}"))
    out.append(r.Reply("OK", "Highest", f"HIGHESTMODSEQ {folder.highestmodseq}"))
    # RFC 8474 4.2
    out.append(r.Reply("OK", "Ok", f"MAILBOXID ({objectid.mailbox_id(folder.id)})"))
    if session.rev2:
        out.append(u.ListItem("LIST", (), "/", sel.name, utf8=True))
    if command.qresync is not None and command.qresync.uidvalidity == folder.uidvalidity:
        uids = await session.sequence_map()
        vanished, rows = await db(_qresync_data, folder.id, command.qresync, uids, sel.reader)
        if vanished:
            out.append(u.Vanished(vanished, earlier=True))
        for row in rows:
            seq = sel.seq_of(row[0])
            if seq:
                number, verb = session.fetch_form(row[0], seq)
                out.append(
                    u.FetchFlags(
                        number,
                        sel.flag_names(row[0], flags_of(row), rev2=session.rev2),
                        uid=None if session.uidonly else row[0],
                        modseq=row[1],
                        verb=verb,
                    )
                )
    reply = r.OK_SELECT_RW
    if readonly:
        reply = r.OK_EXAMINE_RO if command.name == "EXAMINE" else r.OK_SELECT_RO
    # The untagged responses and the reply in one write; no updates yet (the view is new).
    return u.Done(reply, before=tuple(out), updates=False)


async def close(session: Session, command: p.Simple) -> r.Reply | u.Done:
    # RFC 9051 6.4.1: expunge silently unless read-only, then leave the selected state.
    sel = session.selected
    if not sel.readonly and "e" in sel.rights:  # RFC 4314 4: CLOSE expunges only with "e"
        folder = Folder(pk=sel.folder_id, id=sel.folder_id, mailbox_id=sel.owner_id)
        await db(services.messages_expunge, folder=folder, uids=await session.sequence_map())
    session.unselect()
    return u.Done(r.OK_COMPLETED, updates=False)


async def unselect(session: Session, command: p.Simple) -> r.Reply | u.Done:
    # RFC 3691
    session.unselect()
    return u.Done(r.OK_COMPLETED, updates=False)


async def check(session: Session, command: p.Simple) -> r.Reply | u.Done:
    return r.OK_COMPLETED
