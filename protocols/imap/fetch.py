"""FETCH responses (RFC 9051 7.5.2, RFC 3516 BINARY, RFC 7162 MODSEQ): the one renderer.

Every FETCH response the server writes comes from here: FETCH and UID FETCH, STORE's, the
unsolicited FLAGS of changes made elsewhere, SELECT's QRESYNC changes and NOTIFY's MessageNew.
Items read from the message row alone have one format each (ROW_FORMATS), filled per message
from a template made once per command; `render` writes a response that needs the message's
bytes or structure, from a row and a lazy loader of its raw bytes: the blob is read only when
an item needs the octets (a section, RFC822*, BINARY*, or a missing MIME cache).

The items come typed from the parser (protocols/imap/parser.py: FetchItem, Section);
`parse_items` reads them from text for tests and tools by the same grammar.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Protocol

from mailboxes import preview
from protocols.imap import mime, objectid
from protocols.imap import parser as p
from protocols.imap.flags import flags_of_bits
from protocols.imap.responses import quoted_or_literal

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MONTH_BYTES = tuple(month.encode("ascii") for month in MONTHS)

Item = p.FetchItem
Section = p.Section
OBJECTID_ITEMS = frozenset({"EMAILID", "THREADID"})  # RFC 8474 5
ROW_ID_ITEMS = OBJECTID_ITEMS | {"SAVEDATE"}  # read with selectors' with_ids


class FetchSyntaxError(ValueError):
    """FETCH items from text that the grammar does not allow."""


UnknownCTE = mime.UnknownCTE


def parse_items(items: str | Iterable) -> tuple[Item, ...]:
    """Typed FETCH items from text, from FetchAtts as the client wrote them, or already
    typed (returned as they are); macros are expanded."""
    items = items if isinstance(items, str) else tuple(items)
    if items and all(isinstance(item, Item) for item in items):
        return items
    try:
        if isinstance(items, str):
            return p.parse_fetch_items(items)
        if not items:
            raise p.ParseFailure("Empty FETCH item list")
        return p.fetch_items_of(items)
    except p.ParseFailure as exc:
        raise FetchSyntaxError(str(exc)) from None


def sets_seen(items: Iterable[Item]) -> bool:
    return any(item.sets_seen for item in items)


def with_item(items: tuple[Item, ...], name: str) -> tuple[Item, ...]:
    """items plus a simple item (UID for UID FETCH, FLAGS after an implicit \\Seen,
    MODSEQ under CONDSTORE) unless already there."""
    if any(item.name == name and item.section is None for item in items):
        return items
    return (*items, Item(name))


def uid_first(items: tuple[Item, ...]) -> tuple[Item, ...]:
    """UID moved to the front, the others in the client's order: Dovecot answers so, and a
    common imaplib idiom reads the UID from the text before the first literal."""
    return tuple(sorted(items, key=lambda item: not (item.name == "UID" and item.section is None)))


# --- Rendering ---------------------------------------------------------------------------


class Row(Protocol):
    uid: int
    size: int
    modseq: int
    internal_date: datetime


def internal_date_text(when: datetime) -> bytes:
    """RFC 9051 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz" (a naive time is UTC)."""
    offset = when.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign = b"-" if minutes < 0 else b"+"
    minutes = abs(minutes)
    # One bytes formatting (a FETCH of INTERNALDATE renders it for every message)
    return b'"%02d-%s-%04d %02d:%02d:%02d %s%02d%02d"' % (
        when.day,
        MONTH_BYTES[when.month - 1],
        when.year,
        when.hour,
        when.minute,
        when.second,
        sign,
        minutes // 60,
        minutes % 60,
    )


# The items read from the message row alone, one format each. A response's template joins
# them once per command; its fields are, in this order: sequence number, UID, the flag names
# joined by spaces, MODSEQ, RFC822.SIZE, INTERNALDATE's text, and the EMAILID, THREADID and
# SAVEDATE items whole (objectid_text).
ROW_FORMATS = {
    "UID": "UID {1}",
    "FLAGS": "FLAGS ({2})",
    "MODSEQ": "MODSEQ ({3})",  # RFC 7162 3.1.4.1
    "RFC822.SIZE": "RFC822.SIZE {4}",
    "INTERNALDATE": "INTERNALDATE {5}",
    "EMAILID": "{6}",
    "THREADID": "{7}",
    "SAVEDATE": "{8}",
}
ROW_ITEMS = frozenset(ROW_FORMATS)
# The items selectors.message_flag_bits rows carry (UID order, flags as keywords and bits).
FLAG_ITEMS = frozenset({"FLAGS", "UID", "MODSEQ"})


