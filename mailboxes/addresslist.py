"""RFC 5322 address lists (RFC 5322 3.4), parsed in linear time, tolerant of everything real
mail contains.

One parser for IMAP's ENVELOPE (protocols/imap/mime.py) and the From/To/Cc summary cached at
delivery (mailboxes/headers.py). Python's email.utils.getaddresses and the header registry
recurse into nested comments (a 20,000-deep comment is a RecursionError) and are super-linear
on some inputs; this one walks the octets once with an explicit depth counter, and reads at
most MAX_LIST_OCTETS of a field (a longer list is parsed up to there).
"""

from __future__ import annotations

import re

# Octets of one address field that are parsed; the rest is ignored. 32 KiB holds about a
# thousand addresses (ENVELOPE shows what was parsed) and parses in tens of milliseconds.
MAX_LIST_OCTETS = 32 * 1024

_ADDR_SPECIALS = frozenset(b'<>:;@,."()[')
_WSP = frozenset(b" \t\r\n")
# Dovecot's placeholders: a NIL host would read as group syntax (RFC 9051 7.5.2).
MISSING_MAILBOX = b"MISSING_MAILBOX"
MISSING_DOMAIN = b"MISSING_DOMAIN"


_SPACE = ("w", b" ")


_WSP_RUN = re.compile(rb"[ \t\r\n]+")
_ATOM_RUN = re.compile(rb'[^ \t\r\n<>:;@,."()\[]+')
_QUOTED = re.compile(rb'"((?:[^"\\]|\\.|\\$)*)"?', re.S)
_QUOTED_PAIR = re.compile(rb"\\(.)|[\r\n]", re.S)
_COMMENT_STOP = re.compile(rb"[()\\]")


def tokenize(value: bytes) -> list[tuple[str, bytes]]:
    """Tokens: ("a", atom) ("q", quoted content) ("c", comment) ("s", special) and ("w", " ")
    for a run of white space (display names keep the spacing they were written with).

    Runs of text are matched by regular expressions without backtracking (C speed); only
    parentheses and specials cost a Python step each."""
    tokens: list[tuple[str, bytes]] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c in _WSP:
            if tokens and tokens[-1] is not _SPACE:
                tokens.append(_SPACE)
            i = _WSP_RUN.match(value, i).end()
        elif c == 0x22:  # quoted-string
            match = _QUOTED.match(value, i)
            tokens.append(("q", _QUOTED_PAIR.sub(_unquote, match.group(1))))
            i = match.end()
        elif c == 0x28:  # comment, nested: depth counted, never recursed
            depth, j = 1, i + 1
            while depth:
                stop = _COMMENT_STOP.search(value, j)
                if stop is None:
                    j = n
                    break
                j = stop.end()
                if value[stop.start()] == 0x5C:
                    j += 1
                elif value[stop.start()] == 0x28:
                    depth += 1
                else:
                    depth -= 1
            j = min(j, n)
            tokens.append(("c", value[i + 1 : j - 1 if depth == 0 else j].strip()))
            i = j
        elif c == 0x5B:  # domain literal
            j = value.find(b"]", i)
            j = n if j < 0 else j + 1
            tokens.append(("a", value[i:j]))
            i = j
        elif c in _ADDR_SPECIALS:
            tokens.append(("s", bytes((c,))))
            i += 1
        else:
            j = _ATOM_RUN.match(value, i).end()
            tokens.append(("a", value[i:j]))
            i = j
    return tokens


def _unquote(match: re.Match) -> bytes:
    pair = match.group(1)
    return b"" if pair is None or pair in b"\r\n" else pair


def _phrase(tokens: list[tuple[str, bytes]]) -> bytes | None:
    """A display name as written: quotes and comments removed, each run of white space (or
    a comment) one space, so `alice@example.com <bob@...>` keeps "alice@example.com"."""
    out = bytearray()
    seen = space = False
    for kind, text in tokens:
        if kind in ("w", "c"):
            space = seen
            continue
        if space:
            out += b" "
            space = False
        out += text
        seen = True
    return bytes(out) if seen else None


