"""The MIME model of a stored message, shared by IMAP and webmail: its header fields, its part
tree and the parts' numbering, each part's octets and their decoded content and text.

Everything works on the stored octets and offsets into them; nothing is re-serialized, so the
size of every part is exactly the number of octets a client receives (RFC 9051 7.5.2: body
size "in octets ... not the resulting size after any decoding").

Parsing never raises on bad input: a message with missing boundaries, bad encodings, 8-bit
headers, no header at all or thousands of nested parts still has a tree. Nesting deeper than
MAX_DEPTH (or more than MAX_PARTS parts) is an opaque application/octet-stream leaf, as Dovecot
caps it, so what is shown of it stays bounded.

Parts are numbered as IMAP's BODY[section] numbers them (RFC 9051 6.4.5): `part_at(root,
(2, 1))`. IMAP's ENVELOPE and BODYSTRUCTURE are rendered from this tree by
protocols/imap/mime.py (through parse's `describe` hook, while the headers are at hand).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from mailboxes import charsets  # noqa: F401  (registers the charset aliases mail uses)

MAX_DEPTH = 100
MAX_PARTS = 10000
# Parameters read from one Content-Type or Content-Disposition field (RFC 2231 continuations
# count one each); the rest are ignored, so 10,000 parameters cost what 256 do.
MAX_PARAMETERS = 256
# Octets of a header section whose fields ENVELOPE and BODYSTRUCTURE read: a 100,000-field
# header took a second; legitimate headers stay far below it.
MAX_HEADER_OCTETS = 64 * 1024


class UnknownCTE(Exception):
    """A Content-Transfer-Encoding we cannot decode (IMAP's BINARY answers NO [UNKNOWN-CTE],
    RFC 3516 4.3)."""


def latin(value: bytes) -> str:
    return value.decode("latin-1")


# --- Header fields -----------------------------------------------------------------------

_BLANK_LINE = re.compile(rb"\n\r?\n")


def split_header(raw: bytes, start: int, end: int) -> int:
    """Where the body starts: after the first empty line (the header includes it)."""
    if start >= end:
        return end
    if raw.startswith(b"\r\n", start) and start + 2 <= end:
        return start + 2
    if raw[start] == 0x0A:
        return start + 1
    match = _BLANK_LINE.search(raw, start, end)
    return match.end() if match else end


def header_fields(raw: bytes, start: int, end: int) -> list[tuple[str, int, int, int]]:
    """(lower-case name, field start, value start, field end) of each header field.

    Lines that are not fields (no colon) are skipped; continuation lines join the field
    before them (RFC 5322 2.2.3).
    """
    fields: list[tuple[str, int, int, int]] = []
    pos = start
    current: list | None = None
    while pos < end:
        nl = raw.find(b"\n", pos, end)
        line_end = end if nl < 0 else nl + 1
        first = raw[pos]
        if first == 0x0A or (first == 0x0D and line_end - pos == 2 and nl >= 0):
            break  # the empty line
        if first in (0x20, 0x09):
            if current is not None:
                current[3] = line_end
        else:
            colon = raw.find(b":", pos, line_end)
            if current is not None:
                fields.append(tuple(current))
                current = None
            if colon > pos:
                name = raw[pos:colon].strip()
                # find(), not `in`: CPython 3.11's bytes `in` first reads the needle as an
                # integer, raising and clearing a TypeError (about 1,800 instructions), at
                # every field of every header read (a port 25 message's three times over).
                if name and name.find(b" ") < 0:
                    current = [latin(name).lower(), pos, colon + 1, line_end]
        pos = line_end
    if current is not None:
        fields.append(tuple(current))
    return fields


def field_value(raw: bytes, value_start: int, field_end: int) -> bytes:
    """The unfolded value (every LF and every CR before one removed: RFC 5322 2.2.3, a bare
    LF too), without surrounding white space. Two replaces rather than a regular expression
    for an optional CR and an LF, which has no literal for re to scan for and was tried at
    every octet (port 25 reads some twenty fields a message)."""
    return raw[value_start:field_end].replace(b"\r\n", b"").replace(b"\n", b"").strip(b" \t\r\n")


class Header:
    """The fields of one header section: the first value of a field, or all of them."""

    __slots__ = ("raw", "fields", "_first")

    def __init__(self, raw: bytes, start: int, end: int):
        self.raw = raw
        # Structures read the first MAX_HEADER_OCTETS of a header (sections send it whole).
        self.fields = header_fields(raw, start, min(end, start + MAX_HEADER_OCTETS))
        self._first: dict[str, tuple[int, int]] = {}
        for name, _fs, vs, fe in self.fields:
            self._first.setdefault(name, (vs, fe))

    def get(self, name: str) -> bytes | None:
        where = self._first.get(name)
        return None if where is None else field_value(self.raw, *where)

    def get_list(self, name: str) -> bytes | None:
        """Every value of an address field joined into one list (None when absent)."""
        if name not in self._first:
            return None
        values = [field_value(self.raw, vs, fe) for n, _fs, vs, fe in self.fields if n == name]
        return b", ".join(v for v in values if v)


# --- Content-Type and friends (RFC 2045, RFC 2231) ---------------------------------------

_WSP = frozenset(b" \t\r\n")

# RFC 2045 5.1: a token is printable US-ASCII without tspecials (no CTLs, no 8-bit).
_TSPECIALS = (
    frozenset(b'()<>@,;:\\"/[]?=') | _WSP | frozenset(range(0x21)) | frozenset(range(0x7F, 0x100))
)


def _skip_cfws(value: bytes, i: int) -> int:
    n = len(value)
    while i < n:
        if value[i] in _WSP:
            i += 1
        elif value[i] == 0x28:
            depth = 0
            while i < n:
                if value[i] == 0x5C:
                    i += 1
                elif value[i] == 0x28:
                    depth += 1
                elif value[i] == 0x29:
                    depth -= 1
                    if depth == 0:
                        i += 1
                        break
                i += 1
        else:
            break
    return i


def _token(value: bytes, i: int) -> tuple[bytes, int]:
    j = i
    while j < len(value) and value[j] not in _TSPECIALS:
        j += 1
    return value[i:j], j


def _quoted(value: bytes, i: int) -> tuple[bytes, int]:
    out = bytearray()
    i += 1
    n = len(value)
    while i < n and value[i] != 0x22:
        if value[i] == 0x5C and i + 1 < n:
            i += 1
        out.append(value[i])
        i += 1
    return bytes(out), i + 1


def _params(value: bytes, i: int) -> list[tuple[bytes, bytes]]:
    raw_params: list[tuple[bytes, bytes]] = []
    n = len(value)
    while i < n and len(raw_params) < MAX_PARAMETERS:
        semi = value.find(b";", i)
        if semi < 0:
            break
        i = _skip_cfws(value, semi + 1)
        name, i = _token(value, i)
        i = _skip_cfws(value, i)
        if not name or i >= n or value[i] != 0x3D:
            continue
        i = _skip_cfws(value, i + 1)
        if i < n and value[i] == 0x22:
            val, i = _quoted(value, i)
        else:
            # lenient: an unquoted value runs to the next ";" (spaces and all)
            end = value.find(b";", i)
            end = n if end < 0 else end
            val = value[i:end].strip()
            i = end
        raw_params.append((name, val))
    return _rfc2231(raw_params)


_CONTINUATION = re.compile(rb"^(.+?)\*(\d+)(\*?)$")


def _rfc2231(params: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Join RFC 2231 continuations (name*0, name*1*); keep the charset form as "name*"."""
    if not any(name.find(b"*") >= 0 for name, _v in params):  # find: see header_fields
        return params
    result: list[tuple[bytes, bytes]] = []
    pieces: dict[bytes, list[tuple[int, bool, bytes]]] = {}
    order: list[bytes] = []
    for name, val in params:
        match = _CONTINUATION.match(name)
        if match:
            base = match.group(1)
            if base.lower() not in pieces:
                pieces[base.lower()] = []
                order.append(base)
            pieces[base.lower()].append((int(match.group(2)), bool(match.group(3)), val))
        else:
            result.append((name, val))
    for base in order:
        segments = sorted(pieces[base.lower()])
        extended = any(ext for _n, ext, _v in segments)
        if extended:
            joined = b"".join(
                v if ext else re.sub(rb"[^A-Za-z0-9!#$&+.^_`|~-]", _pct, v)
                for _n, ext, v in segments
            )
            if not segments[0][1]:
                joined = b"''" + joined
            result.append((base + b"*", joined))
        else:
            result.append((base, b"".join(v for _n, _e, v in segments)))
    return result


