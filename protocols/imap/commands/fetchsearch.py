"""FETCH and SEARCH: the engine side (sequence sets, \\Seen, CONDSTORE, ESEARCH); item
rendering lives in protocols/imap/fetch.py and search keys in protocols/imap/search.py."""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

from django.conf import settings

from mailboxes import selectors, services
from protocols.imap import contexts, mime
from protocols.imap import fetch as fetch_items
from protocols.imap import parser as p
from protocols.imap import responses as r
from protocols.imap import search as search_keys
from protocols.imap import untagged as u
from protocols.imap.commands.message import folder_ref
from protocols.imap.errors import CommandError
from protocols.imap.selected import recent_in_map, resolve_in, seqs_in
from protocols.imap.worker import db

if TYPE_CHECKING:
    from protocols.imap.session import Session

logger = logging.getLogger(__name__)

CHUNK = 200  # messages rendered per worker-thread round trip when bytes are needed


def _search_and_expunged(folder_id: int, key, expunge_modseq: int, **kwargs):
    """SEARCH's result, then the UIDs expunged since the session last looked (read after
    the search, in the same hop: a message the search could not see any more is in it)."""
    result = search_keys.search_full(folder_id, key, **kwargs)
    return result, selectors.folder_vanished_since(folder_id, expunge_modseq)


def _vanished_earlier(folder_id: int, changedsince: int, ranges) -> list[int]:
    uids = selectors.folder_vanished_since(folder_id, changedsince)
    return [u for u in uids if any(low <= u <= high for low, high in ranges)]