@lru_cache(maxsize=256)
def row_template(names: tuple[str, ...], verb: str = "FETCH") -> str:
    """`* {0} FETCH (...)` of row-only items, in the order given (str.format's fields as in
    ROW_FORMATS); verb UIDFETCH for RFC 9586's `* uid UIDFETCH (...)`."""
    return f"* {{0}} {verb} (" + " ".join(ROW_FORMATS[name] for name in names) + ")\r\n"


def flags_response(
    seq: int,
    flags: Iterable[str] | None,
    *,
    uid: int | None = None,
    modseq: int | None = None,
    verb: str = "FETCH",
) -> bytes:
    """One message's `* seq FETCH ([UID u] [FLAGS (...)] [MODSEQ (m)])`: STORE's answer and
    the unsolicited updates (RFC 9051 7.5.2; RFC 7162 3.1.4.1, 3.2.4); with verb UIDFETCH
    seq is the UID (RFC 9586 3.3)."""
    names = (
        *(("UID",) if uid is not None else ()),
        *(("FLAGS",) if flags is not None else ()),
        *(("MODSEQ",) if modseq is not None else ()),
    )
    text = " ".join(flags) if flags is not None else ""
    return row_template(names, verb).format(seq, uid, text, modseq).encode("utf-8")


def render_flag_rows(
    rows, items: Sequence[Item], uids, recent, rev2: bool, *, uidonly: bool = False
) -> tuple[list[bytes], set[str]]:
    """Responses of FLAGS / UID / MODSEQ straight from selectors.message_flag_bits tuples (in
    UID order): one template per command, and sequence numbers found by walking the sorted
    map alongside the rows (UIDFETCH responses numbered by UID with uidonly, RFC 9586 3.3).
    Returns chunks of responses and the keywords they use."""
    line = row_template(tuple(item.name for item in items), "UIDFETCH" if uidonly else "FETCH")
    flag_texts: dict[tuple, str] = {}
    keywords: set[str] = set()
    chunks: list[bytes] = []
    out: list[str] = []
    count = len(uids)
    i = bisect.bisect_left(uids, rows[0][0]) if rows else 0
    for row in rows:
        uid = row[0]
        if i >= count or uids[i] != uid:
            i = bisect.bisect_left(uids, uid, i)
            if i == count or uids[i] != uid:
                continue  # not in this session's view yet
        key = row[2:]
        text = flag_texts.get(key)
        if text is None:
            keyword_text, bits = key
            if keyword_text:
                keywords.update(keyword_text.split())
            text = flag_texts[key] = " ".join(flags_of_bits(keyword_text, bits))
        if not rev2 and uid in recent:
            text = (text + " \\Recent").lstrip()
        i += 1
        out.append(line.format(uid if uidonly else i, uid, text, row[1]))
        if len(out) == 5000:
            chunks.append("".join(out).encode("utf-8"))
            out = []
    if out:
        chunks.append("".join(out).encode("utf-8"))
    return chunks, keywords


def render_rows(
    rows, items: Sequence[Item], seqs, recent, rev2: bool, verb: str = "FETCH"
) -> bytes:
    """Responses of row-only items (ROW_ITEMS) without the per-message machinery: FETCH 1:*
    (FLAGS INTERNALDATE RFC822.SIZE) on a large folder is string formatting only. seqs maps
    each UID to the response's number (the UID itself for verb UIDFETCH)."""
    names = tuple(item.name for item in items)
    line = row_template(names, verb)
    wants_flags, wants_date = "FLAGS" in names, "INTERNALDATE" in names
    id_names = [n if n in names else None for n in ("EMAILID", "THREADID", "SAVEDATE")]
    no_ids = not any(id_names)
    flags = date = None
    dates: dict = {}
    out = []
    for row in rows:
        if wants_flags:
            flags = " ".join(
                row.flags if rev2 or row.uid not in recent else [*row.flags, "\\Recent"]
            )
        if wants_date:
            date = dates.get(row.internal_date)
            if date is None:
                date = dates[row.internal_date] = internal_date_text(row.internal_date).decode()
        if no_ids:
            out.append(line.format(seqs[row.uid], row.uid, flags, row.modseq, row.size, date))
        else:
            ids = [n and objectid_text(n, row) for n in id_names]
            out.append(line.format(seqs[row.uid], row.uid, flags, row.modseq, row.size, date, *ids))
    return "".join(out).encode("utf-8")