def _pct(match: re.Match) -> bytes:
    return b"%%%02X" % match.group(0)[0]


def parse_content_type(value: bytes | None) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
    """(type, subtype, params); invalid or absent means text/plain (RFC 2045 5.2)."""
    if value is None:
        return b"text", b"plain", [(b"charset", b"us-ascii")]
    i = _skip_cfws(value, 0)
    ctype, i = _token(value, i)
    i = _skip_cfws(value, i)
    if not ctype or i >= len(value) or value[i] != 0x2F:
        return b"text", b"plain", [(b"charset", b"us-ascii")]
    i = _skip_cfws(value, i + 1)
    sub, i = _token(value, i)
    if not sub:
        return b"text", b"plain", [(b"charset", b"us-ascii")]
    return ctype, sub, _params(value, i)


def parse_disposition(value: bytes | None) -> tuple[bytes, list[tuple[bytes, bytes]]] | None:
    if not value:
        return None
    i = _skip_cfws(value, 0)
    kind, i = _token(value, i)
    if not kind:
        return None
    return kind, _params(value, i)


# --- The part tree -----------------------------------------------------------------------


@dataclass
class Part:
    """One MIME entity: a header section [hs, bs) and a body [bs, be) of the raw bytes."""

    hs: int
    bs: int
    be: int
    ctype: bytes = b"text"
    sub: bytes = b"plain"
    cte: bytes = b"7bit"
    is_message: bool = False  # the top-level message or an encapsulated one
    children: list[Part] = field(default_factory=list)
    message: Part | None = None  # the encapsulated message of a message/rfc822 part
    # IMAP's rendered pieces, filled by parse's describe hook (protocols/imap/mime.py)
    fields: bytes = b""  # body-fields: params id desc enc size
    ext: bytes = b""  # extension data after the type-specific fields
    lines: int = 0
    envelope: bytes = b""  # of an is_message part
    charset: bytes = b""  # of a text/* part, when parsed from the bytes (not the cache)

    @property
    def multipart(self) -> bool:
        return bool(self.children)


