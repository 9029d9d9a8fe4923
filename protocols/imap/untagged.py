"""Untagged responses as values (RFC 9051 7), and `wire`, the one function that writes them.

Command handlers and the session's update code compute these values; the session sends what
`wire` makes of them. Status responses (`* OK [CODE] text`, `* BYE ...`) are
protocols/imap/responses.py's Reply values. FETCH responses are written by
protocols/imap/fetch.py, the one FETCH renderer: FetchFlags is one message's flags (STORE,
the unsolicited updates, SELECT's QRESYNC changes), Fetched a batch the renderer wrote for a
FETCH command (its hot path formats many messages from one template, with no object per
message).

Also how a handler ends when its tagged reply is not all (Done): responses written with it,
and what the connection does next (close, compress, TLS), which the session carries out.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from protocols.imap import fetch
from protocols.imap import responses as r

CRLF = b"\r\n"


class Capability(NamedTuple):  # RFC 9051 7.2.2
    names: tuple[str, ...]


class Enabled(NamedTuple):  # RFC 5161 3.2
    names: tuple[str, ...]


class Id(NamedTuple):  # RFC 2971 3.3
    fields: tuple[tuple[str, str], ...]


class Namespace(NamedTuple):  # RFC 2342 5: (prefix, delimiter) pairs per namespace class
    personal: tuple[tuple[str, str], ...]
    other_users: tuple[tuple[str, str], ...]
    shared: tuple[tuple[str, str], ...]


class Flags(NamedTuple):  # RFC 9051 7.3.5
    flags: tuple[str, ...]


class Exists(NamedTuple):  # RFC 9051 7.4.1
    count: int


class Recent(NamedTuple):  # RFC 3501 7.3.2
    count: int


class Expunge(NamedTuple):  # RFC 9051 7.5.1
    seq: int


class Vanished(NamedTuple):  # RFC 7162 3.2.10
    uids: tuple[int, ...] | list[int]
    earlier: bool = False


class ListItem(NamedTuple):  # LIST / LSUB, RFC 9051 7.3.1, LIST-EXTENDED RFC 5258
    command: str  # LIST or LSUB
    attrs: tuple[str, ...]
    delimiter: str
    name: str
    utf8: bool
    childinfo_subscribed: bool = False  # RFC 5258 3.5: ("CHILDINFO" ("SUBSCRIBED"))
    oldname: str | None = None  # RFC 5465 5.4: ("OLDNAME" (old))


class Status(NamedTuple):  # RFC 9051 7.3.2
    name: str
    values: tuple[tuple[str, object], ...]
    utf8: bool


class Search(NamedTuple):  # RFC 3501 7.2.5, MODSEQ RFC 7162 3.1.5
    numbers: tuple[int, ...] | list[int]
    modseq: int | None = None


class Sort(NamedTuple):  # RFC 5256 4
    numbers: tuple[int, ...] | list[int]
    modseq: int | None = None


class Thread(NamedTuple):  # RFC 5256 4: the thread list, "(3 6 (4 23)(44 7 96))(2)"
    text: str


class ESearch(NamedTuple):  # RFC 4731 3.1, ESORT RFC 5267 3.2, MULTISEARCH RFC 7377 2.1
    tag: str
    uid: bool
    data: tuple[tuple[str, object], ...]  # ("MIN", 3), ("ALL", "1:4"), ("MODSEQ", 9)...
    mailbox: str | None = None  # MULTISEARCH's correlator: the mailbox and its UIDVALIDITY
    uidvalidity: int = 0
    utf8: bool = False


class Acl(NamedTuple):  # RFC 4314 3.6
    name: str
    entries: tuple[tuple[str, str], ...]
    utf8: bool


class ListRights(NamedTuple):  # RFC 4314 3.7
    name: str
    identifier: str
    required: str
    optional: tuple[str, ...]
    utf8: bool


class MyRights(NamedTuple):  # RFC 4314 3.8
    name: str
    rights: str
    utf8: bool


class Quota(NamedTuple):  # RFC 9208 5.1: (resource, usage, limit) triples
    root: str
    resources: tuple[tuple[str, int, int], ...]


class QuotaRoot(NamedTuple):  # RFC 9208 5.2
    name: str
    roots: tuple[str, ...]
    utf8: bool


class Metadata(NamedTuple):  # RFC 5464 4.4.1: entries and their values ("" is the server)
    name: str
    entries: tuple[tuple[str, bytes], ...]
    utf8: bool


class MetadataChanged(NamedTuple):  # RFC 5464 4.4.2: the entries that changed, unsolicited
    name: str
    entries: tuple[str, ...]
    utf8: bool


class FetchFlags(NamedTuple):  # RFC 9051 7.5.2; RFC 7162 3.1.4.1, 3.2.4
    seq: int
    flags: tuple[str, ...] | list[str] | None  # None: no FLAGS item (STORE .SILENT)
    uid: int | None = None
    modseq: int | None = None
    verb: str = "FETCH"  # UIDFETCH: seq is the UID (RFC 9586 3.3)


class Fetched(NamedTuple):
    """FETCH responses protocols/imap/fetch.py rendered for a FETCH command."""

    data: bytes


# --- The serializer ----------------------------------------------------------------------


def _line(text: str | bytes) -> bytes:
    body = text if isinstance(text, bytes) else text.encode("utf-8")
    return b"* " + body + CRLF


def _mailbox(name: str, utf8: bool) -> bytes:
    return r.mailbox_name(name, utf8=utf8) if name else b'""'


def _numbers(name: bytes, numbers, modseq: int | None) -> bytes:
    out = b"* " + name
    if numbers:
        out += b" " + b" ".join(b"%d" % n for n in numbers)
        if modseq is not None:
            out += b" (MODSEQ %d)" % modseq
    return out + CRLF


def _namespace_class(pairs: tuple[tuple[str, str], ...]) -> bytes:
    if not pairs:
        return b"NIL"
    inner = b"".join(
        b"(" + r.quoted_or_literal(prefix) + b" " + r.quoted_or_literal(delimiter) + b")"
        for prefix, delimiter in pairs
    )
    return b"(" + inner + b")"


def _list(item: ListItem) -> bytes:
    line = f'{item.command} ({" ".join(item.attrs)}) "{item.delimiter}" '.encode()
    line += r.mailbox_name(item.name, utf8=item.utf8)
    if item.childinfo_subscribed:
        line += b' ("CHILDINFO" ("SUBSCRIBED"))'
    if item.oldname is not None:
        line += b' ("OLDNAME" (' + r.mailbox_name(item.oldname, utf8=item.utf8) + b"))"
    return _line(line)


def _status(item: Status) -> bytes:
    inner = " ".join(f"{key} {value}" for key, value in item.values)
    return _line(b"STATUS " + r.mailbox_name(item.name, utf8=item.utf8) + f" ({inner})".encode())


def _esearch(item: ESearch) -> bytes:
    out = b'* ESEARCH (TAG "' + item.tag.encode("ascii", "replace") + b'"'
    if item.mailbox is not None:
        out += b" MAILBOX " + r.mailbox_name(item.mailbox, utf8=item.utf8)
        out += b" UIDVALIDITY %d" % item.uidvalidity
    out += b")"
    if item.uid:
        out += b" UID"
    for name, value in item.data:
        out += f" {name} {value}".encode("ascii")
    return out + CRLF


def _metadata_value(value: bytes) -> bytes:
    if b"\0" in value:  # RFC 5464 5.4: a value with NUL goes as a literal8
        return b"~{%d}\r\n" % len(value) + value
    return r.quoted_or_literal(value)


def _metadata(item: Metadata) -> bytes:
    inner = b" ".join(entry.encode() + b" " + _metadata_value(v) for entry, v in item.entries)
    return _line(b"METADATA " + _mailbox(item.name, item.utf8) + b" (" + inner + b")")


def _acl(item: Acl) -> bytes:
    line = b"ACL " + r.mailbox_name(item.name, utf8=item.utf8)
    for identifier, rights in item.entries:
        line += b" " + r.quoted_or_literal(identifier) + b" " + rights.encode()
    return _line(line)


def _listrights(item: ListRights) -> bytes:
    line = b"LISTRIGHTS " + r.mailbox_name(item.name, utf8=item.utf8) + b" "
    line += r.quoted_or_literal(item.identifier) + b" " + (item.required.encode() or b'""')
    return _line(line + b"".join(b" " + right.encode() for right in item.optional))


def _quota(item: Quota) -> bytes:
    inner = " ".join(f"{name} {usage} {limit}" for name, usage, limit in item.resources)
    return _line(b"QUOTA " + r.quoted_or_literal(item.root) + f" ({inner})".encode())


WRITERS: dict[type, Callable[..., bytes]] = {
    r.Reply: r.Reply.untagged,
    Capability: lambda v: _line("CAPABILITY " + " ".join(v.names)),
    Enabled: lambda v: _line("ENABLED" + "".join(" " + name for name in v.names)),
    Id: lambda v: _line(
        b"ID ("
        + b" ".join(r.quoted_or_literal(k) + b" " + r.nstring(val) for k, val in v.fields)
        + b")"
        if v.fields
        else b"ID NIL"
    ),
    Namespace: lambda v: _line(
        b"NAMESPACE "
        + b" ".join(_namespace_class(c) for c in (v.personal, v.other_users, v.shared))
    ),
    Flags: lambda v: _line("FLAGS " + r.flag_list(v.flags)),
    Exists: lambda v: b"* %d EXISTS\r\n" % v.count,
    Recent: lambda v: b"* %d RECENT\r\n" % v.count,
    Expunge: lambda v: b"* %d EXPUNGE\r\n" % v.seq,
    Vanished: lambda v: _line(
        ("VANISHED (EARLIER) " if v.earlier else "VANISHED ") + r.sequence_text(v.uids)
    ),
    ListItem: _list,
    Status: _status,
    Search: lambda v: _numbers(b"SEARCH", v.numbers, v.modseq),
    Sort: lambda v: _numbers(b"SORT", v.numbers, v.modseq),
    Thread: lambda v: _line("THREAD" + (" " + v.text if v.text else "")),
    ESearch: _esearch,
    Acl: _acl,
    ListRights: _listrights,
    MyRights: lambda v: _line(
        b"MYRIGHTS " + r.mailbox_name(v.name, utf8=v.utf8) + b" " + (v.rights.encode() or b'""')
    ),
    Quota: _quota,
    QuotaRoot: lambda v: _line(
        b"QUOTAROOT "
        + r.mailbox_name(v.name, utf8=v.utf8)
        + b"".join(b" " + r.quoted_or_literal(root) for root in v.roots)
    ),
    Metadata: _metadata,
    MetadataChanged: lambda v: _line(
        b"METADATA " + _mailbox(v.name, v.utf8) + b" " + " ".join(v.entries).encode()
    ),
    FetchFlags: lambda v: fetch.flags_response(
        v.seq, v.flags, uid=v.uid, modseq=v.modseq, verb=v.verb
    ),
    Fetched: lambda v: v.data,
}


def wire(responses: Iterable) -> bytes:
    """The responses as the client reads them, in order."""
    return b"".join([WRITERS[type(response)](response) for response in responses])


# --- How a handler ends ------------------------------------------------------------------


class After(enum.Enum):
    """What the connection does once the tagged reply is written."""

    NOTHING = "nothing"
    CLOSE = "close"  # LOGOUT, too many failed logins
    COMPRESS = "compress"  # COMPRESS DEFLATE (RFC 4978 3): deflate from the next octet on
    TLS = "tls"  # STARTTLS (RFC 9051 6.2.1): the TLS handshake begins


@dataclass(slots=True)
class Waiting:
    """A handler that waits for the client (IDLE) returns this instead of its reply: the
    session awaits its wake-up (the client's bytes, a change event, or `seconds` passing) in
    its own frame, then calls `woke(session, waiting)` (again under the command's error
    mapping), which returns the reply, or this to wait again. An idle session keeps no
    coroutine of the command's while it waits (issue 22: 280 bytes each, thousands of
    sessions)."""

    command: object  # the command that waits (a protocols.imap.parser command)
    deadline: float  # loop time: BYE after it
    seconds: float  # at most this long a wait, then woke() with nothing come
    woke: Callable


@dataclass(frozen=True)
class Done:
    """A handler's tagged reply with what goes around it (a handler may also return a bare
    Reply: pending updates, then the reply)."""

    reply: r.Reply
    before: tuple = ()  # untagged responses written with the reply, ahead of it
    after: tuple = ()  # and after it (a BYE after a refused login)
    then: After = After.NOTHING
    # Pending updates (EXISTS, EXPUNGE, FETCH FLAGS, NOTIFY's) go out before the reply,
    # unless the command has just left the folder or the session they belong to.
    updates: bool = True