def _row_item(name: str, row: Row, flags: Sequence[str]) -> bytes:
    """One row-only item inside a response that also carries bytes-derived items."""
    if name == "INTERNALDATE":
        value = internal_date_text(row.internal_date).decode("ascii")
    elif name in ROW_ID_ITEMS:
        value = objectid_text(name, row)
    else:
        value = None
    fields = (None, row.uid, " ".join(flags), row.modseq, row.size, value, value, value, value)
    return ROW_FORMATS[name].format(*fields).encode("utf-8")


def _literal(data: bytes, *, binary: bool = False) -> bytes:
    """A literal of the stored octets. RFC 3516 4.3: BINARY content containing NUL goes in a
    literal8. No other literal may carry NUL (RFC 9051 4.3): as Dovecot does, each NUL is sent
    as 0x80, so the size stays the octet count (RFC822.SIZE is BODY[]'s length)."""
    if b"\x00" not in data:
        return b"{%d}\r\n" % len(data) + data
    if binary:
        return b"~{%d}\r\n" % len(data) + data
    return b"{%d}\r\n" % len(data) + data.replace(b"\x00", b"\x80")


@dataclass(frozen=True, slots=True)
class Span:
    """A literal's content sent from the store in chunks, not rendered here: `length` octets
    of the stored message from `offset`. binary: a literal8's (BINARY), sent as stored;
    otherwise each NUL is sent as 0x80, as _literal does."""

    offset: int
    length: int
    binary: bool = False


@dataclass
class Rendered:
    data: bytes  # the whole "* n FETCH (...)\r\n"; empty when pieces holds it
    cache: dict | None  # a fresh MIME cache for Message.mime_cache, when one was computed
    # A streamed message's response: its bytes with a Span where each large literal goes.
    pieces: list[bytes | Span] | None = None


# Encodings whose BINARY octets are the stored ones (RFC 3516 4.2).
IDENTITY_CTE = frozenset({b"7bit", b"8bit", b"binary", b""})
_NO_PART = (-1, -1)  # _section_range: the section names no part (sent as NIL)


class _Source:
    """The message's bytes and structure, each loaded at most once, only when needed.

    With read_range (a large message: the session streams it), sections that are a range of
    the stored octets become Spans, found from the message's size, its cached structure or
    its header alone: the whole message is loaded only for what needs it all (a structure
    not cached yet, PREVIEW, BINARY of an encoded part)."""

    def __init__(
        self,
        load_raw: Callable[[], bytes],
        cache: object,
        read_range: Callable[[int, int], bytes] | None = None,
        size: int = 0,
    ):
        self._load_raw = load_raw
        self._raw: bytes | None = None
        self.cache = cache if mime.cache_valid(cache) else None
        self.fresh_cache: dict | None = None
        self._tree: mime.Part | None = None
        self.read_range = read_range
        self.size = size
        self.spans = False  # a Span was rendered

    def known_tree(self) -> mime.Part | None:
        """The part tree when it is known without reading the message (cached or built)."""
        if self._tree is None and (self.cache is None or self.cache["tree"] is None):
            return None
        return self.tree()

    def root_cte(self) -> bytes:
        """The top-level Content-Transfer-Encoding, lower-case: from the structure when
        known, else from the header alone (the first MAX_HEADER_OCTETS, as the parser reads)."""
        tree = self.known_tree()
        if tree is not None:
            return tree.cte.lower()
        assert self.read_range is not None
        head = self.read_range(0, mime.MAX_HEADER_OCTETS)
        header = mime.Header(head, 0, mime.split_header(head, 0, len(head)))
        value = header.get("content-transfer-encoding")
        words = value.replace(b"\x00", b"").split() if value else None
        return words[0].lower() if words else b"7bit"

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = self._load_raw()
        return self._raw

    def analysis(self) -> dict:
        if self.cache is None:
            self.cache = self.fresh_cache = mime.analyze(self.raw)
        return self.cache

    def tree(self) -> mime.Part:
        if self._tree is None:
            analysis = self.analysis()
            raw = self.raw if analysis["tree"] is None else None
            self._tree = mime.tree_from_cache(analysis, raw)
        return self._tree


