"""FETCH data items: parsing (RFC 9051 6.4.5, RFC 3516 BINARY, RFC 7162 MODSEQ) and rendering.

`parse_items` accepts the parser's `FetchAtt` tuple (see the NOTE in parser.py) or plain text
such as 'BODY.PEEK[HEADER.FIELDS (From To)]<0.100> FLAGS'. `render` produces one untagged
FETCH response from a message row and a lazy loader of its raw bytes: the blob is read only
when an item needs the octets (a section, RFC822*, BINARY*, or a missing MIME cache).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from protocols.imap import mime, objectid, preview
from protocols.imap.parser import FETCH_MACROS
from protocols.imap.responses import quoted_or_literal

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# RFC 9051 6.4.5 macros: the parser owns the table.
MACROS = FETCH_MACROS
SIMPLE = frozenset(
    {
        "FLAGS",
        "INTERNALDATE",
        "RFC822.SIZE",
        "ENVELOPE",
        "BODY",
        "BODYSTRUCTURE",
        "UID",
        "MODSEQ",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.TEXT",
        "EMAILID",
        "THREADID",
        "PREVIEW",
        "SAVEDATE",
    }
)
OBJECTID_ITEMS = frozenset({"EMAILID", "THREADID"})  # RFC 8474 5
ROW_ID_ITEMS = OBJECTID_ITEMS | {"SAVEDATE"}  # read with selectors' with_ids
SECTIONED = frozenset({"BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE"})
SPECS = ("HEADER.FIELDS.NOT", "HEADER.FIELDS", "HEADER", "TEXT", "MIME")


class FetchSyntaxError(ValueError):
    """A FETCH item the grammar does not allow (the engine answers BAD)."""


UnknownCTE = mime.UnknownCTE


@dataclass(frozen=True)
class Section:
    path: tuple[int, ...] = ()
    spec: str = ""  # "", HEADER, TEXT, MIME, HEADER.FIELDS, HEADER.FIELDS.NOT
    fields: tuple[str, ...] = ()

    def text(self) -> str:
        """Canonical form for the response (RFC 9051 7.5.2 echoes the section)."""
        pieces = [str(n) for n in self.path]
        if self.spec:
            pieces.append(self.spec)
        out = ".".join(pieces)
        if self.spec.startswith("HEADER.FIELDS"):
            out += " (" + " ".join(_astring_text(f) for f in self.fields) + ")"
        return out


@dataclass(frozen=True)
class Item:
    """One FETCH data item. name is a SIMPLE name, or "BODY" / "BINARY" / "BINARY.SIZE"
    with a section (peek says whether .PEEK was used)."""

    name: str
    section: Section | None = None
    peek: bool = False
    partial: tuple[int, int] | None = None

    @property
    def sets_seen(self) -> bool:
        # RFC 9051 6.4.5: BODY[...] and BINARY[...] set \Seen unless .PEEK; RFC822 and
        # RFC822.TEXT do too; RFC822.HEADER (= BODY.PEEK[HEADER]) does not.
        if self.section is not None:
            return self.name in ("BODY", "BINARY") and not self.peek
        return self.name in ("RFC822", "RFC822.TEXT")

    @property
    def needs_raw(self) -> bool:
        return self.section is not None or self.name in (
            "RFC822",
            "RFC822.HEADER",
            "RFC822.TEXT",
            "PREVIEW",
        )

    @property
    def needs_structure(self) -> bool:
        return self.name in ("ENVELOPE", "BODY", "BODYSTRUCTURE") and self.section is None


def _astring_text(value: str) -> str:
    if value and re.fullmatch(r"[!#$&'+\-.0-9:<=>?@A-Z^_`a-z|}~]+", value):
        return value.upper()
    return '"' + value.upper().replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_section(text: str) -> Section:
    """The text inside [...]: "", "1.2", "HEADER", "1.TEXT", "HEADER.FIELDS (A B)", ..."""
    text = text.strip()
    if not text:
        return Section()
    fields: tuple[str, ...] = ()
    paren = text.find("(")
    if paren >= 0:
        if not text.endswith(")"):
            raise FetchSyntaxError("Bad header list")
        fields = tuple(_field_names(text[paren + 1 : -1]))
        if not fields:
            raise FetchSyntaxError("Empty header list")
        text = text[:paren].rstrip()
        if " " in text:
            raise FetchSyntaxError("Bad section")
    path: list[int] = []
    rest = text
    while rest:
        number, dot, tail = rest.partition(".")
        if number.isdigit() and number.isascii():
            if number.startswith("0"):
                raise FetchSyntaxError("Section numbers start at 1")
            path.append(int(number))
            if dot and not tail:
                raise FetchSyntaxError("Bad section")
            rest = tail
        else:
            break
    spec = rest.upper()
    if spec and spec not in SPECS:
        raise FetchSyntaxError(f"Unknown section {rest}")
    if spec == "MIME" and not path:
        raise FetchSyntaxError("MIME needs a part number")
    if spec.startswith("HEADER.FIELDS") != bool(fields):
        raise FetchSyntaxError("HEADER.FIELDS takes a header list")
    # RFC 3516 section-binary allows part numbers only; like Dovecot (and imaptest's
    # fetch-binary-mime) we also take HEADER, TEXT, MIME and HEADER.FIELDS, sent undecoded.
    return Section(tuple(path), spec, fields)


def _field_names(text: str) -> list[str]:
    names = []
    for match in re.finditer(r'"((?:[^"\\]|\\.)*)"|(\S+)', text):
        if match.group(1) is not None:
            names.append(re.sub(r"\\(.)", r"\1", match.group(1)))
        else:
            names.append(match.group(2))
    return names


_ITEM = re.compile(r"([A-Za-z0-9.]+)(?:\[([^\]]*)\])?(?:<(\d+)\.(\d+)>)?")


def _make(name: str, section: str | None, partial: tuple[int, int] | None) -> Item:
    name = name.upper()
    if section is None:
        if name not in SIMPLE or partial is not None:
            raise FetchSyntaxError(f"Unknown FETCH item {name}")
        return Item(name)
    if name not in SECTIONED:
        raise FetchSyntaxError(f"{name} takes no section")
    if partial is not None and name == "BINARY.SIZE":
        raise FetchSyntaxError("BINARY.SIZE takes no partial")
    base = name.removesuffix(".PEEK")
    return Item(
        base,
        parse_section(section),
        peek=name.endswith(".PEEK"),
        partial=partial,
    )


def parse_items(items: str | Iterable) -> tuple[Item, ...]:
    """FETCH items from text or from the parser's FetchAtt tuple; macros are expanded."""
    if isinstance(items, str):
        text = items.strip()
        if text.startswith("(") and text.endswith(")"):
            text = text[1:-1].strip()
        if text.upper() in MACROS:
            return tuple(Item(n) for n in MACROS[text.upper()])
        out = []
        pos = 0
        while pos < len(text):
            match = _ITEM.match(text, pos)
            if not match or not match.group(1):
                raise FetchSyntaxError("Bad FETCH item list")
            name, section, start, count = match.groups()
            partial = None if start is None else (int(start), int(count))
            if name.upper() in MACROS:
                raise FetchSyntaxError("Macros stand alone")
            out.append(_make(name, section, partial))
            pos = match.end()
            if pos < len(text):
                if text[pos] != " ":
                    raise FetchSyntaxError("Bad FETCH item list")
                pos += 1
        if not out:
            raise FetchSyntaxError("Empty FETCH item list")
        return tuple(out)
    result: list[Item] = []
    for att in items:
        name = att.name.upper()
        if name in MACROS:
            result.extend(Item(n) for n in MACROS[name])
        else:
            result.append(_make(name, att.section, att.partial))
    if not result:
        raise FetchSyntaxError("Empty FETCH item list")
    return tuple(result)


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
    """RFC 9051 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz"."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    offset = when.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    text = (
        f'"{when.day:02d}-{MONTHS[when.month - 1]}-{when.year:04d} '
        f'{when:%H:%M:%S} {sign}{minutes // 60:02d}{minutes % 60:02d}"'
    )
    return text.encode("ascii")


def flags_text(flags: Sequence[str]) -> bytes:
    return ("(" + " ".join(flags) + ")").encode("utf-8")


def _literal(data: bytes, *, binary: bool = False) -> bytes:
    """A literal of the stored octets. RFC 3516 4.3: BINARY content containing NUL goes in a
    literal8. No other literal may carry NUL (RFC 9051 4.3): as Dovecot does, each NUL is sent
    as 0x80, so the size stays the octet count (RFC822.SIZE is BODY[]'s length)."""
    if b"\x00" not in data:
        return b"{%d}\r\n" % len(data) + data
    if binary:
        return b"~{%d}\r\n" % len(data) + data
    return b"{%d}\r\n" % len(data) + data.replace(b"\x00", b"\x80")


@dataclass
class Rendered:
    data: bytes  # the whole "* n FETCH (...)\r\n"
    cache: dict | None  # a fresh MIME cache for Message.mime_cache, when one was computed


class _Source:
    """The message's bytes and structure, each loaded at most once, only when needed."""

    def __init__(self, load_raw: Callable[[], bytes], cache: object):
        self._load_raw = load_raw
        self._raw: bytes | None = None
        self.cache = cache if mime.cache_valid(cache) else None
        self.fresh_cache: dict | None = None
        self._tree: mime.Part | None = None

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


def render_item(item: Item, row: Row, flags: Sequence[str], source: _Source) -> bytes:
    name = item.name
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
    if name == "UID":
        return b"UID %d" % row.uid
    if name == "FLAGS":
        return b"FLAGS " + flags_text(flags)
    if name == "INTERNALDATE":
        return b"INTERNALDATE " + internal_date_text(row.internal_date)
    if name == "RFC822.SIZE":
        return b"RFC822.SIZE %d" % row.size
    if name == "MODSEQ":
        return b"MODSEQ (%d)" % row.modseq  # RFC 7162 3.1.4.1
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
    if name in ROW_ID_ITEMS:
        return objectid_text(name, row).encode("ascii")
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
) -> Rendered:
    """One `* number FETCH (...)` response.

    row has uid, size, modseq, internal_date (and flags / mime_cache, used unless passed);
    load_raw returns the message's bytes and is called at most once, only when needed.
    Raises UnknownCTE for BINARY on an encoding we cannot decode.
    """
    if flags is None:
        flags = list(getattr(row, "flags", ()))
    if cache is None:
        cache = getattr(row, "mime_cache", None)
    source = _Source(load_raw, cache)
    body = b" ".join(render_item(item, row, flags, source) for item in items)
    return Rendered(b"* %d FETCH (" % number + body + b")\r\n", source.fresh_cache)
