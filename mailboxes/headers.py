"""Header fields cached at delivery: what lists, sorting, threading and searches need.

Parsing is tolerant: a message with broken or 8-bit headers is still stored, with whatever
could be decoded.
"""

from __future__ import annotations

import functools
import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.header import Header, decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime

from mailboxes import (  # noqa: F401 - charsets registers codec aliases
    addresslist,
    charsets,
    mime,
    preview,
)

# The blank line that ends a header section, found from its first LF: rb"\r?\n\r?\n" (which
# may start with a CR) has no literal for re to scan for, and tries a match at every octet.
_BLANK_LINE = re.compile(rb"\n\r?\n")
# Characters of one header value that RFC 2047 decoding reads: decode_header is linear but
# slow (10,000 encoded words took a second); the summary keeps at most 4,000 characters.
MAX_DECODED_CHARS = 16 * 1024

# Octets of a header section that the summary (and the webmail) read: a longer header is
# read up to the last line that fits (legitimate headers, long recipient lists and trace
# fields included, stay far below it).
MAX_HEADER_OCTETS = 64 * 1024
# Octets of one From/To/Cc field read for the summary (which keeps 4,000 characters) and for
# SEARCH FROM/TO/CC beyond it; ENVELOPE reads up to addresslist.MAX_LIST_OCTETS.
MAX_SUMMARY_LIST_OCTETS = 8 * 1024
_SURROGATE = re.compile("[\udc80-\udcff]")

logger = logging.getLogger("mailboxes.headers")
_MSGID = re.compile(r"<[^<>\s]+>")
_ATTACHMENT_LINE = re.compile(rb"(?im)^content-disposition:\s*attachment")
# A field's first line as email.feedparser's headerRE takes it, less what parse_header leaves
# to the parser: a "From " envelope line (no space in a name) and a line starting with a colon.
_FIELD_LINE = re.compile(r"[\041-\071\073-\176]+:")
# The largest message header_read copies to skip our fields on top: a copy of 256 KB took
# about 7 us, less than the parse of port 25's Authentication-Results field (about 15 us),
# one of 1 MB 46 us.
OURS_COPIED_OCTETS = 256 * 1024
# _FIELD_LINE for a header in bytes.
_FIELD_START = re.compile(rb"[\041-\071\073-\176]+:")
_LINE_ENDS = frozenset({"\r\n", "\n", "\r"})
# The fields the summary reads as IMAP's parser does (_summary), by their lower-case names.
_SUMMARY_FIELDS = ("from", "to", "cc", "date", "subject")


def blank_line(raw: bytes, pos: int = 0, endpos: int | None = None) -> tuple[int, int] | None:
    """(start, end) of the first blank line of raw[pos:endpos] with the line end before it:
    the span of re.search(rb"\r?\n\r?\n", raw, pos, endpos), found 5 to 10 times faster (port
    25 looks for the end of a message's header several times)."""
    match = _BLANK_LINE.search(raw, pos, len(raw) if endpos is None else endpos)
    if match is None:
        return None
    start = match.start()
    if start > pos and raw[start - 1] == 0x0D:
        start -= 1
    return start, match.end()


def header_block(raw: bytes) -> bytes:
    """The header section of a message, up to and including the blank line."""
    found = blank_line(raw)
    return raw[: found[1]] if found else raw


def bounded_header(raw: bytes, limit: int = MAX_HEADER_OCTETS) -> bytes:
    """raw with its header section cut to `limit` octets at a line boundary (the body kept):
    the email package reads a 100,000-field header at about 10 microseconds a field."""
    if blank_line(raw, 0, limit + 4) is not None or len(raw) <= limit:
        return raw
    cut = raw.rfind(b"\n", 0, limit) + 1
    found = blank_line(raw, limit)
    body = raw[found[1] :] if found else b""
    return raw[:cut] + (b"\r\n" if raw[cut - 2 : cut] == b"\r\n" else b"\n") + body