def _render_chunk(rows, items, seqs, recent, needs_raw, rev2, verb="FETCH"):
    """Render FETCH responses for rows (in a worker thread: blob reads happen here).

    Messages of MAILHOST_BLOB_STREAM_MIN bytes or more are not read here: their literals
    come back as Spans for _send_streamed. Returns the responses' bytes, or a list of bytes
    and (blob name, pieces) of the streamed ones.

    A message expunged elsewhere since its row was read has lost its bytes: it is left out
    (RFC 9051 7.5.1 lets the server omit it)."""
    stream_min = settings.MAILHOST_BLOB_STREAM_MIN
    # The bytes of every message that needs them, read together: all of them for a section
    # or a body, else those whose structure is not cached yet (new mail's first ENVELOPE or
    # BODYSTRUCTURE), which would otherwise be read one blob_read each.
    blobs = selectors.blob_read_many(
        {
            row.blob_name
            for row in rows
            if row.size < stream_min and (needs_raw or not mime.cache_valid(_imap_cache(row)))
        }
    )
    out = []
    fresh = {}
    streamed = False
    for row in rows:
        try:
            rendered = _render_row(row, items, seqs, recent, rev2, blobs, verb, stream_min)
        except selectors.BLOB_GONE:
            continue
        if rendered.pieces is None:
            out.append(rendered.data)
        else:
            out.append((row.blob_name, rendered.pieces))
            streamed = True
        if rendered.cache is not None:
            fresh[row.id] = rendered.cache
    if fresh:
        services.message_caches_put(key="imap", values=fresh)
    if not streamed:
        return b"".join(out)
    merged: list = []
    for response in out:
        if isinstance(response, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += response
        else:
            merged.append(response)
    return merged


def _imap_cache(row):  # noqa: ANN001, ANN202
    return row.mime_cache.get("imap") if isinstance(row.mime_cache, dict) else None


def _render_row(row, items, seqs, recent, rev2, blobs, verb, stream_min):
    flags = row.flags if row.uid not in recent or rev2 else [*row.flags, "\\Recent"]
    cache = _imap_cache(row)
    name = row.blob_name

    def load() -> bytes:
        data = blobs.get(name)
        return data if data is not None else selectors.blob_read(name)

    read_range = None
    if row.size >= stream_min:

        def read_range(offset: int, length: int) -> bytes:
            return selectors.blob_read_range(name, offset=offset, length=length)

    return fetch_items.render(
        seqs[row.uid], items, row, load, flags=flags, cache=cache, verb=verb, read_range=read_range
    )


async def _send(session: Session, data) -> None:  # noqa: ANN001
    """_render_chunk's responses to the client."""
    if isinstance(data, bytes):
        await session.respond(u.Fetched(data))
        return
    for response in data:
        if isinstance(response, bytes):
            await session.respond(u.Fetched(response))
        else:
            await _send_streamed(session, *response)


async def _send_streamed(session: Session, name: str, pieces) -> None:  # noqa: ANN001
    """A large message's response, its literals read from the store a chunk
    (MAILHOST_BLOB_STREAM_CHUNK) at a time as the client takes them: one GET or one open
    file per literal. They are opened before any of the response is sent, so a message
    expunged meanwhile is left out whole (RFC 9051 7.5.1)."""
    spans = [piece for piece in pieces if isinstance(piece, fetch_items.Span)]
    streams = []
    try:
        try:
            for span in spans:
                streams.append(
                    await db(selectors.blob_stream, name, offset=span.offset, length=span.length)
                )
        except selectors.BLOB_GONE:
            return
        opened = iter(streams)
        for piece in pieces:
            if isinstance(piece, bytes):
                if piece:
                    await session.respond(u.Fetched(piece))
                continue
            await _send_span(session, name, piece, next(opened))
    finally:
        for stream in streams:
            try:
                stream.close()
            except ValueError:  # still running in its worker (cancelled): closed when freed
                pass


async def _send_span(session: Session, name: str, span, stream) -> None:  # noqa: ANN001
    sent = 0
    try:
        while chunk := await db(next, stream, b""):
            if not span.binary and b"\x00" in chunk:
                chunk = chunk.replace(b"\x00", b"\x80")  # as fetch._literal does
            await session.send(chunk)
            sent += len(chunk)
    except OSError as exc:  # the store failed mid-literal: the response cannot be finished
        logger.error(
            "imap stream_failed blob=%s sent=%d of=%d error=%s", name, sent, span.length, exc
        )
        raise ConnectionError("the message store failed during a literal") from exc
    if sent != span.length:
        logger.error("imap stream_short blob=%s sent=%d of=%d", name, sent, span.length)
        raise ConnectionError("the message store gave fewer octets than its size")


def _rows_and_first_chunk(folder_id, uids, seqs_of, uidonly, render, row_options):  # noqa: ANN001, ANN202
    """In one worker hop: FETCH's rows (message_fetch_rows), each one's number (`seqs_of`:
    the session's map, which does not change while it awaits this), and with `render`
    (_render_chunk's other arguments) the first chunk's responses, or the UnknownCTE that
    rendering raised (the caller raises it after what precedes it is sent)."""
    rows = selectors.message_fetch_rows(folder_id, uids, **row_options)
    row_uids = [row.uid for row in rows]  # ascending
    seqs = dict(zip(row_uids, seqs_of(row_uids), strict=True))
    rows = [row for row in rows if seqs[row.uid]]
    if uidonly:
        seqs = {row.uid: row.uid for row in rows}
    first = None
    if render is not None and rows:
        try:
            first = _render_chunk(rows[:CHUNK], render[0], seqs, *render[1:])
        except fetch_items.UnknownCTE as exc:
            first = exc
    return rows, seqs, first


async def fetch(session: Session, command: p.Fetch) -> r.Reply | u.Done:
    # RFC 9051 6.4.5; CHANGEDSINCE and VANISHED RFC 7162 3.1.4, 3.2.6
    await fetch_responses(session, command, with_changes=True)
    return r.OK_COMPLETED


async def fetch_responses(
    session: Session, command: p.Fetch, *, with_changes: bool = False
) -> None:
    """FETCH's untagged responses (also NOTIFY's MessageNew with FETCH attributes, RFC 5465
    5.2, which has no tagged reply of its own). `with_changes`: the rows' hop also reads what
    changed in the folder when a change event came, for the updates after the responses."""
    sel = session.selected
    # The command's own reads, with the folder's changes when they are wanted (one hop)
    read = functools.partial(session.db_and_changes, if_dirty=True) if with_changes else db
    items = command.fetch_items  # typed and checked by the parser
    if command.uid and not session.uidonly:
        # RFC 9586 3.3: a UIDFETCH response is numbered by the UID; the UID item only
        # when asked for
        items = fetch_items.with_item(items, "UID")
    items = fetch_items.uid_first(items)
    condstore = command.changedsince is not None or any(i.name == "MODSEQ" for i in items)
    if condstore:
        items = fetch_items.with_item(items, "MODSEQ")
    if (
        with_changes
        and sel.uids is None
        and not command.vanished
        and not _flags_only(items)
        and not (fetch_items.sets_seen(items) and not sel.readonly and "s" in sel.rights)
    ):
        # The first command after SELECT that names messages: the sequence map is read in
        # the hop of the rows, the sequence set resolved there (one hop, not two).
        mapped, rows, seqs, first = await read(
            _mapped_rows_and_first_chunk,
            session.map_reader(),
            command.sequence,
            command.uid,
            sel.saved,
            sel.recent_range,
            *_rows_arguments(session, command, items),
        )
        session.install_map(mapped)
        if condstore:
            session.enable_condstore()
        await _send_rows(session, command, items, rows, seqs, first)
        return
    uids = await session.resolve(command.sequence, uid=command.uid)
    if condstore:
        session.enable_condstore()
    if command.vanished and not session.qresync:
        raise CommandError(r.BAD_CONDSTORE_OFF)
    out = []
    if command.vanished:
        # RFC 7162 3.2.6: expunged UIDs of the requested range; "*" reaches past the last UID.
        ranges = (
            p.SequenceSet(tuple((u, u) for u in sel.saved or ())).resolve(0)
            if command.sequence.saved
            else command.sequence.resolve(p.MAX_NUMBER)
        )
        vanished = await db(_vanished_earlier, sel.folder_id, command.changedsince, ranges)
        if vanished:
            out.append(u.Vanished(vanished, earlier=True))
    if not uids:
        await session.respond(*out)
        return
    if fetch_items.sets_seen(items) and not sel.readonly and "s" in sel.rights:
        result = await db(
            services.messages_store_flags,
            folder=folder_ref(session),
            uids=uids,
            flags=["\\Seen"],
            mode="add",
            reader=sel.reader,
        )
        if result.changed:
            items = fetch_items.with_item(items, "FLAGS")
            for uid, _flags, modseq in result.changed:
                sel.reported[uid] = modseq
    if _flags_only(items):
        rows = await read(
            selectors.message_flag_bits,
            sel.folder_id,
            uids,
            changed_since=command.changedsince,
            reader=sel.reader,
        )
        await session.respond(*out)
        chunks, keywords = fetch_items.render_flag_rows(
            rows, items, sel.uids, sel.recent, session.rev2, uidonly=session.uidonly
        )
        if any(i.name == "FLAGS" for i in items):
            await session.respond(*sel.keyword_update(keywords))
        for data in chunks:
            await session.respond(u.Fetched(data))
        return
    rows, seqs, first = await read(
        _rows_and_first_chunk, sel.folder_id, uids, *_rows_arguments(session, command, items)[1:]
    )
    await session.respond(*out)
    await _send_rows(session, command, items, rows, seqs, first)


def _flags_only(items) -> bool:  # noqa: ANN001
    """Items a flag row answers (selectors.message_flag_bits), no message row needed."""
    return all(i.name in fetch_items.FLAG_ITEMS and i.section is None for i in items)


def _rendering(items) -> bool:  # noqa: ANN001
    """The items need the message's bytes or structure (rendered in a worker thread)."""
    return any(i.needs_raw or i.needs_structure for i in items)


def _rows_arguments(session: Session, command: p.Fetch, items) -> tuple:  # noqa: ANN001
    """_rows_and_first_chunk's arguments after the UIDs (the folder's id first)."""
    sel = session.selected
    needs_raw = any(i.needs_raw for i in items)
    rendered = _rendering(items)
    verb = "UIDFETCH" if session.uidonly else "FETCH"
    # _render_chunk's arguments after the chunk and its numbers
    render = (items, sel.recent, needs_raw, session.rev2, verb) if rendered else None
    options = {
        "changed_since": command.changedsince,
        "with_cache": rendered,
        "with_blob": needs_raw,
        "with_details": rendered or any(i.name in ("RFC822.SIZE", "INTERNALDATE") for i in items),
        "with_ids": any(i.name in fetch_items.ROW_ID_ITEMS for i in items),
        "reader": sel.reader,
    }
    return sel.folder_id, sel.seqs_of, session.uidonly, render, options


def _mapped_rows_and_first_chunk(  # noqa: ANN202
    read_map,
    sequence,
    uid,
    saved,
    recent_range,
    folder_id,
    seqs_of,
    uidonly,
    render,
    options,  # noqa: ANN001
):
    """In one worker hop: the sequence map (Session.map_reader), the UIDs the sequence set
    names in it, then _rows_and_first_chunk numbered by that map; the map comes back for
    Session.install_map. The \\Recent UIDs the map brings (claimed at SELECT) count as
    \\Recent in the rendering, as they do once it is installed."""
    mapped = read_map()
    uids = resolve_in(mapped, sequence, uid=uid, saved=saved)
    if not uids:
        return mapped, [], {}, None
    arrived = recent_in_map(mapped, recent_range)
    if render is not None and len(arrived):
        render = (render[0], set(render[1]).union(arrived), *render[2:])
    rows, seqs, first = _rows_and_first_chunk(
        folder_id, uids, functools.partial(seqs_in, mapped), uidonly, render, options
    )
    return mapped, rows, seqs, first


async def _send_rows(session: Session, command: p.Fetch, items, rows, seqs, first) -> None:  # noqa: ANN001
    """The FETCH responses of the rows, a chunk at a time (`first`: the first chunk's,
    rendered in the rows' hop)."""
    sel = session.selected
    rendered = _rendering(items)
    verb = "UIDFETCH" if session.uidonly else "FETCH"
    step = CHUNK if rendered else 5000
    wants_flags = any(i.name == "FLAGS" for i in items)
    needs_raw = any(i.needs_raw for i in items)
    for start in range(0, len(rows), step):
        if start:
            await session.progress(command.tag, start, len(rows))  # RFC 9585
        chunk = rows[start : start + step]
        if wants_flags:
            await session.respond(*sel.keyword_update({f for row in chunk for f in row.flags}))
        if rendered:
            try:
                data = first
                if start:
                    data = await db(
                        _render_chunk, chunk, items, seqs, sel.recent, needs_raw, session.rev2, verb
                    )
                if isinstance(data, fetch_items.UnknownCTE):
                    raise data
            except fetch_items.UnknownCTE:
                # RFC 3516 4.3: BINARY of a part whose encoding we cannot undo
                raise CommandError(
                    r.Reply("NO", "Unknown Content-Transfer-Encoding", "UNKNOWN-CTE")
                ) from None
        else:
            data = fetch_items.render_rows(chunk, items, seqs, sel.recent, session.rev2, verb)
        await _send(session, data)


async def search(session: Session, command: p.Search) -> r.Reply | u.Done:
    # RFC 9051 6.4.4; ESEARCH RETURN RFC 4731; SEARCHRES RFC 5182; MODSEQ RFC 7162 3.1.5
    sel = session.selected
    try:
        key = search_keys.parse_keys(command.keys, command.charset)
    except search_keys.BadCharset:
        raise CommandError(r.NO_BAD_CHARSET) from None
    except (search_keys.SearchSyntaxError, p.ParseFailure, ValueError) as exc:
        raise CommandError(r.Reply("BAD", str(exc) or "Bad search key")) from None
    if session.uidonly and search_keys.uses_sequence_numbers(key):
        raise CommandError(r.BAD_UID_REQUIRED)  # RFC 9586 3
    update = command.returns is not None and "UPDATE" in command.returns
    if update:
        contexts.check_tag(sel.contexts, command.tag)
    want_modseq = search_keys.uses_modseq(key)
    if want_modseq:
        session.enable_condstore()
    result, gone = await session.db_progress(
        command.tag,
        _search_and_expunged,
        sel.folder_id,
        key,
        sel.expunge_modseq,
        # The session awaits the search: its map and \\Recent set cannot change meanwhile.
        seq_uids=await session.sequence_map(),
        recent_uids=sel.recent,
        saved_uids=list(sel.saved or ()),
        want_modseq=want_modseq,
        reader=sel.reader,
    )
    uids = result.uids
    numbers = uids if command.uid else sel.seqs_of(uids)  # uids ascend
    returns = command.returns
    if returns is None and session.rev2:
        returns = ()  # RFC 9051 6.4.4: IMAP4rev2 answers SEARCH with ESEARCH
    if returns is None:
        await session.respond(u.Search(numbers, result.highest_modseq))
    else:
        saved = search_keys.saved_result(uids, returns)
        if saved is not None:
            sel.saved = saved
        if update:  # RFC 5267 4.3: CONTEXT=SEARCH
            refused = contexts.open_context(
                sel.contexts, command.tag, key, uid=command.uid, results=uids
            )
            if refused is not None:
                await session.respond(refused)
        if search_keys.esearch_sends_response(returns) or command.partial is not None:
            await session.respond(
                search_keys.esearch(
                    command.tag,
                    numbers,
                    returns,
                    uid=command.uid,
                    modseqs=result.modseqs,
                    partial=command.partial,
                )
            )
    if sel.expunged_unannounced(gone):
        # The search did not see them, and a key by sequence number or on what the client
        # knows of them may have matched (imaptest: "SEARCH result missing").
        return r.OK_EXPUNGE_ISSUED
    return r.OK_COMPLETED
