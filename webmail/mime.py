"""Reading stored messages for display: text and HTML bodies, attachments, inline images.

The message is read by the store's MIME model (mailboxes/mime.py), the one IMAP reads too:
parts are addressed by a dotted path of 1-based indexes in its tree ("1", "2.1"), the same
numbering IMAP's BODY[section] uses (RFC 9051 6.4.5), so a part has one name and one content
for both. Parsing is tolerant: a broken message still shows whatever could be decoded.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.utils.translation import gettext

from mailboxes import addresslist
from mailboxes import mime as model
from mailboxes.charsets import part_charset
from mailboxes.headers import decode_words
from webmail import htmltext

logger = logging.getLogger(__name__)

# Types a browser may show inline from our origin without risk of script execution.
SAFE_INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"})


@dataclass
class Attachment:
    path: str
    filename: str
    content_type: str
    size: int
    content_id: str = ""
    inline: bool = False  # referenced from the HTML body by cid:


@dataclass
class ParsedMessage:
    headers: list[tuple[str, str]]  # (name, text shown), address lists cut for display
    text: str = ""
    html: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    # content-id (without <>) -> part path, for cid: images in the HTML
    cids: dict[str, str] = field(default_factory=dict)
    # address header name -> every (display name, address) of its fields, for reply and drafts
    address_lists: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def header(self, name: str) -> str:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return ""

    def addresses(self, name: str) -> list[tuple[str, str]]:
        return self.address_lists.get(name, [])

    @property
    def visible_attachments(self) -> list[Attachment]:
        return [a for a in self.attachments if not a.inline]


def _text(value: bytes) -> str:
    # Header octets as the email package gives them: ASCII, other octets kept as surrogates.
    return value.decode("ascii", "surrogateescape")


class MessagePart:
    """One part of a stored message in the store's MIME model, with what the reading view asks
    of it (its type, header fields, parameters); one object per part of a parse."""

    def __init__(self, raw: bytes, part: model.Part, known: dict | None = None):
        self.raw = raw
        self.part = part
        self._known = {} if known is None else known  # model part id -> its MessagePart
        self._known[id(part)] = self
        self._header: model.Header | None = None
        self._params: list[tuple[bytes, bytes]] | None = None

    def _of(self, part: model.Part) -> MessagePart:
        return self._known.get(id(part)) or MessagePart(self.raw, part, self._known)

    @property
    def header(self) -> model.Header:
        if self._header is None:
            self._header = model.Header(self.raw, self.part.hs, self.part.bs)
        return self._header

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self.header.get(name.lower())
        return default if value is None else _text(value)

    def raw_items(self) -> list[tuple[str, str]]:
        raw = self.raw
        return [
            (name, _text(model.field_value(raw, vs, fe)))
            for name, _fs, vs, fe in self.header.fields
        ]

    def get_content_type(self) -> str:
        return _text(self.part.ctype + b"/" + self.part.sub).lower()

    def is_multipart(self) -> bool:
        return bool(self.part.children) or self.part.message is not None

    def iter_parts(self) -> list[MessagePart]:
        if self.part.message is not None:
            return [self._of(self.part.message)]
        return [self._of(child) for child in self.part.children]

    def get_content_disposition(self) -> str | None:
        disposition = model.parse_disposition(self.header.get("content-disposition"))
        return None if disposition is None else _text(disposition[0]).lower()

    def get_param(self, name: str, header: str = "content-type") -> str | None:
        """A parameter of Content-Type (or Content-Disposition), RFC 2231 values decoded."""
        value = self.header.get(header)
        if value is None:
            return None
        if header == "content-type":
            params = model.parse_content_type(value)[2]
        else:
            params = (model.parse_disposition(value) or (b"", []))[1]
        wanted = name.lower().encode()
        for key, value in params:
            if key.lower() == wanted:
                return _text(value)
        for key, value in params:
            if key.lower() == wanted + b"*":
                return _rfc2231_value(value)
        return None

    def get_content_charset(self) -> str | None:
        charset = self.get_param("charset")
        return charset.lower() if charset else None

    def get_filename(self) -> str | None:
        return self.get_param("filename", "content-disposition") or self.get_param("name")


def _rfc2231_value(value: bytes) -> str:
    """charset'language'percent-encoded octets (RFC 2231 4) as text."""
    charset, _sep, rest = value.partition(b"'")
    _language, sep, encoded = rest.partition(b"'")
    if not sep:
        return _text(value)
    data = unquote_to_bytes(encoded)
    try:
        return data.decode(_text(charset) or "us-ascii", "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def parse(raw: bytes) -> MessagePart:
    return MessagePart(raw, model.parse(raw))


def _walk(part: MessagePart, path: str):
    """Yield (path, part) for every leaf and message/rfc822 part, depth first."""
    if part.part.children:
        for index, child in enumerate(part.iter_parts(), start=1):
            child_path = f"{path}.{index}" if path else str(index)
            yield from _walk(child, child_path)
    else:
        yield (path or "1"), part


def part_at(message: MessagePart, path: str) -> MessagePart | None:
    if not re.fullmatch(r"\d+(\.\d+)*", path or ""):
        return None
    found = model.part_at(message.part, tuple(int(n) for n in path.split(".")))
    return None if found is None else message._of(found)


def part_filename(part: MessagePart) -> str:
    """The part's file name: RFC 2231 parameters and RFC 2047 words decoded."""
    name = part.get_filename()
    name = decode_words(str(name)) if name else ""
    # A name is a name, not a path.
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip().strip(".")
    return "".join(c for c in name if c.isprintable())[:200]


