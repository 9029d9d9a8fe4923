"""ESEARCH with IN (MULTISEARCH, RFC 7377): one search over several mailboxes, one ESEARCH
response per mailbox with matches, always in UIDs and tagged with the mailbox's name and
UIDVALIDITY. Without IN it searches the selected mailbox, as UID SEARCH RETURN does."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailboxes import selectors
from mailboxes.models import HIERARCHY_DELIMITER, Folder
from protocols.imap import parser as p
from protocols.imap import responses as r
from protocols.imap import search as search_keys
from protocols.imap import uidcache
from protocols.imap import untagged as u
from protocols.imap.commands import fetchsearch
from protocols.imap.errors import CommandError
from protocols.imap.worker import db

if TYPE_CHECKING:
    from protocols.imap.session import Session


def _folders(mailbox_id: int, sources, selected_id: int | None) -> list[Folder]:
    """The folders the source options name, by name (RFC 7377 2)."""
    folders = list(selectors.folders_of(mailbox_id))
    by_name = {f.name: f for f in folders}
    chosen: dict[int, Folder] = {}
    for option, names in sources:
        if option in ("SELECTED", "SELECTED-DELAYED"):
            picked = [f for f in folders if f.id == selected_id]
        elif option == "INBOXES":
            picked = [by_name["INBOX"]] if "INBOX" in by_name else []
        elif option == "PERSONAL":
            picked = folders
        elif option == "SUBSCRIBED":
            subscribed = selectors.subscriptions_of(mailbox_id)
            picked = [f for f in folders if f.name in subscribed]
        elif option == "MAILBOXES":
            picked = [by_name[_canonical(n)] for n in names if _canonical(n) in by_name]
        else:  # SUBTREE, SUBTREE-ONE: the mailbox and those under it (one level for -ONE)
            picked = []
            for name in map(_canonical, names):
                prefix = name + HIERARCHY_DELIMITER
                for folder in folders:
                    if folder.name == name:
                        picked.append(folder)
                    elif folder.name.startswith(prefix):
                        rest = folder.name[len(prefix) :]
                        if option == "SUBTREE" or HIERARCHY_DELIMITER not in rest:
                            picked.append(folder)
        for folder in picked:
            chosen[folder.id] = folder
    return sorted(chosen.values(), key=lambda f: f.name)


def _canonical(name: str) -> str:
    return "INBOX" if name.upper() == "INBOX" else name


def _search_folders(folders: list[Folder], key, selected_view) -> list[tuple[Folder, list[int]]]:
    results = []
    for folder in folders:
        if selected_view is not None and folder.id == selected_view[0]:
            uids, recent = selected_view[1], selected_view[2]
        else:
            uids, recent = uidcache.folder_uids(folder.id, folder.highestmodseq, folder.uidnext), ()
        found = search_keys.search_full(folder.id, key, seq_uids=uids, recent_uids=set(recent))
        results.append((folder, found.uids))
    return results


async def esearch(session: Session, command: p.MultiSearch) -> r.Reply | u.Done:
    # RFC 7377 2-3
    sel = session.selected
    if command.sources is None:
        if sel is None:
            raise CommandError(r.BAD_NOT_SELECTED)
        search = p.Search(
            command.tag, "SEARCH", True, command.keys, command.charset, command.returns
        )
        return await fetchsearch.search(session, search)
    try:
        key = search_keys.parse_keys(command.keys, command.charset)
    except search_keys.BadCharset:
        raise CommandError(r.NO_BAD_CHARSET) from None
    except (search_keys.SearchSyntaxError, p.ParseFailure, ValueError) as exc:
        raise CommandError(r.Reply("BAD", str(exc) or "Bad search key")) from None
    if search_keys.uses_saved(key):
        raise CommandError(r.BAD_SEARCHRES_EMPTY.with_text("$ cannot be used with IN"))
    if session.uidonly and search_keys.uses_sequence_numbers(key):
        raise CommandError(r.BAD_UID_REQUIRED)  # RFC 9586 3
    selected_view = None
    if sel is not None:
        selected_view = (sel.folder_id, list(await session.sequence_map()), set(sel.recent))
    folders = await db(
        _folders, session.mailbox.id, command.sources, sel.folder_id if sel else None
    )
    results = await db(_search_folders, folders, key, selected_view)
    # One response per mailbox with matches, its correlator naming the mailbox (RFC 7377 2.1)
    await session.respond(
        *(
            search_keys.esearch(command.tag, uids, command.returns, uid=True)._replace(
                mailbox=folder.name, uidvalidity=folder.uidvalidity, utf8=session.utf8
            )
            for folder, uids in results
            if uids
        )
    )
    return r.OK_COMPLETED
