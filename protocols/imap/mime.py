"""IMAP's ENVELOPE, BODY and BODYSTRUCTURE (RFC 9051 7.5.2) from the message's MIME model
(mailboxes/mime.py, which also gives the sections' octets).

`analyze(raw)` returns a JSON-serializable dict (`CACHE_VERSION`) that the engine stores in
Message.mime_cache; `tree_from_cache` rebuilds what section extraction needs from it without
re-parsing the bytes.
"""

from __future__ import annotations

import re

from mailboxes.addresslist import parse_addresses
from mailboxes.mime import (  # noqa: F401  (the model's parts FETCH reads through this module)
    MAX_DEPTH,
    MAX_HEADER_OCTETS,
    Header,
    Part,
    UnknownCTE,
    binary,
    decode_cte,
    decode_qp,
    latin,
    parse_disposition,
    part_at,
    section,
    split_header,
    text_parts,
)
from mailboxes.mime import parse as parse_tree

CACHE_VERSION = 3  # 2: nested multiparts reusing a boundary, line counts; 3: ENVELOPE lists
MAX_CACHED_PARTS = 1000

NIL = b"NIL"


# --- IMAP string rendering ---------------------------------------------------------------


def nstring(value: bytes | None) -> bytes:
    """A quoted string when it can be one, else a literal (8-bit, CR, LF); NIL for None."""
    if value is None:
        return NIL
    return astring_q(value)


def astring_q(value: bytes) -> bytes:
    if b"\x00" in value:
        value = value.replace(b"\x00", b"")  # NUL is allowed in no IMAP string
    if len(value) < 1000 and not _NEEDS_LITERAL.search(value):
        return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(value) + value


_NEEDS_LITERAL = re.compile(rb"[\r\n\x80-\xff]")


# --- RFC 5322 address lists (RFC 9051 7.5.2 ENVELOPE addresses) --------------------------

# The parser (mailboxes/addresslist.py) is shared with the header summary cached at delivery.


def _address_list(value: bytes | None) -> bytes:
    if value is None:
        return NIL
    addresses = parse_addresses(value)
    if not addresses:
        return NIL
    return (
        b"("
        + b"".join(b"(" + b" ".join(nstring(p) for p in addr) + b")" for addr in addresses)
        + b")"
    )


def envelope(header: Header) -> bytes:
    """RFC 9051 7.5.2 ENVELOPE of a parsed header."""
    # Address fields that occur more than once are concatenated, as Dovecot answers (SEARCH
    # TO/CC match every one); the others keep the first.
    from_list = _address_list(header.get_list("from"))
    sender = header.get_list("sender")
    reply_to = header.get_list("reply-to")
    # RFC 3501 7.4.2: absent or empty Sender / Reply-To take the value of From.
    sender_list = _address_list(sender) if sender else NIL
    reply_list = _address_list(reply_to) if reply_to else NIL
    if sender_list == NIL:
        sender_list = from_list
    if reply_list == NIL:
        reply_list = from_list
    return (
        b"("
        + b" ".join(
            (
                nstring(header.get("date")),
                nstring(header.get("subject")),
                from_list,
                sender_list,
                reply_list,
                _address_list(header.get_list("to")),
                _address_list(header.get_list("cc")),
                _address_list(header.get_list("bcc")),
                nstring(header.get("in-reply-to")),
                nstring(header.get("message-id")),
            )
        )
        + b")"
    )


def _param_list(params: list[tuple[bytes, bytes]]) -> bytes:
    if not params:
        return NIL
    return b"(" + b" ".join(nstring(k) + b" " + nstring(v) for k, v in params) + b")"


def _language(value: bytes | None) -> bytes:
    if not value:
        return NIL
    tags = [t.strip() for t in re.sub(rb"\([^)]*\)", b"", value).split(b",") if t.strip()]
    if not tags:
        return NIL
    if len(tags) == 1:
        return nstring(tags[0])
    return b"(" + b" ".join(nstring(t) for t in tags) + b")"