def part_filename_from_upload(name: str) -> str:
    """A browser-supplied file name, reduced to a plain name."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    name = "".join(c for c in name if c.isprintable())[:200]
    return name or "attachment"


def part_bytes(part: MessagePart) -> bytes:
    """The decoded content of a leaf part; an attached message/rfc822 as its stored octets
    (what IMAP's BODY[path] gives)."""
    return model.content(part.raw, part.part)


def part_text(part: MessagePart) -> str:
    data = part_bytes(part)
    charset = part_charset(part, "utf-8")
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def _content_id(part: MessagePart) -> str:
    value = str(part.get("Content-ID") or "").strip()
    return value[1:-1] if value.startswith("<") and value.endswith(">") else value


def _find_body(part: MessagePart, preferences: tuple[str, ...], root: MessagePart):
    """(rank, part) of the candidates for the body, as the email package's get_body ranks
    them: text parts of a preferred subtype, through multiparts, and of a multipart/related
    only its start part."""
    if part.get_content_disposition() == "attachment":
        return
    maintype, _slash, subtype = part.get_content_type().partition("/")
    if maintype == "text":
        if subtype in preferences:
            yield preferences.index(subtype), part
        return
    if maintype != "multipart" or not root.is_multipart():
        return
    if subtype != "related":
        for child in part.iter_parts():
            yield from _find_body(child, preferences, root)
        return
    candidate = None
    start = part.get_param("start")
    if start:
        candidate = next((c for c in part.iter_parts() if c.get("Content-ID") == start), None)
    if candidate is None:
        children = part.iter_parts()
        candidate = children[0] if children else None
    if candidate is not None:
        yield from _find_body(candidate, preferences, root)


def get_body(message: MessagePart, preferences: tuple[str, ...]) -> MessagePart | None:
    best, body = len(preferences), None
    for rank, part in _find_body(message, preferences, message):
        if rank < best:
            best, body = rank, part
            if rank == 0:
                break
    return body


DISPLAY_HEADERS = ("From", "Sender", "Reply-To", "To", "Cc", "Bcc", "Date", "Subject")
ADDRESS_HEADERS = frozenset({"From", "Sender", "Reply-To", "To", "Cc", "Bcc"})
# What the reading view shows of one header field: a list of 10,000 addresses (or groups) is
# shown as its first MAX_SHOWN_ADDRESSES and how many more; any value is cut after
# MAX_SHOWN_CHARS characters.
MAX_SHOWN_ADDRESSES = 50
MAX_SHOWN_CHARS = 4096


def address_pairs(value: str) -> list[tuple[str, str]]:
    """(display name, address) of an address field's raw value, by the linear parser of
    mailboxes/addresslist.py (which reads its first MAX_LIST_OCTETS); group names left out."""
    pairs = []
    data = value.encode("utf-8", "surrogateescape")
    for name, _adl, mailbox, host in addresslist.parse_addresses(data):
        if mailbox is None or host is None or mailbox == addresslist.MISSING_MAILBOX:
            continue  # a group's start or end, or a name without an address
        address = mailbox.decode("utf-8", "replace")
        if host != addresslist.MISSING_DOMAIN:
            address += "@" + host.decode("utf-8", "replace")
        label = decode_words(name.decode("utf-8", "replace")) if name else ""
        pairs.append((label, address))
    return pairs


def _shown_addresses(value: str, pairs: list[tuple[str, str]]) -> str:
    if not pairs:
        return decode_words(value)
    shown = ", ".join(
        f"{label} <{address}>" if label else address
        for label, address in pairs[:MAX_SHOWN_ADDRESSES]
    )
    more = len(pairs) - MAX_SHOWN_ADDRESSES
    if len(value.encode("utf-8", "surrogateescape")) > addresslist.MAX_LIST_OCTETS:
        # the parser read the first 64 KiB
        shown += gettext(" and over %(count)s more") % {"count": f"{max(more, 0):,}"}
    elif more > 0:
        shown += gettext(" and %(count)s more") % {"count": f"{more:,}"}
    return shown


def _shown_headers(message: MessagePart, result: ParsedMessage) -> None:
    """The header fields the reading view shows, from their raw values: never through the
    email package's header registry, which fails on some hostile lists (a group not followed
    by a comma raised AttributeError, a 500)."""
    raw_values: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        raw_values.setdefault(name.lower(), []).append(str(value))
    for name in DISPLAY_HEADERS:
        for value in raw_values.get(name.lower(), []):
            if name in ADDRESS_HEADERS:
                pairs = address_pairs(value)
                result.address_lists.setdefault(name, []).extend(pairs)
                text = _shown_addresses(value, pairs)
            else:
                text = decode_words(value)
            text = " ".join(text.split())
            if len(text) > MAX_SHOWN_CHARS:
                text = text[:MAX_SHOWN_CHARS] + "…"
            result.headers.append((name, text))


def read(raw: bytes) -> ParsedMessage:
    """Everything the reading view shows. A message that cannot be taken apart is shown as
    its header fields and its body as plain text."""
    try:
        return _read(raw)
    except Exception as exc:
        logger.warning("webmail read-degraded error=%s", type(exc).__name__, exc_info=True)
        head = MessagePart(raw, model.Part(0, model.split_header(raw, 0, len(raw)), len(raw)))
        result = ParsedMessage(headers=[])
        _shown_headers(head, result)
        body = raw.partition(b"\r\n\r\n")[2] or raw.partition(b"\n\n")[2]
        result.text = body.decode("utf-8", "replace")
        return result


def _read(raw: bytes) -> ParsedMessage:
    message = parse(raw)
    result = ParsedMessage(headers=[])
    _shown_headers(message, result)
    text_parts: list[str] = []
    html_parts: list[str] = []
    # The body: the preferred alternative of the first text parts; the rest are attachments.
    body = get_body(message, ("html", "plain"))
    plain = get_body(message, ("plain",))
    body_ids = {id(p) for p in (body, plain) if p is not None}
    for path, part in _walk(message, ""):
        ctype = part.get_content_type()
        disposition = (part.get_content_disposition() or "").lower()
        if id(part) in body_ids and disposition != "attachment":
            if ctype == "text/html":
                html_parts.append(part_text(part))
            else:
                text_parts.append(part_text(part))
            continue
        if ctype.startswith("multipart/"):
            continue
        filename = part_filename(part)
        cid = _content_id(part)
        if (
            not filename
            and not cid
            and disposition != "attachment"
            and ctype in {"text/plain", "text/html"}
            and not text_parts
            and not html_parts
        ):
            (html_parts if ctype == "text/html" else text_parts).append(part_text(part))
            continue
        size = len(part_bytes(part))
        if not filename:
            filename = fallback_name(ctype, path)
        attachment = Attachment(
            path=path, filename=filename, content_type=ctype, size=size, content_id=cid
        )
        if cid:
            result.cids[cid] = path
        result.attachments.append(attachment)
    result.text = "\n\n".join(text_parts)
    result.html = "\n".join(html_parts)
    if result.html:
        referenced = set(re.findall(r"cid:([^\"'\s>)]+)", result.html, re.I))
        for attachment in result.attachments:
            if attachment.content_id and attachment.content_id in referenced:
                attachment.inline = True
    return result


def fallback_name(ctype: str, path: str) -> str:
    extensions = {
        "message/rfc822": "eml",
        "text/plain": "txt",
        "text/html": "html",
        "image/png": "png",
        "image/jpeg": "jpg",
        "application/pdf": "pdf",
    }
    return f"part-{path}.{extensions.get(ctype, 'bin')}"


def quote_text(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in text.splitlines())


def html_to_text(html: str) -> str:
    """A readable plain-text rendering of an HTML body (for replies, the thread view, search),
    in linear time over at most MAILHOST_WEBMAIL_HTML_LIMIT characters of it."""
    return htmltext.to_text(html, limit=settings.MAILHOST_WEBMAIL_HTML_LIMIT)


def body_text(raw: bytes) -> str:
    """The body as plain text: the text part, else the HTML part rendered as text."""
    parsed = read(raw)
    return parsed.text or html_to_text(parsed.html)
