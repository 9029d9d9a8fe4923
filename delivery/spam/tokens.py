"""Tokens of a message for the classifier, hashed: pure functions, no I/O.

Words of the Subject and the text parts (HTML tags dropped), the From address and domain,
and the host names of links, each prefixed with where it came from ("s:", "f:", "u:"), read
from at most BODY_LIMIT octets of text. Each token is kept once per message and hashed to
32 bits (zlib.crc32, stable across processes, unlike hash()); the classifier stores hashes
only. 0 is reserved for the totals row.
"""

from __future__ import annotations

import quopri
import re
import zlib
from dataclasses import dataclass
from email import message_from_bytes
from email._encoded_words import decode_b
from email.message import Message
from email.policy import compat32

from mailboxes import headers
from mailboxes.charsets import part_charset

# Decoded text read per message (SpamAssassin reads 50 000 characters of each body part; the
# words that decide are near the top, and the cost grows with the text), from at most
# RAW_LIMIT octets of the message.
BODY_LIMIT = 16 * 1024
RAW_LIMIT = 32 * 1024
MAX_TOKENS = 1500  # distinct tokens kept per message (the first ones)

_WORD = re.compile(r"[^\W_]{3,24}")
_TAG = re.compile(r"<[^>]{0,2000}>")
_URL_HOST = re.compile(r"(?i)https?://([a-z0-9.-]{1,253})")
# The domain after an "@" (matching the local part too would rescan every long word).
_ADDRESS = re.compile(r"@([\w-]+(?:\.[\w-]+)+)")


def token_hash(token: str) -> int:
    """The signed 32-bit hash stored for a token (never 0: that is the totals row)."""
    value = zlib.crc32(token.encode("utf-8", "surrogatepass"))
    if value >= 1 << 31:
        value -= 1 << 32
    return value or 1


@dataclass
class Text:
    """What the scorer and the classifier read of a message, from one parse."""

    text: str  # the text parts, decoded, HTML tags dropped; at most BODY_LIMIT characters
    has_plain: bool
    has_html: bool


def text_of(raw: bytes, header: Message | None = None, body_start: int | None = None) -> Text:
    """The decoded text of the message's text/* parts (see Text). `header`: the compat32
    parse of raw's header section (mailboxes.headers.header_read), when the caller has it:
    a single-part text message is then read without parsing the message again;
    `body_start`: header_read's, where the header's fast reading says the body starts."""
    if header is not None:
        single = _single_text_part(raw, header, body_start)
        if single is not None:
            return single
    message = message_from_bytes(raw[:RAW_LIMIT], policy=compat32)
    texts: list[str] = []
    size = 0
    kinds = set()
    for part in message.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        if str(part.get("Content-Disposition", "")).lower().startswith("attachment"):
            continue
        kinds.add(part.get_content_subtype())
        if size >= BODY_LIMIT:
            continue
        try:
            payload = part.get_payload(decode=True) or b""
        except Exception:  # a broken transfer encoding is read as it stands
            payload = str(part.get_payload()).encode("utf-8", "replace")
        charset = part_charset(part, "utf-8")
        try:
            text = payload.decode(charset, "replace")
        except LookupError:
            text = payload.decode("utf-8", "replace")
        if part.get_content_subtype() == "html":
            text = _TAG.sub(" ", text)
        texts.append(text[: BODY_LIMIT - size])
        size += len(texts[-1])
    return Text("\n".join(texts), "plain" in kinds, "html" in kinds)


# A header section as the email package reads it (email.feedparser): lines end at CRLF, CR or
# LF, each a field ("name:") or a continuation, up to a blank line. A "From " line, or any
# other that would end the header first, does not match.
_HEADER = re.compile(rb"(?:(?:[\041-\071\073-\176]*:|[\t ])[^\r\n]*(?:\r\n|\r|\n))*(?:\r\n|\r|\n)")
# Content-Transfer-Encodings whose payload compat32's get_payload(decode=True) returns as is.
_DECODERS = {
    "quoted-printable": quopri.decodestring,
    "base64": lambda data: decode_b(b"".join(data.splitlines()))[0],
}
_UUENCODE = frozenset({"x-uuencode", "uuencode", "uue", "x-uue"})


def _single_text_part(raw: bytes, header: Message, body_start: int | None = None) -> Text | None:
    """text_of for a message that is one text/* part, from the header already parsed: the
    body is where email.feedparser starts it and is decoded as compat32's get_payload does,
    so the Text is the full parse's. None where that reading is not certain (a "From " line
    in the header, a header without its blank line in the first RAW_LIMIT octets or that
    another line would end first, a uuencoded body): the caller parses. `body_start`
    (HeaderRead's) is where _HEADER's match would end: every line of the header a field or
    its continuation, up to its blank line, which is also header_block's."""
    if header.get_content_maintype() != "text":
        return None  # multipart and message/* have parts of their own; other types none
    if body_start is None:
        # _HEADER is tried at every octet of the header (about 40,000 instructions for port
        # 25's 1 KB message): only where the header's reading did not take every line.
        section = _HEADER.match(raw, 0, RAW_LIMIT)
        if section is None or section.end() != len(headers.header_block(raw)):
            return None
        body_start = section.end()
    elif body_start > RAW_LIMIT:
        return None  # _HEADER's match, bounded by RAW_LIMIT, would not reach the blank line
    subtype = header.get_content_subtype()
    if str(header.get("Content-Disposition", "")).lower().startswith("attachment"):
        return Text("", False, False)
    cte = str(header.get("content-transfer-encoding", "")).lower()
    if cte in _UUENCODE:
        return None
    payload = raw[body_start:RAW_LIMIT]
    decoder = _DECODERS.get(cte)
    if decoder is not None:
        try:
            payload = decoder(payload)
        except Exception:
            return None
    charset = part_charset(header, "utf-8")
    try:
        text = payload.decode(charset, "replace")
    except LookupError:
        text = payload.decode("utf-8", "replace")
    if subtype == "html":
        text = _TAG.sub(" ", text)
    return Text(text[:BODY_LIMIT], subtype == "plain", subtype == "html")


def tokens(text: Text, *, subject: str = "", from_address: str = "") -> set[str]:
    """The distinct tokens of a message (see the module docstring)."""
    found: dict[str, None] = {}
    if from_address:
        address = from_address.lower()
        found["f:" + address] = None
        found["f@" + address.rpartition("@")[2]] = None
    for word in _WORD.findall(subject.lower()):
        found["s:" + word] = None
    body = text.text
    for host in _URL_HOST.findall(body):
        found["u:" + host.lower().rstrip(".")] = None
    for domain in _ADDRESS.findall(body):
        found["a@" + domain.lower()] = None
    for word in _WORD.findall(body.lower()):
        if len(found) >= MAX_TOKENS:
            break
        found[word] = None
    return set(found)


def hashes_of(text: Text, *, subject: str, from_address: str) -> list[int]:
    words = tokens(text, subject=subject, from_address=from_address)
    return sorted({token_hash(t) for t in words})


def message_hashes(raw: bytes) -> list[int]:
    """The sorted distinct token hashes of a message, as the classifier counts them."""
    summary = headers.summarize(raw)
    return hashes_of(text_of(raw), subject=summary["subject"], from_address=summary["from_address"])