def _is_message_type(ctype: bytes, sub: bytes) -> bool:
    # RFC 9051 7.5.2: MESSAGE/RFC822 and MESSAGE/GLOBAL carry envelope, body and lines.
    return ctype.lower() == b"message" and sub.lower() in (b"rfc822", b"global")


@dataclass(frozen=True)
class _Delimiter:
    """One delimiter line: where it starts, where the line after it starts, whether it is a
    close delimiter, and the nesting level of the multipart it belongs to."""

    start: int
    after: int
    close: bool
    level: int


def _delimiter_at(raw: bytes, pos: int, boundary: bytes) -> tuple[int, bool] | None:
    """(start of the next line, is close) when raw[pos:] is a delimiter line of boundary.

    RFC 2046 5.1.1: "--" boundary at the start of a line, then "--" for the close delimiter,
    then transport padding, then the line break (or the end of the message).
    """
    end = len(raw)
    after = pos + 2 + len(boundary)
    close = raw.startswith(b"--", after)
    tail = after + 2 if close else after
    while tail < end and raw[tail] in (0x20, 0x09):
        tail += 1
    if tail < end and raw[tail] == 0x0D and (tail + 1 == end or raw[tail + 1] == 0x0A):
        tail += 1
    if tail == end:
        return end, close
    if raw[tail] == 0x0A:
        return tail + 1, close
    return None


class _Scan:
    """State of one parse: the part budget and, per boundary, its next delimiter line.

    Delimiters are searched with bytes.find (fast on large attachments) and each boundary's
    next occurrence is remembered, so the whole parse reads the message once per distinct
    boundary however the parts nest.
    """

    def __init__(self, raw: bytes, describe: Describe | None = None):
        self.raw = raw
        self.parts = 0
        self.describe = describe  # None: the tree only
        self._next: dict[bytes, tuple[int, tuple[int, int, bool] | None]] = {}

    def _find(self, boundary: bytes, pos: int) -> tuple[int, int, bool] | None:
        cached = self._next.get(boundary)
        if cached is not None:
            searched_from, found = cached
            if searched_from <= pos and (found is None or found[0] >= pos):
                return found
        raw = self.raw
        needle = b"--" + boundary
        at = raw.find(needle, pos)
        found = None
        while at >= 0:
            if at == 0 or raw[at - 1] == 0x0A:
                line = _delimiter_at(raw, at, boundary)
                if line is not None:
                    found = (at, line[0], line[1])
                    break
            at = raw.find(needle, at + 1)
        self._next[boundary] = (pos, found)
        return found

    def next(self, stack: tuple[bytes, ...], pos: int) -> _Delimiter | None:
        """The first delimiter line at or after pos of any multipart open in stack.

        A boundary that an enclosing multipart also uses belongs to the innermost one (as in
        Dovecot's message-parser: Outlook Express for Mac nests multiparts that reuse their
        parent's boundary); on one line, the longer boundary wins ("--a--" is an open
        delimiter of "a--" before it is a close delimiter of "a").
        """
        best: _Delimiter | None = None
        best_length = -1
        seen: set[bytes] = set()
        for level in range(len(stack) - 1, -1, -1):
            boundary = stack[level]
            if boundary in seen:
                continue
            seen.add(boundary)
            found = self._find(boundary, pos)
            if found is None:
                continue
            if (
                best is None
                or found[0] < best.start
                or (found[0] == best.start and len(boundary) > best_length)
            ):
                best = _Delimiter(found[0], found[1], found[2], level)
                best_length = len(boundary)
        return best