def decode_words(value: str | Header | None) -> str:
    if not value:
        return ""
    value = header_text(value)[:MAX_DECODED_CHARS]
    if "=?" not in value:  # no encoded word (RFC 2047 2): nothing to decode
        return " ".join(value.split())
    try:
        text = str(make_header(decode_header(value)))
    except Exception:  # 8-bit text beside encoded words, or malformed ones: piece by piece
        text = _decode_pieces(value)
    return " ".join(text.split())


def _decode_pieces(value: str) -> str:
    try:
        pieces = []
        for data, charset in decode_header(value):
            if isinstance(data, str):
                pieces.append(data)
            elif charset is None:  # decode_header's own encoding of the plain parts
                pieces.append(data.decode("raw-unicode-escape"))
            else:
                try:
                    pieces.append(data.decode(charset, "replace"))
                except LookupError:
                    pieces.append(data.decode("latin-1"))
        return "".join(pieces)
    except Exception:  # malformed encoded words: show the raw text rather than nothing
        return value


def header_text(value: str | Header) -> str:
    """A header value as text, encoded-words left in place. 8-bit octets (RFC 6532 UTF-8,
    or a legacy charset) come from the compat32 parser as an "unknown-8bit" Header or as
    surrogate escapes: read them as UTF-8, else Latin-1, rather than as U+FFFD."""
    if isinstance(value, Header):
        pieces = []
        for data, charset in decode_header(value):
            if isinstance(data, bytes):
                data = (
                    _octets_text(data)
                    if charset in (None, "unknown-8bit")
                    else (data.decode(charset, "replace"))
                )
            pieces.append(data)
        return "".join(pieces)
    if not _SURROGATE.search(value):
        return value
    return _octets_text(value.encode("utf-8", "surrogateescape"))


def field_text(raw: bytes, value_start: int, field_end: int) -> str:
    """The value of the field at raw[value_start:field_end] (mime.header_fields' positions)
    as text: unfolded, 8-bit octets read by header_text, encoded words left in place."""
    return header_text(
        mime.field_value(raw, value_start, field_end).decode("utf-8", "surrogateescape")
    )


def _octets_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# Characters of address fields whose pairs address_pairs keeps (a From field is a few dozen;
# a hostile one of 64 KB is parsed each time rather than held).
_PAIRS_KEPT_CHARS = 1000