def _section_data(item: Item, source: _Source) -> bytes | None:
    section = item.section
    assert section is not None
    if item.name == "BODY" or section.spec:
        return mime.section(source.raw, source.tree(), section.path, section.spec, section.fields)
    return mime.binary(source.raw, source.tree(), section.path)


def _partial(data: bytes, partial: tuple[int, int] | None) -> bytes:
    if partial is None:
        return data
    start, count = partial
    # RFC 9051 6.4.5: a start beyond the end gives the empty string.
    return data[start : start + count]


def _section_range(name: str, section: Section, source: _Source) -> tuple[int, int] | None:
    """(start, end) of the stored octets that are the section (BODY, or BINARY where no
    decoding is needed), _NO_PART when there is no such part, None when the section is not
    a range of them or the structure is not known without reading the message."""
    path, spec = section.path, section.spec.upper()
    binary = name != "BODY" and not spec
    if not path and not spec and (not binary or source.root_cte() in IDENTITY_CTE):
        return 0, source.size  # RFC 9051 6.4.5: BODY[] is the whole message
    tree = source.known_tree()
    if tree is None:
        return None
    message = tree
    if path:  # mime.section's and mime.binary's choices, without the octets
        part = mime.part_at(tree, path)
        if part is None:
            return _NO_PART
        if binary:
            composite = part.children or part.message is not None
            return (part.bs, part.be) if composite or part.cte.lower() in IDENTITY_CTE else None
        if spec == "":
            return part.bs, part.be
        if spec == "MIME":
            return part.hs, part.bs
        if part.message is None:
            return _NO_PART
        message = part.message
    if binary:
        composite = message.children or message.message is not None
        return (message.hs, message.be) if composite else None
    if spec == "":
        return message.hs, message.be
    if spec == "HEADER":
        return message.hs, message.bs
    if spec == "TEXT":
        return message.bs, message.be
    return None


def _header_fields_data(section: Section, source: _Source) -> bytes | None:
    """HEADER.FIELDS (.NOT) of a streamed message with a known structure: from a read of
    that header's octets alone."""
    tree = source.known_tree()
    if tree is None or source.read_range is None:
        return None
    message = tree
    if section.path:
        part = mime.part_at(tree, section.path)
        if part is None or part.message is None:
            return None
        message = part.message
    head = source.read_range(message.hs, message.bs - message.hs)
    root = mime.Part(0, len(head), len(head))
    return mime.section(head, root, (), section.spec, section.fields)


def _streamed_item(key: str, name: str, section: Section, partial, source: _Source):  # noqa: ANN001, ANN202
    """A streamed message's section as its literal's head and a Span (the data as bytes for
    HEADER.FIELDS; None for what needs the whole message)."""
    if section.spec.upper().startswith("HEADER.FIELDS"):
        data = _header_fields_data(section, source)
        if data is None:
            return None
        if partial is not None:
            key += f"<{partial[0]}>"
        return key.encode() + b" " + _literal(_partial(data, partial))
    found = _section_range(name, section, source)
    if found is None:
        return None
    if found is _NO_PART:
        return key.encode() + (b" 0" if name == "BINARY.SIZE" else b" NIL")
    start, end = found
    if name == "BINARY.SIZE":
        return key.encode() + b" %d" % (end - start)
    if partial is not None:
        key += f"<{partial[0]}>"
        # RFC 9051 6.4.5: a start beyond the end gives the empty string.
        start, end = min(start + partial[0], end), min(start + partial[0] + partial[1], end)
    binary = name == "BINARY"
    source.spans = True
    head = b"%s ~{%d}\r\n" if binary else b"%s {%d}\r\n"
    return head % (key.encode(), end - start), Span(start, end - start, binary)


# RFC822, RFC822.HEADER and RFC822.TEXT are BODY[], BODY.PEEK[HEADER] and BODY[TEXT]
# (RFC 9051 6.4.5; \Seen is set by the engine).
_RFC822_SECTIONS = {
    "RFC822": Section(),
    "RFC822.HEADER": Section(spec="HEADER"),
    "RFC822.TEXT": Section(spec="TEXT"),
}


