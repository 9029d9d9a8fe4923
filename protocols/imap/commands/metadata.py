"""METADATA and METADATA-SERVER (RFC 5464): GETMETADATA, SETMETADATA; and the METADATA lines
of LIST-METADATA (RFC 9590), which LIST sends through metadata_response."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailboxes import selectors, services
from mailboxes.models import Folder
from protocols.imap import parser as p
from protocols.imap import responses as r
from protocols.imap import untagged as u
from protocols.imap.errors import CommandError
from protocols.imap.worker import db

if TYPE_CHECKING:
    from protocols.imap.session import Session

NO_TOO_MANY = r.Reply("NO", "Too many metadata entries", "METADATA TOOMANY")


def _no_max_size() -> r.Reply:
    return r.Reply(
        "NO",
        "Metadata value too large",
        f"METADATA MAXSIZE {services.METADATA_MAX_VALUE_SIZE}",
    )


def metadata_response(session: Session, name: str, entries: list[tuple[str, bytes]]) -> u.Metadata:
    """* METADATA mailbox (entry value ...) (RFC 5464 4.4.1)."""
    return u.Metadata(name, tuple(entries), session.utf8)


def within(entries: list[tuple[str, bytes]], maxsize: int | None):
    """The entries no larger than MAXSIZE, and the size of the largest one left out (RFC
    5464 4.2.1: [METADATA LONGENTRIES n]), 0 when none was."""
    if maxsize is None:
        return entries, 0
    kept = [(n, v) for n, v in entries if len(v) <= maxsize]
    longest = max((len(v) for n, v in entries if len(v) > maxsize), default=0)
    return kept, longest


async def _target(session: Session, name: str, right: str) -> tuple[Folder | None, str]:
    """The folder (None: the server, for the empty name) and the name it is shown by."""
    if name == "":
        return None, ""
    access = await db(selectors.folder_access, session.mailbox.id, name)
    if access is None:
        raise CommandError(r.NO_NONEXISTENT)
    if right not in access.rights:
        raise CommandError(r.NO_PERMISSION)
    return access.folder, access.name


async def getmetadata(session: Session, command: p.GetMetadata) -> r.Reply | u.Done:
    # RFC 5464 4.2; reading a folder's entries needs "r" (RFC 5464 6.1 with RFC 4314)
    folder, name = await _target(session, command.mailbox, "r")
    entries = await db(
        selectors.metadata_get, session.mailbox.id, folder, command.entries, command.depth
    )
    entries, longest = within(entries, command.maxsize)
    if entries:
        await session.respond(metadata_response(session, name, entries))
    reply = r.OK_COMPLETED
    if longest:
        reply = r.Reply("OK", "Completed", f"METADATA LONGENTRIES {longest}")
    return reply


async def setmetadata(session: Session, command: p.SetMetadata) -> r.Reply | u.Done:
    # RFC 5464 4.3: /private entries need "r" on the folder, /shared ones "w"
    shared = any(entry.startswith("/shared/") for entry, _ in command.entries)
    folder, _name = await _target(session, command.mailbox, "w" if shared else "r")
    try:
        await db(
            services.metadata_set,
            mailbox=session.mailbox,
            folder=folder,
            entries=list(command.entries),
        )
    except services.MetadataTooLarge:
        raise CommandError(_no_max_size()) from None
    except services.MetadataTooMany:
        raise CommandError(NO_TOO_MANY) from None
    return r.OK_COMPLETED


def list_metadata(viewer_id: int, folders: list[tuple[str, Folder]], names, maxsize):
    """LIST-METADATA (RFC 9590): for each listed folder, its entries of those asked for."""
    result = []
    for name, folder in folders:
        entries, _longest = within(selectors.metadata_get(viewer_id, folder, names), maxsize)
        result.append((name, entries))
    return result


HANDLERS = {"GETMETADATA": getmetadata, "SETMETADATA": setmetadata}
