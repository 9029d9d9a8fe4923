"""A strict reader of IMAP response data, to check ENVELOPE and BODYSTRUCTURE are well formed
(RFC 9051 9 grammar: NIL, numbers, quoted strings, literals, parenthesized lists)."""

from __future__ import annotations


class Malformed(AssertionError):
    pass


class Atom(bytes):
    """An atom other than NIL or a number (FETCH item names, flags): never a string."""


def read(data: bytes):
    """The single value in data (lists as list, strings as bytes, NIL as None, numbers int)."""
    value, pos = _value(data, 0)
    if pos != len(data):
        raise Malformed(f"trailing data at {pos}: {data[pos : pos + 20]!r}")
    return value


def read_many(data: bytes) -> list:
    """Space-separated values, e.g. the inside of a FETCH response."""
    values, pos = [], 0
    while pos < len(data):
        value, pos = _value(data, pos)
        values.append(value)
        if pos < len(data):
            if data[pos] != 0x20:
                raise Malformed(f"expected SP at {pos}")
            pos += 1
    return values


def _value(data: bytes, pos: int):
    if pos >= len(data):
        raise Malformed("unexpected end")
    c = data[pos]
    if c == 0x28:
        items, pos = [], pos + 1
        if data[pos : pos + 1] == b")":
            return items, pos + 1
        while True:
            value, pos = _value(data, pos)
            items.append(value)
            if data[pos : pos + 1] == b")":
                return items, pos + 1
            # bodies of a multipart follow each other without a space
            if data[pos : pos + 1] == b" ":
                pos += 1
            elif data[pos : pos + 1] != b"(":
                raise Malformed(f"expected SP or ) at {pos}: {data[pos : pos + 20]!r}")
    if c == 0x22:
        out, pos = bytearray(), pos + 1
        while True:
            if pos >= len(data):
                raise Malformed("unterminated quoted string")
            ch = data[pos]
            if ch == 0x22:
                return bytes(out), pos + 1
            if ch == 0x5C:
                pos += 1
                if data[pos] not in (0x22, 0x5C):
                    raise Malformed("bad escape")
                ch = data[pos]
            elif ch in (0x0D, 0x0A) or ch > 0x7F or ch == 0:
                raise Malformed(f"invalid octet {ch} in a quoted string")
            out.append(ch)
            pos += 1
    if c in (0x7B, 0x7E):  # {n} or ~{n}
        start = pos + (1 if c == 0x7E else 0)
        end = data.index(b"}\r\n", start)
        size = int(data[start + 1 : end])
        body = data[end + 3 : end + 3 + size]
        if len(body) != size:
            raise Malformed("short literal")
        if c == 0x7B and b"\x00" in body:
            raise Malformed("NUL in a literal")
        return body, end + 3 + size
    end = pos
    while end < len(data) and data[end] not in b" ()":
        if data[end] == 0x5B:  # BODY[HEADER.FIELDS (A B)]<0>: brackets hold spaces
            end = data.index(b"]", end)
        end += 1
    atom = data[pos:end]
    if not atom:
        raise Malformed(f"empty atom at {pos}")
    if atom == b"NIL":
        return None, end
    if atom.isdigit():
        return int(atom), end
    return Atom(atom), end


def _nstring(value) -> None:
    if value is not None and (not isinstance(value, bytes) or isinstance(value, Atom)):
        raise Malformed(f"expected nstring, got {value!r}")


def _params(value) -> None:
    if value is None:
        return
    if not isinstance(value, list) or not value or len(value) % 2:
        raise Malformed(f"bad parameter list {value!r}")
    for item in value:
        _nstring(item)
        if item is None:
            raise Malformed("parameter is NIL")


def check_envelope(env) -> None:
    if not isinstance(env, list) or len(env) != 10:
        raise Malformed(f"envelope must have 10 fields: {env!r}")
    for i in (0, 1, 8, 9):
        _nstring(env[i])
    for i in range(2, 8):
        addresses = env[i]
        if addresses is None:
            continue
        if not isinstance(addresses, list) or not addresses:
            raise Malformed("bad address list")
        for address in addresses:
            if not isinstance(address, list) or len(address) != 4:
                raise Malformed(f"bad address {address!r}")
            for part in address:
                _nstring(part)


def _ext_tail(values: list) -> None:
    disposition, language, location = (values + [None, None, None])[:3]
    if disposition is not None:
        if not isinstance(disposition, list) or len(disposition) != 2:
            raise Malformed("bad disposition")
        _nstring(disposition[0])
        _params(disposition[1])
    if isinstance(language, list):
        for tag in language:
            _nstring(tag)
    else:
        _nstring(language)
    _nstring(location)


def check_body(body, extensible: bool) -> None:
    """RFC 9051 9 `body` (extensible: body-ext-1part / body-ext-mpart present)."""
    if not isinstance(body, list) or not body:
        raise Malformed("body must be a non-empty list")
    if isinstance(body[0], list):
        i = 0
        while i < len(body) and isinstance(body[i], list):
            check_body(body[i], extensible)
            i += 1
        if i >= len(body) or not isinstance(body[i], bytes) or isinstance(body[i], Atom):
            raise Malformed("multipart needs a subtype")
        rest = body[i + 1 :]
        if extensible:
            if len(rest) != 4:
                raise Malformed(f"multipart extension data: {rest!r}")
            _params(rest[0])
            _ext_tail(rest[1:])
        elif rest:
            raise Malformed("BODY must not carry extension data")
        return
    if len(body) < 7:
        raise Malformed(f"short body: {body!r}")
    ctype, sub, params, cid, desc, enc, size = body[:7]
    for value in (ctype, sub, enc):
        if not isinstance(value, bytes) or isinstance(value, Atom):
            raise Malformed("type, subtype and encoding are strings")
    _params(params)
    _nstring(cid)
    _nstring(desc)
    if not isinstance(size, int):
        raise Malformed("size must be a number")
    rest = body[7:]
    if ctype.lower() == b"message" and sub.lower() in (b"rfc822", b"global"):
        check_envelope(rest[0])
        check_body(rest[1], extensible)
        if not isinstance(rest[2], int):
            raise Malformed("message lines")
        rest = rest[3:]
    elif ctype.lower() == b"text":
        if not isinstance(rest[0], int):
            raise Malformed("text lines")
        rest = rest[1:]
    if extensible:
        if len(rest) != 4:
            raise Malformed(f"extension data: {rest!r}")
        _nstring(rest[0])
        _ext_tail(rest[1:])
    elif rest:
        raise Malformed("BODY must not carry extension data")