def _content_end(raw: bytes, start: int, delimiter: _Delimiter | None) -> int:
    """Where content that runs up to a delimiter line ends: the line break before a delimiter
    belongs to the delimiter (RFC 2046 5.1.1). Without a delimiter: the end of the message."""
    if delimiter is None:
        return len(raw)
    end = delimiter.start
    if end > start and raw[end - 1] == 0x0A:
        end -= 1
        if end > start and raw[end - 1] == 0x0D:
            end -= 1
    return max(end, start)


def _parse_entity(
    scan: _Scan,
    start: int,
    stack: tuple[bytes, ...],
    *,
    is_message: bool,
    default_digest: bool,
    depth: int,
) -> tuple[Part, _Delimiter | None]:
    """The entity at start, inside the multiparts whose boundaries are stack (innermost last),
    and the delimiter line that ends it (None: it runs to the end of the message)."""
    raw = scan.raw
    scan.parts += 1
    ahead = scan.next(stack, start) if stack else None
    # The header ends at the empty line, or at a delimiter line when that comes first.
    bs = split_header(raw, start, len(raw) if ahead is None else ahead.start)
    region_end = _content_end(raw, bs, ahead)
    header = Header(raw, start, bs)
    content_type = header.get("content-type")
    if content_type is None and default_digest:
        ctype, sub, params = b"message", b"rfc822", []
    else:
        ctype, sub, params = parse_content_type(content_type)
    cte = header.get("content-transfer-encoding")
    # NUL is in no IMAP string, nor in PostgreSQL's jsonb (the structure cache)
    cte = cte.replace(b"\x00", b"").split() if cte else None
    cte = cte[0] if cte else b"7bit"
    part = Part(start, bs, region_end, ctype, sub, cte, is_message)
    too_deep = depth >= MAX_DEPTH or scan.parts >= MAX_PARTS
    lower = ctype.lower()
    if lower == b"multipart" or _is_message_type(ctype, sub):
        if too_deep:
            part.ctype, part.sub, params = b"application", b"octet-stream", []
            lower = b"application"
    boundary = next((v for k, v in params if k.lower() == b"boundary"), b"")
    if lower == b"multipart" and boundary:
        part.children, part.be, ahead = _parse_multipart(
            scan, bs, stack, boundary, sub.lower() == b"digest", depth
        )
    elif lower == b"multipart":
        part.children = [_empty_part(scan, region_end)]
    elif _is_message_type(part.ctype, part.sub):
        part.message, ahead = _parse_entity(
            scan, bs, stack, is_message=True, default_digest=False, depth=depth + 1
        )
        part.be = part.message.be
    if part.ctype.lower() == b"text":
        part.charset = next((v for k, v in params if k.lower() == b"charset"), b"us-ascii")
    if scan.describe is not None:
        scan.describe(part, header, params, raw)
    return part, ahead


def _parse_multipart(
    scan: _Scan,
    bs: int,
    stack: tuple[bytes, ...],
    boundary: bytes,
    digest: bool,
    depth: int,
) -> tuple[list[Part], int, _Delimiter | None]:
    """(children, end of the body, delimiter that ends it) of a multipart body at bs."""
    raw = scan.raw
    inner = (*stack, boundary)
    level = len(stack)
    children: list[Part] = []
    delimiter = scan.next(inner, bs)  # what comes before it is the preamble
    while delimiter is not None and delimiter.level == level and not delimiter.close:
        if scan.parts >= MAX_PARTS:
            delimiter = scan.next(inner, delimiter.after)  # no more parts: skip to the end
            continue
        child, delimiter = _parse_entity(
            scan,
            delimiter.after,
            inner,
            is_message=False,
            default_digest=digest,
            depth=depth + 1,
        )
        children.append(child)
    if delimiter is not None and delimiter.level == level:
        # the close delimiter: the epilogue runs to an enclosing multipart's next delimiter
        delimiter = scan.next(stack, delimiter.after) if stack else None
    end = _content_end(raw, bs, delimiter)
    if not children:
        # No delimiter at all: one empty text part, so the structure stays valid.
        children = [_empty_part(scan, end)]
    return children, end, delimiter


