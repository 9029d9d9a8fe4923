"""Reading stored messages for display: text and HTML bodies, attachments, inline images.

Parts are addressed by a dotted path of 1-based indexes in the MIME tree ("1", "2.1"), the
same numbering IMAP's BODY[section] uses (RFC 9051 6.4.5), so a part has one stable name.
Parsing is tolerant: a broken message still shows whatever could be decoded.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser

from django.conf import settings

from mailboxes import addresslist
from mailboxes.charsets import part_charset
from mailboxes.headers import bounded_header, decode_words
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


# Characters of one header value, and depth of nested comments, that the email package's
# header registry is given: its parser recurses per nesting level (a 20,000-deep comment in
# From was a RecursionError, a 500) and is super-linear in parameters and groups (10,000
# RFC 2231 parameters took 25 s). Longer values are shown cut (after 64 parameters or
# 8 KiB), deeper comments flattened.
MAX_HEADER_CHARS = 8 * 1024
MAX_COMMENT_DEPTH = 20
MAX_HEADER_PARAMETERS = 24


def _bounded(value: str) -> str:
    value = value[:MAX_HEADER_CHARS]
    if value.count(";") > MAX_HEADER_PARAMETERS:
        cut = -1
        for _ in range(MAX_HEADER_PARAMETERS + 1):
            cut = value.index(";", cut + 1)
        value = value[:cut]
    if value.count("(") <= MAX_COMMENT_DEPTH:
        return value
    out = []
    depth = 0
    for ch in value:
        if ch == "(":
            depth += 1
            if depth > MAX_COMMENT_DEPTH:
                continue
        elif ch == ")" and depth:
            depth -= 1
            if depth >= MAX_COMMENT_DEPTH:
                continue
        out.append(ch)
    return "".join(out)


class _BoundedPolicy(policy.EmailPolicy):
    """policy.default, with header values bounded before the header registry parses them."""

    def header_fetch_parse(self, name, value):  # noqa: ANN001, ANN201 - the email API's
        if not hasattr(value, "name"):
            value = _bounded(value)
        return super().header_fetch_parse(name, value)


BOUNDED = _BoundedPolicy()


def parse(raw: bytes) -> EmailMessage:
    raw = bounded_header(raw)  # a 100,000-field header took seconds to parse
    try:
        return BytesParser(policy=BOUNDED).parsebytes(raw)
    except RecursionError:
        # Nesting deeper than the email package can walk (a thousand multiparts): show the
        # headers and the body as plain text rather than fail the page.
        message = BytesParser(policy=BOUNDED).parsebytes(raw, headersonly=True)
        del message["Content-Type"]
        del message["Content-Transfer-Encoding"]
        message["Content-Type"] = "text/plain; charset=utf-8"
        return message


def _walk(part: Message, path: str):
    """Yield (path, part) for every leaf and message/rfc822 part, depth first."""
    if part.is_multipart() and part.get_content_type() != "message/rfc822":
        for index, child in enumerate(part.iter_parts(), start=1):
            child_path = f"{path}.{index}" if path else str(index)
            yield from _walk(child, child_path)
    else:
        yield (path or "1"), part


def part_at(message: EmailMessage, path: str) -> Message | None:
    if not re.fullmatch(r"\d+(\.\d+)*", path or ""):
        return None
    if not message.is_multipart():
        return message if path == "1" else None
    current: Message = message
    for piece in path.split("."):
        if not current.is_multipart():
            return None
        children = list(current.iter_parts())
        index = int(piece)
        if not 1 <= index <= len(children):
            return None
        current = children[index - 1]
    return current


def part_filename(part: Message) -> str:
    """The part's file name: RFC 2231 parameters and RFC 2047 words decoded."""
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if not name:
        try:
            name = part.get_param("name", header="content-type")
        except Exception:
            name = None
        if isinstance(name, tuple):  # RFC 2231 triple
            from email.utils import collapse_rfc2231_value

            name = collapse_rfc2231_value(name)
    name = decode_words(str(name)) if name else ""
    # A name is a name, not a path.
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip().strip(".")
    return "".join(c for c in name if c.isprintable())[:200]


def part_filename_from_upload(name: str) -> str:
    """A browser-supplied file name, reduced to a plain name."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    name = "".join(c for c in name if c.isprintable())[:200]
    return name or "attachment"


def part_bytes(part: Message) -> bytes:
    """The decoded content of a leaf part; an attached message/rfc822 as its own bytes."""
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner:
            return inner[0].as_bytes(policy=policy.SMTP)
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if payload is None:
        raw = part.get_payload()
        return raw.encode("utf-8", "replace") if isinstance(raw, str) else b""
    return payload


def part_text(part: Message) -> str:
    data = part_bytes(part)
    charset = part_charset(part, "utf-8")
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def _content_id(part: Message) -> str:
    value = str(part.get("Content-ID") or "").strip()
    return value[1:-1] if value.startswith("<") and value.endswith(">") else value


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
        shown += f" and over {max(more, 0):,} more"  # the parser read the first 64 KiB
    elif more > 0:
        shown += f" and {more:,} more"
    return shown


def _shown_headers(message: Message, result: ParsedMessage) -> None:
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
    """Everything the reading view shows. A message the email package cannot take apart is
    shown as its header fields and its body as plain text."""
    try:
        return _read(raw)
    except Exception as exc:
        logger.warning("webmail read-degraded error=%s", type(exc).__name__, exc_info=True)
        head = BytesParser(policy=policy.compat32).parsebytes(raw, headersonly=True)
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
    try:
        body = message.get_body(preferencelist=("html", "plain"))
        plain = message.get_body(preferencelist=("plain",))
    except Exception:
        body = plain = None
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


def searchable_text(raw: bytes) -> str:
    """Every body text of a message, plain and HTML alike (they can differ), for search.

    The compat32 parser skips the header registry, which costs most of a policy.default
    parse; search decodes hundreds of messages per query.
    """
    from email.parser import BytesParser as Parser
    from email.policy import compat32

    message = Parser(policy=compat32).parsebytes(raw)
    texts = []
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype not in {"text/plain", "text/html"}:
            continue
        if (part.get("Content-Disposition") or "").lower().startswith("attachment"):
            continue
        text = part_text(part)
        texts.append(html_to_text(text) if ctype == "text/html" else text)
    return "\n".join(texts)
