"""Header fields cached at delivery: what lists, sorting, threading and searches need.

Parsing is tolerant: a message with broken or 8-bit headers is still stored, with whatever
could be decoded.
"""

from __future__ import annotations

import re
from datetime import datetime
from email.header import Header, decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MSGID = re.compile(r"<[^<>\s]+>")


def header_block(raw: bytes) -> bytes:
    """The header section of a message, up to and including the blank line."""
    match = _HEADER_END.search(raw)
    return raw[: match.end()] if match else raw


def decode_words(value: str | Header | None) -> str:
    if not value:
        return ""
    value = header_text(value)
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


def _group_names(value: str) -> list[str]:
    """Display names of RFC 5322 groups ("team: a@b, c@d;"), which getaddresses drops; IMAP
    SEARCH TO/CC match them (RFC 9051 7.5.2 puts them in the ENVELOPE)."""
    names: list[str] = []
    start, angle, comment, quoted, escaped = 0, 0, 0, False, False
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif ch == "\\" and (quoted or comment):
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif comment:
            comment += {"(": 1, ")": -1}.get(ch, 0)
        elif ch == '"':
            quoted = True
        elif ch == "(":
            comment = 1
        elif ch == "<":
            angle += 1
        elif ch == ">":
            angle = max(0, angle - 1)
        elif angle:
            continue
        elif ch in ",;":
            start = i + 1
        elif ch == ":":
            name = value[start:i].strip().strip('"').strip()
            if name:
                names.append(name)
            start = i + 1
    return names


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
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    return _octets_text(value.encode("utf-8", "surrogateescape"))


def _octets_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _addresses_display(values: list[str]) -> tuple[str, str]:
    decoded = [decode_words(v) for v in values]
    pairs = getaddresses(decoded)
    shown = []
    first_address = ""
    for name, addr in pairs:
        if not (name or addr):
            continue
        if not first_address and addr:
            first_address = addr
        shown.append(f"{name} <{addr}>" if name and addr else (name or addr))
    shown.extend(f"{group}:" for value in decoded for group in _group_names(value))
    return ", ".join(shown), first_address


def summarize(raw: bytes) -> dict:
    """Return the cached fields of Message for the raw bytes."""
    return summarize_and_spam(raw)[0]


def summarize_and_spam(raw: bytes) -> tuple[dict, bool]:
    """summarize and is_spam from one parse of the header (delivery needs both)."""
    block = header_block(raw)
    parsed = BytesHeaderParser(policy=compat32).parsebytes(block)
    return _summary(raw, block, parsed), _spam_verdict(parsed)


def _summary(raw: bytes, block: bytes, parsed) -> dict:  # noqa: ANN001 - a compat32 Message

    def get_all(name: str) -> list[str]:
        return [header_text(v) for v in (parsed.get_all(name) or [])]

    from_display, from_address = _addresses_display(get_all("From"))
    to_display, _ = _addresses_display(get_all("To"))
    cc_display, _ = _addresses_display(get_all("Cc"))
    sent_date: datetime | None = None
    date_value = parsed.get("Date")
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
    has_attachments = content_type.startswith("multipart/mixed") or bool(
        re.search(rb"(?im)^content-disposition:\s*attachment", raw[len(block) :])
    )
    summary = {
        "subject": decode_words(parsed.get("Subject"))[:2000],
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
    }
    # PostgreSQL text cannot hold NUL, which a hostile header may carry: store U+FFFD instead.
    return {k: v.replace("\0", "\ufffd") if isinstance(v, str) else v for k, v in summary.items()}


def _first_msgid(value) -> str:  # noqa: ANN001 - a header value or None
    if not value:
        return ""
    match = _MSGID.search(str(value))
    return match.group(0)[:998] if match else ""


def is_spam(raw: bytes) -> bool:
    """True when the header says `X-Spam: Yes` (the filter's verdict, added upstream)."""
    return _spam_verdict(BytesHeaderParser(policy=compat32).parsebytes(header_block(raw)))


def _spam_verdict(parsed) -> bool:  # noqa: ANN001 - a compat32 Message
    return any(str(v).strip().lower() == "yes" for v in (parsed.get_all("X-Spam") or []))