def _empty_part(scan: _Scan, at: int) -> Part:
    scan.parts += 1
    part = Part(at, at, at, charset=b"us-ascii")
    if scan.describe is not None:
        scan.describe(part, Header(scan.raw, at, at), [(b"charset", b"us-ascii")], scan.raw)
    return part


# Called for each part once its header is read and its children parsed: (part, its header,
# its Content-Type parameters, the raw bytes).
Describe = Callable[["Part", Header, list[tuple[bytes, bytes]], bytes], None]


def parse(raw: bytes, *, describe: Describe | None = None) -> Part:
    """The part tree of a whole message."""
    part, _end = _parse_entity(
        _Scan(raw, describe), 0, (), is_message=True, default_digest=False, depth=0
    )
    return part


# --- Parts by number, their octets (RFC 9051 6.4.5 sections) -----------------------------------------------------------


def part_at(root: Part, path: tuple[int, ...]) -> Part | None:
    """The part a section-part names. Numbers index a multipart's children; a message whose
    body is not multipart has exactly one part, 1, its body; numbers after a message/rfc822
    part index the encapsulated message."""
    current = root  # always a message (top-level or encapsulated) or a multipart part
    target: Part | None = None
    for k in path:
        if target is not None:
            if target.message is not None:
                current = target.message
            elif target.children:
                current = target
            else:
                return None
        if current.children:
            if not 1 <= k <= len(current.children):
                return None
            target = current.children[k - 1]
        elif current.is_message and k == 1:
            target = current
        else:
            return None
    return target


def _header_subset(raw: bytes, hs: int, he: int, names: tuple[str, ...], keep: bool) -> bytes:
    wanted = {n.lower() for n in names}
    chunks = [
        raw[fs:fe] for name, fs, _vs, fe in header_fields(raw, hs, he) if (name in wanted) == keep
    ]
    # RFC 9051 6.4.5: the subset ends with the blank line that ends the header.
    return b"".join(chunks) + b"\r\n"


def section(
    raw: bytes,
    root: Part,
    path: tuple[int, ...],
    spec: str = "",
    fields: tuple[str, ...] = (),
) -> bytes | None:
    """The octets of BODY[path.spec]; None when the message has no such part (sent as NIL).

    spec is "", "HEADER", "TEXT", "MIME", "HEADER.FIELDS" or "HEADER.FIELDS.NOT".
    """
    spec = spec.upper()
    if not path:
        message = root
    else:
        part = part_at(root, path)
        if part is None:
            return None
        if spec == "":
            return raw[part.bs : part.be]
        if spec == "MIME":
            return raw[part.hs : part.bs]
        # HEADER / TEXT after a part number: the part must be a message (RFC 9051 6.4.5)
        if part.message is None:
            return None
        message = part.message
    if spec == "":
        return raw[message.hs : message.be]
    if spec == "HEADER":
        return raw[message.hs : message.bs]
    if spec == "TEXT":
        return raw[message.bs : message.be]
    if spec == "HEADER.FIELDS":
        return _header_subset(raw, message.hs, message.bs, fields, True)
    if spec == "HEADER.FIELDS.NOT":
        return _header_subset(raw, message.hs, message.bs, fields, False)
    return None


_BASE64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


def decode_cte(data: bytes, cte: bytes) -> bytes:
    """Undo a Content-Transfer-Encoding, leniently; UnknownCTE for one we do not know."""
    name = cte.lower()
    if name in (b"7bit", b"8bit", b"binary", b""):
        return data
    if name == b"base64":
        try:
            # non-strict a2b_base64 skips line breaks and other junk at C speed
            return binascii.a2b_base64(data)
        except (binascii.Error, ValueError):
            pass  # bad padding or a stray byte count: clean up and decode what is there
        clean = _BASE64_JUNK.sub(b"", data.split(b"=", 1)[0] if data.find(b"=") >= 0 else data)
        clean = clean[: len(clean) - len(clean) % 4] if len(clean) % 4 == 1 else clean
        clean += b"=" * (-len(clean) % 4)
        try:
            return binascii.a2b_base64(clean)
        except (binascii.Error, ValueError):
            return b""
    if name == b"quoted-printable":
        return decode_qp(data)
    raise UnknownCTE(latin(cte))


