"""SORT and THREAD (RFC 5256), ESORT (RFC 5267), SORT=DISPLAY (RFC 5957): the engine side;
sort keys, base subjects and the threading algorithms live in protocols/imap/sort.py."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from mailboxes import selectors
from protocols.imap import contexts
from protocols.imap import parser as p
from protocols.imap import responses as r
from protocols.imap import search as search_keys
from protocols.imap import sort as sorting
from protocols.imap import untagged as u
from protocols.imap.errors import CommandError

if TYPE_CHECKING:
    from protocols.imap.session import Session

BAD_THREAD_ALGORITHM = r.Reply("BAD", "Unknown thread algorithm")


async def _matching(
    session: Session, tag: str, keys: tuple, charset: str, *, update: bool = False
) -> tuple[object, search_keys.SearchResult]:
    """The parsed keys and the session's messages they match (UIDs ascending), as SEARCH
    finds them; `update`: the tag must be free for a context (RFC 5267 4.3)."""
    sel = session.selected
    try:
        key = search_keys.parse_keys(keys, charset)
    except search_keys.BadCharset:
        raise CommandError(r.NO_BAD_CHARSET) from None
    except (search_keys.SearchSyntaxError, p.ParseFailure, ValueError) as exc:
        raise CommandError(r.Reply("BAD", str(exc) or "Bad search key")) from None
    if session.uidonly and search_keys.uses_sequence_numbers(key):
        raise CommandError(r.BAD_UID_REQUIRED)  # RFC 9586 3
    if update:
        contexts.check_tag(sel.contexts, tag)
    want_modseq = search_keys.uses_modseq(key)
    if want_modseq:
        session.enable_condstore()  # RFC 7162 3.1.5: MODSEQ in SORT as in SEARCH
    if isinstance(key, search_keys.All):
        # The usual SORT: every message of the view, no query (the rows are read next).
        return key, search_keys.SearchResult(list(await session.sequence_map()), None)
    return key, await session.db_progress(
        tag,
        search_keys.search_full,
        sel.folder_id,
        key,
        seq_uids=await session.sequence_map(),
        recent_uids=sel.recent,
        saved_uids=list(sel.saved or ()),
        want_modseq=want_modseq,
        reader=sel.reader,
    )


def _rows(folder_id: int, uids: list[int], columns: tuple[str, ...]) -> list[tuple]:
    """(uid, *columns) of the given UIDs, in UID order, from the cached header fields."""
    rows = selectors.message_sort_rows(folder_id, uids[-1], columns)
    if len(rows) == len(uids) and [row[0] for row in rows] == uids:
        return rows  # the usual ALL
    wanted = set(uids)
    return [row for row in rows if row[0] in wanted]


def _and_expunged(fn, folder_id: int, expunge_modseq: int, *args):
    """fn(folder_id, *args), then the UIDs expunged since the session's view was brought up
    to date, read after it in the same hop (as SEARCH does, fetchsearch._search_and_expunged):
    a message the command could not see any more is among them."""
    return fn(folder_id, *args), selectors.folder_vanished_since(folder_id, expunge_modseq)


def sort_uids_keyed(
    folder_id: int, uids: list[int], keys: tuple[sorting.SortKey, ...], *, keep: bool = True
) -> tuple[list[int], list]:
    """The UIDs in sort order and their sort values (sorting.sort_rows_keyed); `keep=False`:
    no values (sorting.sort_rows' passes, cheaper: only a context keeps them)."""
    columns = sorting.columns_for(keys)
    with sorting.collector_paused():
        rows = _rows(folder_id, uids, columns)
        overrides = _exact_addresses(folder_id, rows, columns)
        if not keep:
            return sorting.sort_rows(rows, columns, keys, overrides), []
        return sorting.sort_rows_keyed(rows, columns, keys, overrides)


def sort_values(
    folder_id: int, uids: list[int], keys: tuple[sorting.SortKey, ...]
) -> dict[int, object]:
    """uid -> sort value of a few messages (those still in the folder), to place them in a
    kept sort order (CONTEXT=SORT) without sorting it again."""
    columns = sorting.columns_for(keys)
    rows = selectors.message_sort_rows(folder_id, max(uids), columns, uids=uids)
    ordered, values = sorting.sort_rows_keyed(
        rows, columns, keys, _exact_addresses(folder_id, rows, columns)
    )
    return dict(zip(ordered, values, strict=True))


def _exact_addresses(folder_id: int, rows: list[tuple], columns: tuple[str, ...]) -> dict:
    """The first address of the few messages whose cached address text cannot tell it
    (groups beside addresses), read from their headers."""
    out: dict[str, dict[int, tuple[str, str]]] = {}
    for position, column in enumerate(columns, start=1):
        field_name = sorting.HEADER_OF_COLUMN.get(column)
        if field_name is None:
            continue
        uids = [row[0] for row in rows if sorting.display_ambiguous(row[position])]
        if not uids:
            continue
        names = selectors.message_blob_names(folder_id, uids)
        blobs = selectors.blob_read_many(set(names.values()))
        out[column] = {
            uid: sorting.header_first_address(blobs[name], field_name)
            for uid, name in names.items()
            if name in blobs
        }
    return out


async def sort(session: Session, command: p.Sort) -> r.Reply | u.Done:
    # RFC 5256 3-4; RETURN RFC 5267 3.2; PARTIAL RFC 9394
    sel = session.selected
    try:
        keys = sorting.parse_criteria(command.criteria)
    except sorting.SortSyntaxError as exc:
        raise CommandError(r.Reply("BAD", str(exc))) from None
    update = "UPDATE" in (command.returns or ())
    key, result = await _matching(
        session, command.tag, command.keys, command.charset, update=update
    )
    ordered, values = [], []
    if result.uids:
        (ordered, values), gone = await session.db_progress(
            command.tag,
            _and_expunged,
            partial(sort_uids_keyed, keep=update),  # a context keeps the sort values
            sel.folder_id,
            sel.expunge_modseq,
            result.uids,
            keys,
        )
    else:
        gone = await session.db_progress(
            command.tag, selectors.folder_vanished_since, sel.folder_id, sel.expunge_modseq
        )
    numbers = ordered if command.uid else [sel.seq_of(uid) for uid in ordered]
    numbers = [n for n in numbers if n is not None]
    if update:  # RFC 5267 4.3: CONTEXT=SORT
        refused = contexts.open_context(
            sel.contexts,
            command.tag,
            key,
            uid=command.uid,
            results=ordered,
            sort_keys=keys,
            values=values,
        )
        if refused is not None:
            await session.respond(refused)
    if command.returns is None and command.partial is None:
        await session.respond(u.Sort(numbers, result.highest_modseq))
    else:
        await session.respond(
            sorting.esort(
                command.tag,
                numbers,
                command.returns or (),
                uid=command.uid,
                partial=command.partial,
            )
        )
    return r.OK_EXPUNGE_ISSUED if sel.expunged_unannounced(gone) else r.OK_COMPLETED


def _threads(
    folder_id: int, uids: list[int], algorithm: str, numbers: dict[int, int] | None
) -> str:
    """The THREAD response's data (sorting.thread_text) for the given messages."""
    with sorting.collector_paused():
        rows = _rows(folder_id, uids, sorting.THREAD_COLUMNS)
        if algorithm == "REFERENCES":
            roots = sorting.thread_references(rows)
        else:
            roots = sorting.thread_orderedsubject(rows)
        return sorting.thread_text(roots, numbers)


async def thread(session: Session, command: p.Thread) -> r.Reply | u.Done:
    # RFC 5256 3-4
    sel = session.selected
    if command.algorithm not in sorting.THREAD_ALGORITHMS:
        raise CommandError(BAD_THREAD_ALGORITHM)
    _key, result = await _matching(session, command.tag, command.keys, command.charset)
    numbers = None
    if not command.uid:
        numbers = dict(zip(result.uids, sel.seqs_of(result.uids), strict=True))
    if result.uids:
        text, gone = await session.db_progress(
            command.tag,
            _and_expunged,
            _threads,
            sel.folder_id,
            sel.expunge_modseq,
            result.uids,
            command.algorithm,
            numbers,
        )
    else:
        text, gone = (
            "",
            await session.db_progress(
                command.tag, selectors.folder_vanished_since, sel.folder_id, sel.expunge_modseq
            ),
        )
    await session.respond(u.Thread(text))
    return r.OK_EXPUNGE_ISSUED if sel.expunged_unannounced(gone) else r.OK_COMPLETED