def _describe(part: Part, header: Header, params: list[tuple[bytes, bytes]], raw: bytes) -> None:
    """Fill in what ENVELOPE, BODY and BODYSTRUCTURE show of a part (RFC 9051 7.5.2)."""
    if part.is_message:
        part.envelope = envelope(header)
    if part.ctype.lower() == b"text" or part.message is not None:
        # Dovecot counts the line feeds: a last line without one is not counted.
        part.lines = raw.count(b"\n", part.bs, part.be)
    if part.ctype.lower() == b"text" and not any(k.lower() == b"charset" for k, _v in params):
        # RFC 2045 5.2: text without a charset is US-ASCII; shown as Dovecot does.
        params = [*params, (b"charset", b"us-ascii")]
    # body-fields: params, id, description, encoding, size
    part.fields = b" ".join(
        (
            _param_list(params),
            nstring(header.get("content-id")),
            nstring(header.get("content-description")),
            nstring(part.cte),
            b"%d" % (part.be - part.bs),
        )
    )
    disposition = parse_disposition(header.get("content-disposition"))
    disp = (
        NIL
        if disposition is None
        else b"(" + nstring(disposition[0]) + b" " + _param_list(disposition[1]) + b")"
    )
    tail = b" ".join(
        (disp, _language(header.get("content-language")), nstring(header.get("content-location")))
    )
    if part.children:
        part.ext = _param_list(params) + b" " + tail
    else:
        part.ext = nstring(header.get("content-md5")) + b" " + tail


def parse(raw: bytes, *, render: bool = True) -> Part:
    """The part tree of a whole message; render=False skips what only FETCH shows
    (ENVELOPE, body fields, extension data, line counts)."""
    return parse_tree(raw, describe=_describe if render else None)


# --- BODY and BODYSTRUCTURE (RFC 9051 7.5.2) ---------------------------------------------


def bodystructure(part: Part, extensible: bool = True) -> bytes:
    if part.children:
        inner = b"".join(bodystructure(child, extensible) for child in part.children)
        out = inner + b" " + nstring(part.sub)
        if extensible:
            out += b" " + part.ext
        return b"(" + out + b")"
    out = nstring(part.ctype) + b" " + nstring(part.sub) + b" " + part.fields
    if part.message is not None:
        message = part.message
        out += b" " + message.envelope + b" " + bodystructure(message, extensible)
        out += b" %d" % part.lines
    elif part.ctype.lower() == b"text":
        out += b" %d" % part.lines
    if extensible:
        out += b" " + part.ext
    return b"(" + out + b")"


# --- Cache -------------------------------------------------------------------------------


def _flatten(part: Part) -> list:
    """[hs, bs, be, ctype, sub, cte, is_message, children, message] with strings latin-1."""
    return [
        part.hs,
        part.bs,
        part.be,
        latin(part.ctype),
        latin(part.sub),
        latin(part.cte),
        part.is_message,
        [_flatten(c) for c in part.children],
        None if part.message is None else _flatten(part.message),
    ]


def _unflatten(data: list) -> Part:
    hs, bs, be, ctype, sub, cte, is_message, children, message = data
    return Part(
        hs,
        bs,
        be,
        ctype.encode("latin-1"),
        sub.encode("latin-1"),
        cte.encode("latin-1"),
        is_message,
        [_unflatten(c) for c in children],
        None if message is None else _unflatten(message),
    )


def analyze(raw: bytes) -> dict:
    """Everything FETCH needs from the bytes, JSON-serializable for Message.mime_cache.

    The tree is nested at most MAX_DEPTH * 2 lists deep, within json's recursion limit; a
    message of more than MAX_CACHED_PARTS parts keeps no tree (sections re-parse its bytes)
    so one pathological message cannot bloat its row.
    """
    root = parse(raw)
    return {
        "v": CACHE_VERSION,
        "size": len(raw),
        "envelope": latin(root.envelope),
        "body": latin(bodystructure(root, extensible=False)),
        "bodystructure": latin(bodystructure(root, extensible=True)),
        "tree": _flatten(root) if _count_parts(root) <= MAX_CACHED_PARTS else None,
    }


def _count_parts(root: Part) -> int:
    count, stack = 0, [root]
    while stack:
        part = stack.pop()
        count += 1
        stack.extend(part.children)
        if part.message is not None:
            stack.append(part.message)
    return count


def cache_valid(cache: object) -> bool:
    return isinstance(cache, dict) and cache.get("v") == CACHE_VERSION and "tree" in cache


def tree_from_cache(cache: dict, raw: bytes | None = None) -> Part:
    """The part tree from the cache; re-parsed from raw when the cache keeps none."""
    if cache["tree"] is None:
        if raw is None:
            raise ValueError("this cache keeps no tree: pass the raw bytes")
        return parse(raw)
    return _unflatten(cache["tree"])