def address_pairs(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """email.utils.getaddresses(values), as a tuple, parsed once for the same text: port 25
    reads the From field's addresses twice, for DMARC (delivery.inbound.checks) and for the
    spam rules (delivery.spam.builtin), and getaddresses, which reads the text a character
    at a time in Python, took 188,000 instructions for one address. Raises what getaddresses
    raises (RecursionError, ValueError, IndexError)."""
    values = tuple(values)
    if sum(map(len, values)) > _PAIRS_KEPT_CHARS:
        return tuple(getaddresses(values))
    return _address_pairs(values)


@functools.lru_cache(maxsize=256)
def _address_pairs(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple(getaddresses(values))


def _addresses_display(values: list[str]) -> tuple[str, str]:
    """("Name <address>, ..., Group:", first address) of address fields' values.

    The linear parser of mailboxes/addresslist.py, not email.utils.getaddresses: that one
    recurses into nested comments (a 20,000-deep comment in From was a RecursionError, so
    SMTP answered 451 and the sender retried forever). Group names come last, as "name:"
    (RFC 9051 7.5.2 puts them in the ENVELOPE, and SEARCH TO/CC match them)."""
    shown: list[str] = []
    groups: list[str] = []
    first_address = ""
    budget = MAX_SUMMARY_LIST_OCTETS  # for all the fields together (100,000 To: fields)
    for value in values:
        if budget <= 0:
            break
        data = value.encode("utf-8", "surrogateescape")[:budget]
        budget -= len(data) + 2
        for name, _adl, mailbox, host in addresslist.parse_addresses(data, limit=len(data)):
            if mailbox is None:
                continue  # the end of a group
            if host is None:
                group = _text(mailbox).strip()
                if group:
                    groups.append(decode_words(group) + ":")
                continue
            address = "" if mailbox == addresslist.MISSING_MAILBOX else _text(mailbox)
            if address and host != addresslist.MISSING_DOMAIN:
                address += "@" + _text(host)
            label = decode_words(_text(name)) if name else ""
            if not first_address and address:
                first_address = address
            if label or address:
                shown.append(f"{label} <{address}>" if label and address else (label or address))
    return ", ".join(shown + groups), first_address


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def summarize(raw: bytes) -> dict:
    """Return the cached fields of Message for the raw bytes."""
    return summarize_and_spam(raw)[0]


def summarize_and_spam(raw: bytes) -> tuple[dict, bool]:
    """summarize and is_spam from one parse of the header (delivery needs both)."""
    read = header_read(raw)
    return read.summary, read.spam


@dataclass(frozen=True)
class HeaderRead:
    """One parse of a message's header: the summary (summarize), whether it says X-Spam: Yes
    (is_spam), and the compat32 header itself, for readers of other fields (the spam rules)
    that would otherwise parse it again."""

    summary: dict
    spam: bool
    parsed: Message
    # Where the body of the raw bytes read starts (after the blank line), as email.feedparser
    # reads it, when the fast reading (parse_header) took every line of the whole header as a
    # field or its continuation; None when the parser read it, or bounded_header cut it.
    body_start: int | None = None


def header_read(raw: bytes, ours: int = 0) -> HeaderRead:
    """`ours`: the octets of whole fields of our own on top of raw (port 25's
    Authentication-Results), none of which the summary or the spam rules read: the message
    below them is read instead, one field fewer to parse twice (about 60,000 instructions).
    The reading is the same whenever the fields below start with a field line (so that
    neither parse reads their first line differently: an envelope "From " line, a
    continuation, no header) and the header with ours ends within MAX_HEADER_OCTETS (so that
    bounded_header and the MIME parse cut neither), and the message is small enough that
    copying it costs less than the field's parse (OURS_COPIED_OCTETS)."""
    if (
        ours
        and len(raw) <= OURS_COPIED_OCTETS
        and _FIELD_START.match(raw, ours)
        and blank_line(raw, ours, MAX_HEADER_OCTETS) is not None
    ):
        raw = raw[ours:]
    else:
        ours = 0
    block = header_block(bounded_header(raw))
    parsed = parse_header(block)
    try:
        summary = _summary(raw, block, parsed)
    except Exception:
        # A header no parser of ours can read must not turn into a 4xx the sender retries
        # forever: the message is stored unchanged with an empty summary (our fault, logged).
        logger.exception("headers degraded message_id=%s", _first_msgid(parsed.get("Message-ID")))
        summary = _DEGRADED_SUMMARY
    # Our fields on top are whole fields too: the body starts as far below them.
    whole = type(parsed) is _IndexedHeader and raw.startswith(block)
    return HeaderRead(summary, _spam_verdict(parsed), parsed, ours + len(block) if whole else None)


class _IndexedHeader(Message):
    """A compat32 Message whose get and get_all find a field by one dict lookup: port 25's
    readers (the summary, the spam rules, the text of a single-part message) ask a header
    for some twenty fields, and Message.get lowers every field's name at each call. The
    index is made at the first read and dropped at every change of the fields."""

    _by_name: dict[str, list[tuple[str, str]]] | None = None

    def _named(self, name: str) -> list[tuple[str, str]] | None:
        index = self._by_name
        if index is None:
            index = {}
            for field in self._headers:
                index.setdefault(field[0].lower(), []).append(field)
            self._by_name = index
        return index.get(name.lower())

    def get(self, name, failobj=None):  # noqa: ANN001, ANN201 - Message.get's signature
        fields = self._named(name)
        return failobj if fields is None else self.policy.header_fetch_parse(*fields[0])

    def get_all(self, name, failobj=None):  # noqa: ANN001, ANN201 - Message.get_all's
        fields = self._named(name)
        if fields is None:
            return failobj
        return [self.policy.header_fetch_parse(k, v) for k, v in fields]

    # Every method of Message that changes _headers (Python 3.11's email.message); the index
    # is dropped after it, as some read the fields first (set_boundary reads Content-Type).
    def __setitem__(self, name, val) -> None:  # noqa: ANN001
        super().__setitem__(name, val)
        self._by_name = None

    def __delitem__(self, name) -> None:  # noqa: ANN001
        super().__delitem__(name)
        self._by_name = None

    def set_raw(self, name, value) -> None:  # noqa: ANN001
        super().set_raw(name, value)
        self._by_name = None

    def replace_header(self, _name, _value) -> None:  # noqa: ANN001
        super().replace_header(_name, _value)
        self._by_name = None

    def set_boundary(self, boundary) -> None:  # noqa: ANN001
        super().set_boundary(boundary)
        self._by_name = None


def parse_header(block: bytes) -> Message:
    """BytesHeaderParser(policy=compat32).parsebytes(block), the same Message, made without
    the feed parser (about half of its cost) when every line of `block` is a field or its
    continuation and it ends with its blank line, as a stored header does (_field_lines),
    each field read by compat32's own header_source_parse. Anything else (an envelope
    "From " line, a line that would end the header early, no blank line) goes to the parser,
    which records the defects."""
    fields = _field_lines(block)
    if fields is None:
        return BytesHeaderParser(policy=compat32).parsebytes(block)
    parsed = _IndexedHeader(policy=compat32)
    for field in fields:
        parsed.set_raw(*compat32.header_source_parse(field))
    parsed.set_payload("")  # the parser's headers-only payload: what follows the blank line
    return parsed


def field_values(block: bytes, name: str) -> list[str | Header]:
    """parse_header(block).get_all(name) or [] for a lower-case `name`: where parse_header
    reads the block itself (_field_lines), only the fields of that name are read
    (header_source_parse, then header_fetch_parse as get_all does), without the Message and
    every other field's reading (a submission's From check, for every message). Elsewhere
    parse_header's Message is asked."""
    fields = _field_lines(block)
    if fields is None:
        return parse_header(block).get_all(name) or []
    return [
        compat32.header_fetch_parse(*compat32.header_source_parse(field))
        for field in fields
        if field[0][: field[0].index(":")].lower() == name
    ]


def _field_lines(block: bytes) -> list[list[str]] | None:
    """The lines of each field of a header `block`, cut where email.feedparser cuts them
    (CRLF, CR or LF), when every line is a field or its continuation and the block ends with
    its blank line; else None (the feed parser's case)."""
    lines = io.StringIO(block.decode("ascii", "surrogateescape"), newline="").readlines()
    if not lines or lines[-1] not in _LINE_ENDS or lines[0][0] in " \t":
        return None
    fields: list[list[str]] = []
    for line in lines[:-1]:
        if line[0] in " \t":
            fields[-1].append(line)  # the first line is a field's: there is one
        elif _FIELD_LINE.match(line):
            fields.append([line])
        else:
            return None
    return fields


def _summary(raw: bytes, block: bytes, parsed) -> dict:  # noqa: ANN001 - a compat32 Message

    # The address, Subject and Date fields as IMAP's parser reads them (FETCH ENVELOPE,
    # SEARCH): a name with white space before its colon (RFC 5322 4.5 obs-optional,
    # "From  : ...") is a field, a line without a colon is skipped rather than ending the
    # header as compat32 does.
    # The top part's header as the MIME parse for the preview read it (one walk of the
    # fields for both); a header it reads only in part (past mime.MAX_HEADER_OCTETS) or
    # differently (cut by bounded_header) is read from the block, as before.
    root_header: list[mime.Header] = []
    tree = mime.parse(raw, describe=lambda _part, header, _params, _raw: root_header.append(header))
    values: dict[str, list[str]] = {name: [] for name in _SUMMARY_FIELDS}
    if tree.bs == len(block) <= mime.MAX_HEADER_OCTETS and raw.startswith(block):
        for name, _fs, vs, fe in root_header[-1].fields:
            if name in values:
                values[name].append(field_text(raw, vs, fe))
    else:
        from mailboxes import fulltext

        for name, value in fulltext.header_fields(block, only=values):
            values[name].append(value)
    from_display, from_address = _addresses_display(values["from"])
    to_display, _ = _addresses_display(values["to"])
    cc_display, _ = _addresses_display(values["cc"])
    sent_date: datetime | None = None
    date_value = next(iter(values["date"]), None)
    if date_value:
        try:
            sent_date = parsedate_to_datetime(str(date_value))
            if sent_date.tzinfo is None:
                sent_date = None
        except (TypeError, ValueError, IndexError):
            sent_date = None
    message_id = _first_msgid(parsed.get("Message-ID"))
    in_reply_to = _first_msgid(parsed.get("In-Reply-To"))
    references = " ".join(_MSGID.findall(str(parsed.get("References") or "")))
    thread_root = (references.split() or [in_reply_to or message_id or ""])[0]
    content_type = str(parsed.get("Content-Type") or "").lower()
    has_attachments = content_type.startswith("multipart/mixed") or _attachment_field(
        raw[len(block) :]
    )
    summary = {
        "subject": decode_words(next(iter(values["subject"]), None))[:2000],
        "from_display": from_display[:2000],
        "from_address": from_address[:320],
        "to_display": to_display[:4000],
        "cc_display": cc_display[:4000],
        "sent_date": sent_date,
        "message_id": message_id,
        "in_reply_to": in_reply_to,
        "references": references[:8000],
        "thread_key": thread_root[:255],
        "has_attachments": has_attachments,
        "preview": preview.preview(raw, tree),
    }
    # PostgreSQL text cannot hold NUL, which a hostile header may carry: store U+FFFD instead.
    return {k: v.replace("\0", "\ufffd") if isinstance(v, str) else v for k, v in summary.items()}


_DEGRADED_SUMMARY = {
    "subject": "",
    "from_display": "",
    "from_address": "",
    "to_display": "",
    "cc_display": "",
    "sent_date": None,
    "message_id": "",
    "in_reply_to": "",
    "references": "",
    "thread_key": "",
    "has_attachments": False,
    "preview": "",
}


def _attachment_field(body: bytes) -> bool:
    """A "Content-Disposition: attachment" line in the body (a part's header). Its name looked
    for in the lowered body first: the case-insensitive pattern, anchored at line starts, is
    tried at every octet (9 us a KB, 90 us at 10 KB), the lowering and the find under 1 us.
    Both are ASCII-only, so the pattern can match only where the name is found."""
    # find(), not `in`: bytes `in` first tries the needle as an integer (a TypeError raised
    # and cleared, about 1,800 instructions in CPython 3.11).
    found = body.lower().find(b"content-disposition:") >= 0
    return found and bool(_ATTACHMENT_LINE.search(body))


def _first_msgid(value) -> str:  # noqa: ANN001 - a header value or None
    if not value:
        return ""
    match = _MSGID.search(str(value))
    return match.group(0)[:998] if match else ""


def is_spam(raw: bytes) -> bool:
    """True when the header says `X-Spam: Yes` (the filter's verdict, added upstream)."""
    return _spam_verdict(parse_header(header_block(raw)))


def _spam_verdict(parsed) -> bool:  # noqa: ANN001 - a compat32 Message
    return any(str(v).strip().lower() == "yes" for v in (parsed.get_all("X-Spam") or []))