def render_item(item: Item, row: Row, flags: Sequence[str], source: _Source):  # noqa: ANN201
    """The item's bytes; for a streamed message's literal, its head and a Span."""
    name = item.name
    if source.read_range is not None:
        if item.section is not None:
            key = f"{name}[{item.section.text()}]"
            out = _streamed_item(key, name, item.section, item.partial, source)
        elif name in _RFC822_SECTIONS:
            out = _streamed_item(name, "BODY", _RFC822_SECTIONS[name], None, source)
        else:
            out = None
        if out is not None:
            return out
    if item.section is not None:
        key = f"{name}[{item.section.text()}]"
        data = _section_data(item, source)
        if name == "BINARY.SIZE":
            return key.encode() + (b" %d" % len(data) if data is not None else b" 0")
        if item.partial is not None:
            key += f"<{item.partial[0]}>"
        if data is None:
            return key.encode() + b" NIL"
        return key.encode() + b" " + _literal(_partial(data, item.partial), binary=name == "BINARY")
    if name in ROW_ITEMS:
        return _row_item(name, row, flags)
    if name == "ENVELOPE":
        return b"ENVELOPE " + source.analysis()["envelope"].encode("latin-1")
    if name == "BODYSTRUCTURE":
        return b"BODYSTRUCTURE " + source.analysis()["bodystructure"].encode("latin-1")
    if name == "BODY":
        return b"BODY " + source.analysis()["body"].encode("latin-1")
    if name == "RFC822":
        return b"RFC822 " + _literal(source.raw)
    if name == "RFC822.HEADER":
        return b"RFC822.HEADER " + _literal(mime.section(source.raw, source.tree(), (), "HEADER"))
    if name == "RFC822.TEXT":
        return b"RFC822.TEXT " + _literal(mime.section(source.raw, source.tree(), (), "TEXT"))
    if name == "PREVIEW":  # RFC 8970 4
        # UTF-8 text: quoted when ASCII, else a literal (RFC 8970 4)
        text = preview.preview(source.raw, source.tree())
        return b"PREVIEW " + quoted_or_literal(text, utf8=False)
    raise FetchSyntaxError(f"Unknown FETCH item {name}")


def objectid_text(name: str, row: Row) -> str:
    """EMAILID (M1) / THREADID (T...) or THREADID NIL (RFC 8474 5.1, 5.2); SAVEDATE
    "date-time" or NIL (RFC 8514 3)."""
    if name == "SAVEDATE":
        if row.saved_at is None:
            return "SAVEDATE NIL"
        return "SAVEDATE " + internal_date_text(row.saved_at).decode("ascii")
    if name == "EMAILID":
        return f"EMAILID ({objectid.email_id(row.blob_id)})"
    thread = objectid.thread_id(row.thread_key)
    return f"THREADID ({thread})" if thread else "THREADID NIL"


def render(
    number: int,
    items: Sequence[Item],
    row: Row,
    load_raw: Callable[[], bytes],
    *,
    flags: Sequence[str] | None = None,
    cache: object = None,
    verb: str = "FETCH",
    read_range: Callable[[int, int], bytes] | None = None,
) -> Rendered:
    """One `* number FETCH (...)` response (`* uid UIDFETCH (...)` with verb UIDFETCH).

    row has uid, size, modseq, internal_date (and flags / mime_cache, used unless passed);
    load_raw returns the message's bytes and is called at most once, only when needed.
    With read_range(offset, length) (a large message), the literals that are ranges of the
    stored octets come back as Spans in Rendered.pieces, for the session to stream.
    Raises UnknownCTE for BINARY on an encoding we cannot decode.
    """
    if flags is None:
        flags = list(getattr(row, "flags", ()))
    if cache is None:
        cache = getattr(row, "mime_cache", None)
    source = _Source(load_raw, cache, read_range, row.size if read_range is not None else 0)
    rendered = [render_item(item, row, flags, source) for item in items]
    head = b"* %d %s (" % (number, verb.encode("ascii"))
    if not source.spans:
        return Rendered(head + b" ".join(rendered) + b")\r\n", source.fresh_cache)
    pieces: list[bytes | Span] = [head]
    for i, out in enumerate(rendered):
        separator = b" " if i else b""
        if isinstance(out, tuple):
            pieces[-1] += separator + out[0]
            pieces += [out[1], b""]
        else:
            pieces[-1] += separator + out
    pieces[-1] += b")\r\n"
    return Rendered(b"", source.fresh_cache, pieces)
