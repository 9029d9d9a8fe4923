"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 4): the engine side of RETURN (UPDATE): opening a
context, CANCELUPDATE, and re-checking the contexts when the selected folder changes (the
session reaches `refresh` through commands.UPDATES). The contexts, their ADDTO/REMOVEFROM
pairs and responses live in protocols/imap/contexts.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols.imap import contexts
from protocols.imap import parser as p
from protocols.imap import responses as r
from protocols.imap import search as search_keys
from protocols.imap import untagged as u
from protocols.imap.commands.sortthread import sort_uids_keyed, sort_values
from protocols.imap.errors import CommandError
from protocols.imap.worker import db

if TYPE_CHECKING:
    from protocols.imap.session import Session

# A change to more messages than this re-evaluates the whole view rather than each of them
# (one `uid IN (...)` list stays small).
MAX_CHECKED = 500

NO_UNKNOWN_TAG = r.Reply("NO", "Unknown tag")
OK_CANCELLED = r.Reply("OK", "Updates cancelled")


async def cancelupdate(session: Session, command: p.CancelUpdate) -> r.Reply | u.Done:
    # RFC 5267 4.3.5; an unknown tag is refused, as Dovecot does
    sel = session.selected
    if any(tag not in sel.contexts for tag in command.tags):
        raise CommandError(NO_UNKNOWN_TAG)
    for tag in command.tags:
        del sel.contexts[tag]
    return OK_CANCELLED


def _matches(
    folder_id: int, jobs, view, recent, saved, reader: int | None = None
) -> list[tuple[list[int], object]]:
    """For each (key, checked UIDs or None for the whole view): the matching UIDs and the
    UIDs that were checked, in one worker hop."""
    out = []
    for key, checked in jobs:
        found = search_keys.search_full(
            folder_id,
            key,
            seq_uids=view,
            recent_uids=recent,
            saved_uids=saved,
            only_uids=checked,
            reader=reader,
        )
        out.append((found.uids, view if checked is None else checked))
    return out


async def refresh(session: Session, changed: set[int]) -> list[u.ESearch]:
    """ESEARCH ADDTO/REMOVEFROM for what changed in the selected folder (flags, arrivals
    already announced by EXISTS, RFC 5267 4.3.3), each context re-checked for the changed
    messages (all of them when its keys number messages)."""
    sel = session.selected
    view = await session.sequence_map()
    live = list(sel.contexts.values())
    jobs = [(c.key, None if c.whole_view or len(changed) > MAX_CHECKED else changed) for c in live]
    found = await db(
        _matches, sel.folder_id, jobs, view, set(sel.recent), list(sel.saved or ()), sel.reader
    )
    out = []
    for context, (matched, checked) in zip(live, found, strict=True):
        left, joined = contexts.delta(context, matched, checked)
        removes = contexts.removal_pairs(context, left)
        ordered = values = None
        if context.sorted and joined:
            # What stays keeps its order (sort keys do not change). What joins is placed by
            # its sort value, a binary search each; many at once, by sorting again.
            if len(joined) > MAX_CHECKED or len(context.values) != len(context.results):
                ordered, values = await db(
                    sort_uids_keyed,
                    sel.folder_id,
                    sorted(context.members | joined),
                    context.sort_keys,
                )
            else:
                values = await db(sort_values, sel.folder_id, sorted(joined), context.sort_keys)
                joined &= values.keys()  # an expunge may have come first
        adds = contexts.addition_pairs(context, joined, ordered, values)
        number = contexts.numbering(context, sel.seq_of)
        response = contexts.update_esearch(context, removes, adds, number)
        if response is not None:
            out.append(response)
    return out


HANDLERS = {"CANCELUPDATE": cancelupdate}