_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def _qp_byte(match: re.Match) -> bytes:
    return bytes((int(match.group(1), 16),))


def decode_qp(data: bytes) -> bytes:
    """RFC 2045 6.7 quoted-printable: trailing white space on a line is dropped (rule 3), a
    final "=" (even before white space) is a soft line break (rule 5), bad escapes are kept."""
    out = []
    for line in data.splitlines(keepends=True):
        if line.endswith(b"\r\n"):
            body, ending = line[:-2], b"\r\n"
        elif line.endswith((b"\n", b"\r")):
            body, ending = line[:-1], line[-1:]
        else:
            body, ending = line, b""
        body = body.rstrip(b" \t")
        if body.endswith(b"="):
            body, ending = body[:-1], b""
        out.append(_QP_ESCAPE.sub(_qp_byte, body) + ending)
    return b"".join(out)


UUENCODE = frozenset({b"x-uuencode", b"uuencode", b"uue", b"x-uue"})


def decode_uu(data: bytes) -> bytes:
    """uuencoded content (the "begin mode name" line to "end"), as mail readers undo it;
    ValueError when there is no begin line."""
    lines = iter(data.splitlines())
    for line in lines:
        if line.startswith(b"begin "):
            mode = line.removeprefix(b"begin ").partition(b" ")[0]
            try:
                int(mode, base=8)
            except ValueError:
                continue
            break
    else:
        raise ValueError("no begin line")
    out = []
    for line in lines:
        if not line:
            raise ValueError("truncated")
        if line.strip(b" \t\r\n\f") == b"end":
            break
        try:
            out.append(binascii.a2b_uu(line))
        except binascii.Error:
            # Broken encoders pad lines: decode what the length byte announces.
            out.append(binascii.a2b_uu(line[: (((line[0] - 32) & 63) * 4 + 5) // 3]))
    return b"".join(out)


def content(raw: bytes, part: Part) -> bytes:
    """A leaf part's content for a reader: its transfer encoding undone as far as it can be
    (uuencode too), else its octets as stored; a multipart or message part as stored."""
    data = raw[part.bs : part.be]
    if part.children or part.message is not None:
        return data
    if part.cte.lower() in UUENCODE:
        try:
            return decode_uu(data)
        except (ValueError, binascii.Error):
            return data
    try:
        return decode_cte(data, part.cte)
    except UnknownCTE:
        return data


def binary(raw: bytes, root: Part, path: tuple[int, ...]) -> bytes | None:
    """BINARY[path] (RFC 3516): the section with its transfer encoding undone."""
    if not path:
        # The whole message: its header as is, its body decoded when it is a leaf.
        if root.children or root.message is not None:
            return raw[root.hs : root.be]
        return raw[root.hs : root.bs] + decode_cte(raw[root.bs : root.be], root.cte)
    part = part_at(root, path)
    if part is None:
        return None
    data = raw[part.bs : part.be]
    if part.children or part.message is not None:
        return data
    return decode_cte(data, part.cte)


# --- Text (SEARCH, previews, full-text index) ---------------------------------------------------------------------


def decode_text(data: bytes, charset: bytes) -> str:
    """Decoded octets of a text part as text, in its charset: UTF-8 when it names none, one
    we do not know, or US-ASCII (8-bit octets in "us-ascii" text are almost always UTF-8)."""
    name = charset.decode("ascii", "replace").strip() or "utf-8"
    if name.lower() in ("us-ascii", "ascii"):
        name = "utf-8"
    try:
        return data.decode(name, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def text_parts(raw: bytes, root: Part) -> list[tuple[Part, bytes]]:
    """(part, charset) of every leaf text/* part, encapsulated messages included."""
    out: list[tuple[Part, bytes]] = []
    stack = [root]
    while stack:
        part = stack.pop()
        if part.children:
            stack.extend(reversed(part.children))
        elif part.message is not None:
            stack.append(part.message)
        elif part.ctype.lower() == b"text":
            charset = part.charset
            if not charset:  # a tree from the cache
                header = Header(raw, part.hs, part.bs)
                _t, _s, params = parse_content_type(header.get("content-type"))
                charset = next((v for k, v in params if k.lower() == b"charset"), b"us-ascii")
            out.append((part, charset))
    return out