def _addr_spec(tokens: list[tuple[str, bytes]]) -> tuple[bytes | None, bytes, bytes]:
    """(comment as a name, mailbox, host) of tokens that should form local@domain."""
    comment = None
    parts = []
    for kind, text in tokens:
        if kind == "c":
            comment = text or comment
        elif kind != "w":
            parts.append((kind, text))
    at = max((i for i, (k, t) in enumerate(parts) if k == "s" and t == b"@"), default=-1)
    local_tokens = parts if at < 0 else parts[:at]
    host_tokens = [] if at < 0 else parts[at + 1 :]
    local = b"".join(
        (b'"' + t.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"') if k == "q" else t
        for k, t in local_tokens
    )
    host = b"".join(t for _k, t in host_tokens)
    return comment, local or MISSING_MAILBOX, host or MISSING_DOMAIN


Address = tuple  # (name, adl, mailbox, host), each bytes or None


# One address written the common way: `Display Name <local@host>` or a bare `local@host`, of
# atoms, dots and white space alone (no quotes, comments, groups, routes or line ends). Its
# tokens join back to the text as written, so parse_addresses' answer is read off the match:
# the phrase's white space runs made one space, the mailbox and host as they stand.
_ATEXT = rb"A-Za-z0-9!#$%&'*+\-/=?^_`{|}~"
_ONE_ADDRESS = re.compile(
    rb"[ \t]*(?:([" + _ATEXT + rb" \t.]*)<([" + _ATEXT + rb".]+)@([A-Za-z0-9.\-]+)>"
    rb"|([" + _ATEXT + rb".]+)@([A-Za-z0-9.\-]+))[ \t]*"
)


def parse_addresses(value: bytes, *, limit: int = MAX_LIST_OCTETS) -> list[Address]:
    """An address-list, tolerant of everything real mail contains; groups as RFC 9051
    7.5.2 encodes them: (NIL NIL name NIL) members... (NIL NIL NIL NIL)."""
    value = value[:limit]
    one = _ONE_ADDRESS.fullmatch(value)
    if one is not None:  # the walk below would find just this (a tenth of its cost)
        name, mailbox, host, bare_mailbox, bare_host = one.groups()
        if name is None:
            return [(None, None, bare_mailbox, bare_host)]
        return [(b" ".join(name.split()) or None, None, mailbox, host)]
    return _parse_list(value)


def _parse_list(value: bytes) -> list[Address]:
    """parse_addresses by walking the tokens: any address list."""
    tokens = tokenize(value)
    result: list[Address] = []
    in_group = False
    i, n = 0, len(tokens)
    while i < n:
        j = i
        while j < n and not (tokens[j][0] == "s" and tokens[j][1] in (b",", b";", b":", b"<")):
            j += 1
        stop = tokens[j][1] if j < n else None
        if stop == b":" and not in_group:
            result.append((None, None, _phrase(tokens[i:j]) or b"", None))
            in_group = True
            i = j + 1
            continue
        if stop == b"<":
            name = _phrase(tokens[i:j])
            k = j + 1
            while k < n and not (tokens[k][0] == "s" and tokens[k][1] == b">"):
                k += 1
            inner = [t for t in tokens[j + 1 : k] if t[0] not in ("c", "w")]
            adl = None
            colon = next((x for x, t in enumerate(inner) if t[0] == "s" and t[1] == b":"), None)
            if colon is not None and inner and inner[0] == ("s", b"@"):
                adl = b"".join(t for _k, t in inner[:colon])
                inner = inner[colon + 1 :]
            if inner:
                _c, mailbox, host = _addr_spec(inner)
                result.append((name, adl, mailbox, host))
            elif name is not None:
                result.append((name, None, MISSING_MAILBOX, MISSING_DOMAIN))
            # skip what follows the ">" up to the next separator
            i = k + 1
            while i < n and not (tokens[i][0] == "s" and tokens[i][1] in (b",", b";")):
                i += 1
            stop = tokens[i][1] if i < n else None
            j = i
        elif any(t[0] not in ("c", "w") for t in tokens[i:j]):
            comment, mailbox, host = _addr_spec(tokens[i:j])
            result.append((comment, None, mailbox, host))
        if stop == b";" and in_group:
            result.append((None, None, None, None))
            in_group = False
        i = j + 1
    if in_group:
        result.append((None, None, None, None))
    return result
