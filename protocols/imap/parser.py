"""IMAP command parser, sans-IO (RFC 9051 9 and RFC 3501 9 grammar, with the extensions).

NOTE for protocols/imap/fetch.py and search.py (the interface between the two halves):

- FETCH: `Fetch.fetch_items` is a tuple of typed `FetchItem(name, section, peek, partial)`:
  `name` is "BODY", "BINARY" or "BINARY.SIZE" with a `Section(path, spec, fields)`, or a
  simple item ("FLAGS", "UID", "RFC822", "ENVELOPE", ...); the macros ALL, FAST and FULL
  arrive expanded, and a section the grammar refuses is a parse error. `Fetch.items` keeps
  them as the client wrote them (`FetchAtt(name, section text, partial)`).
- SEARCH: `Search.keys` is the generic token list after RETURN and CHARSET were taken off:
  atoms (including sequence sets such as "1:*,7" or "$") as `str`, quoted strings and literals as
  `bytes`, parenthesized lists as `list`. `parse_sequence_set(text)` turns an atom into a
  SequenceSet.

Bytes go in with `Parser.feed`; `Parser.next_command()` returns a frozen command dataclass,
a `ParseError` (the caller answers BAD, or NO for an oversized literal, and carries on), or one
of the markers NEED_DATA (feed more) and NEED_CONTINUATION (send "+ ..." and feed more: a
synchronizing literal {n} waits for it; a LITERAL+ literal {n+} does not).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from django.conf import settings

from protocols.imap import utf7

NEED_DATA = "NEED_DATA"
NEED_CONTINUATION = "NEED_CONTINUATION"

MAX_NUMBER = 2**32 - 1
MAX_NUMBER64 = 2**63 - 1
# Literals and lines of one command beyond its largest literal (several small literals).
MAX_COMMAND_OVERHEAD = 1024 * 1024
MAX_NESTING = 100  # parenthesized lists (SEARCH, ID): deeper is refused, never a RecursionError

# A line ends in a literal announcement: {n}, {n+} (LITERAL+), ~{n} (literal8, RFC 3516).
_LITERAL_END = re.compile(rb"~?\{(\d{1,20})(\+?)\}$")
_ATOM_SPECIALS = frozenset(b'(){ %*"\\]') | frozenset(range(0, 32)) | {127}
_GENERIC_STOP = frozenset(b' ()"{') | frozenset(range(0, 32)) | {127}
_RUNS: dict[frozenset[int], re.Pattern[bytes]] = {}


def _run_until(stop: frozenset[int]) -> re.Pattern[bytes]:
    """A pattern for the longest run of octets outside `stop`, compiled once per set: a
    token is found by one match instead of a Python step per octet (SEARCH NOT ... at the
    line limit: 15 ms of the event loop before)."""
    pattern = _RUNS.get(stop)
    if pattern is None:
        pattern = re.compile(b"[^" + b"".join(b"\\x%02x" % c for c in sorted(stop)) + b"]*")
        _RUNS[stop] = pattern
    return pattern


_TAG_CHARS_EXCLUDED = frozenset(b'(){ %*"\\+') | frozenset(range(0, 32)) | {127}


class ParseFailure(Exception):
    """Raised inside the parser; next_command turns it into a ParseError."""

    def __init__(self, text: str, code: str | None = None, status: str = "BAD"):
        super().__init__(text)
        self.text = text
        self.code = code
        self.status = status  # NO for well-formed input we refuse (a bad mailbox name)


@dataclass(frozen=True)
class ParseError:
    tag: str  # "*" when the line had no usable tag
    text: str
    code: str | None = None  # response code, e.g. "TOOBIG"
    status: str = "BAD"  # "BAD", or "NO" for a refused (oversized) literal
    fatal: bool = False  # the connection must close (the client is sending bytes we refuse)
    command: str = ""


# --- Values -----------------------------------------------------------------------------

STAR = 0  # "*" in a sequence set: the largest number in use


@dataclass(frozen=True)
class SequenceSet:
    """A sequence set: ranges of (low, high) with STAR for "*"; `saved` for "$" (RFC 5182)."""

    ranges: tuple[tuple[int, int], ...] = ()
    saved: bool = False

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """Concrete, ordered (low, high) ranges; "*" becomes `largest`."""
        result = []
        for low, high in self.ranges:
            low = largest if low == STAR else low
            high = largest if high == STAR else high
            if low > high:
                low, high = high, low
            result.append((low, high))
        return sorted(result)

    def contains(self, number: int, largest: int) -> bool:
        return any(low <= number <= high for low, high in self.resolve(largest))


@dataclass(frozen=True)
class FetchAtt:
    """A FETCH item as the client wrote it: the section as its text."""

    name: str
    section: str | None = None
    partial: tuple[int, int] | None = None


@dataclass(frozen=True)
class Section:
    """A FETCH section (RFC 9051 6.4.5): part numbers, then a specifier."""

    path: tuple[int, ...] = ()
    spec: str = ""  # "", HEADER, TEXT, MIME, HEADER.FIELDS, HEADER.FIELDS.NOT
    fields: tuple[str, ...] = ()

    def text(self) -> str:
        """Canonical form for the response (RFC 9051 7.5.2 echoes the section)."""
        return _section_text(self)


@functools.lru_cache(maxsize=1024)
def _section_text(section: Section) -> str:
    # Asked once per message a FETCH renders: the same few sections every time.
    pieces = [str(n) for n in section.path]
    if section.spec:
        pieces.append(section.spec)
    out = ".".join(pieces)
    if section.spec.startswith("HEADER.FIELDS"):
        out += " (" + " ".join(_astring_text(f) for f in section.fields) + ")"
    return out


def _astring_text(value: str) -> str:
    if value and re.fullmatch(r"[!#$&'+\-.0-9:<=>?@A-Z^_`a-z|}~]+", value):
        return value.upper()
    return '"' + value.upper().replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class FetchItem:
    """One FETCH data item, typed. name is a simple item's name, or "BODY" / "BINARY" /
    "BINARY.SIZE" with a section (peek says whether .PEEK was used)."""

    name: str
    section: Section | None = None
    peek: bool = False
    partial: tuple[int, int] | None = None

    @property
    def sets_seen(self) -> bool:
        # RFC 9051 6.4.5: BODY[...] and BINARY[...] set \Seen unless .PEEK; RFC822 and
        # RFC822.TEXT do too; RFC822.HEADER (= BODY.PEEK[HEADER]) does not.
        if self.section is not None:
            return self.name in ("BODY", "BINARY") and not self.peek
        return self.name in ("RFC822", "RFC822.TEXT")

    @property
    def needs_raw(self) -> bool:
        return self.section is not None or self.name in (
            "RFC822",
            "RFC822.HEADER",
            "RFC822.TEXT",
            "PREVIEW",
        )

    @property
    def needs_structure(self) -> bool:
        return self.name in ("ENVELOPE", "BODY", "BODYSTRUCTURE") and self.section is None


@dataclass(frozen=True)
class ListReturn:
    subscribed: bool = False
    children: bool = False
    special_use: bool = False
    status: tuple[str, ...] | None = None
    metadata: tuple[str, ...] | None = None  # LIST-METADATA, RFC 9590
    metadata_maxsize: int | None = None


# --- Commands ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    tag: str
    name: str


@dataclass(frozen=True)
class Simple(Command):
    """CAPABILITY NOOP LOGOUT STARTTLS CHECK CLOSE UNSELECT EXPUNGE IDLE NAMESPACE."""


@dataclass(frozen=True)
class Login(Command):
    user: str
    password: str


@dataclass(frozen=True)
class Authenticate(Command):
    mechanism: str
    initial: str | None = None  # SASL-IR (RFC 4959): base64 text, "=" for empty


@dataclass(frozen=True)
class Enable(Command):
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class QresyncParams:
    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True)
class Select(Command):
    """SELECT and EXAMINE."""

    mailbox: str
    condstore: bool = False
    qresync: QresyncParams | None = None


@dataclass(frozen=True)
class MailboxCommand(Command):
    """CREATE DELETE SUBSCRIBE UNSUBSCRIBE."""

    mailbox: str
    special_use: tuple[str, ...] = ()  # CREATE ... (USE (\Drafts)), RFC 6154 3


@dataclass(frozen=True)
class Rename(Command):
    mailbox: str
    new_name: str


@dataclass(frozen=True)
class ListCommand(Command):
    """LIST (RFC 5258 LIST-EXTENDED) and LSUB."""

    reference: str
    patterns: tuple[str, ...]
    selection: frozenset[str] = frozenset()  # SUBSCRIBED REMOTE RECURSIVEMATCH SPECIAL-USE
    returns: ListReturn = field(default_factory=ListReturn)
    extended: bool = False  # the client used LIST-EXTENDED syntax


@dataclass(frozen=True)
class Status(Command):
    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class AppendMessage:
    data: bytes
    flags: tuple[str, ...] = ()
    date: datetime | None = None


@dataclass(frozen=True)
class Append(Command):
    mailbox: str
    messages: tuple[AppendMessage, ...]


@dataclass(frozen=True)
class Replace(Command):
    """REPLACE and UID REPLACE (RFC 8508 6): one message, one new one."""

    uid: bool
    number: int
    mailbox: str
    message: AppendMessage


@dataclass(frozen=True)
class Fetch(Command):
    uid: bool
    sequence: SequenceSet
    items: tuple[FetchAtt, ...]  # as the client wrote them
    changedsince: int | None = None
    vanished: bool = False
    fetch_items: tuple[FetchItem, ...] = field(default=(), compare=False)  # typed


@dataclass(frozen=True)
class Store(Command):
    uid: bool
    sequence: SequenceSet
    mode: str  # "add" "remove" "replace"
    silent: bool
    flags: tuple[str, ...]
    unchangedsince: int | None = None


@dataclass(frozen=True)
class Copy(Command):
    """COPY and MOVE."""

    uid: bool
    sequence: SequenceSet
    mailbox: str


@dataclass(frozen=True)
class UidExpunge(Command):
    sequence: SequenceSet


@dataclass(frozen=True)
class Search(Command):
    uid: bool
    keys: tuple
    charset: str | None = None
    returns: tuple[str, ...] | None = None  # ESEARCH RETURN (...): None for plain SEARCH
    partial: tuple[int, int] | None = None  # RETURN (PARTIAL low:high), RFC 5267 4.4


@dataclass(frozen=True)
class CancelUpdate(Command):
    """CANCELUPDATE "tag" ... (RFC 5267 4.3.5): the UPDATE contexts to end."""

    tags: tuple[str, ...]


@dataclass(frozen=True)
class MultiSearch(Command):
    """ESEARCH [IN (source-mbox)] [RETURN (...)] [CHARSET x] keys (RFC 7377 2)."""

    sources: tuple[tuple[str, tuple[str, ...]], ...] | None  # (filter, mailbox names)
    returns: tuple[str, ...]
    charset: str | None
    keys: tuple


@dataclass(frozen=True)
class Sort(Command):
    """SORT (RFC 5256), with ESORT's RETURN (RFC 5267) and PARTIAL (RFC 9394)."""

    uid: bool
    criteria: tuple[str, ...]  # upper-case words: REVERSE and the sort keys
    charset: str
    keys: tuple  # search keys, as Search.keys
    returns: tuple[str, ...] | None = None
    partial: tuple[int, int] | None = None


@dataclass(frozen=True)
class Thread(Command):
    """THREAD (RFC 5256)."""

    uid: bool
    algorithm: str
    charset: str
    keys: tuple


@dataclass(frozen=True)
class Compress(Command):
    algorithm: str


@dataclass(frozen=True)
class QuotaCommand(Command):
    """GETQUOTA (a quota root) and GETQUOTAROOT (a mailbox), RFC 9208 4.2-4.3."""

    name_arg: str


@dataclass(frozen=True)
class SetQuota(Command):
    """SETQUOTA root (resource limit ...), RFC 9208 4.4."""

    root: str
    limits: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class AclCommand(Command):
    """SETACL DELETEACL GETACL LISTRIGHTS MYRIGHTS (RFC 4314 3)."""

    mailbox: str
    identifier: str = ""
    rights: str = ""  # SETACL's mod-rights, as sent ("+" or "-" first adds or takes)


@dataclass(frozen=True)
class GetMetadata(Command):
    """GETMETADATA [(MAXSIZE n DEPTH d)] mailbox entries (RFC 5464 4.2)."""

    mailbox: str  # "" for the server's entries
    entries: tuple[str, ...]
    maxsize: int | None = None
    depth: int | None = 0  # 0, 1, or None for infinity


@dataclass(frozen=True)
class SetMetadata(Command):
    """SETMETADATA mailbox (entry value ...) (RFC 5464 4.3); a NIL value removes."""

    mailbox: str
    entries: tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True)
class NotifyGroup:
    """One event group of NOTIFY SET (RFC 5465 3.1): which mailboxes, which events."""

    filter: str  # SELECTED SELECTED-DELAYED INBOXES PERSONAL SUBSCRIBED SUBTREE MAILBOXES
    mailboxes: tuple[str, ...] = ()  # for SUBTREE and MAILBOXES
    events: tuple[str, ...] = ()  # () for NONE
    fetch: tuple[FetchItem, ...] = ()  # MessageNew's FETCH attributes (SELECTED only)


@dataclass(frozen=True)
class Notify(Command):
    """NOTIFY SET [STATUS] groups... / NOTIFY NONE (RFC 5465 3)."""

    groups: tuple[NotifyGroup, ...] | None  # None: NOTIFY NONE
    status: bool = False


@dataclass(frozen=True)
class Id(Command):
    params: tuple[tuple[str, str | None], ...] | None


SIMPLE_COMMANDS = frozenset(
    {
        "CAPABILITY",
        "NOOP",
        "LOGOUT",
        "STARTTLS",
        "CHECK",
        "CLOSE",
        "UNSELECT",
        "EXPUNGE",
        "IDLE",
        "NAMESPACE",
        "UNAUTHENTICATE",
    }
)

FETCH_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
FETCH_SIMPLE = frozenset(
    {
        "FLAGS",
        "INTERNALDATE",
        "RFC822.SIZE",
        "ENVELOPE",
        "BODY",
        "BODYSTRUCTURE",
        "UID",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.TEXT",
        "MODSEQ",
        "SAVEDATE",
        "EMAILID",
        "THREADID",
        "PREVIEW",
    }
)
FETCH_SECTIONED = frozenset({"BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE"})
STATUS_ITEMS = frozenset(
    {
        "MESSAGES",
        "RECENT",
        "UIDNEXT",
        "UIDVALIDITY",
        "UNSEEN",
        "SIZE",
        "HIGHESTMODSEQ",
        "DELETED",
        "DELETED-STORAGE",
        "APPENDLIMIT",
        "MAILBOXID",
    }
)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# --- Framing: bytes to complete commands --------------------------------------------------


class Parser:
    def __init__(
        self,
        *,
        max_line: int | None = None,
        max_literal: int | None = None,
        utf8: bool = False,
    ):
        self.max_line = max_line or settings.MAILHOST_IMAP_MAX_LINE_LENGTH
        self.max_literal = max_literal or settings.MAILHOST_IMAP_MAX_LITERAL_SIZE
        # After ENABLE UTF8=ACCEPT (RFC 6855) or IMAP4rev2 mailbox names travel as UTF-8.
        self.utf8 = utf8
        self._buf = bytearray()
        self._parts: list[bytes] = []
        self._literal_needed: int | None = None
        self._continuation_due = False
        self._skipping = False
        self._skip_tag = "*"
        self._command_size = 0

    @property
    def max_command(self) -> int:
        """The most octets of literals and announcing lines one command may hold."""
        return self.max_literal + min(MAX_COMMAND_OVERHEAD, 2 * self.max_literal)

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def in_command(self) -> bool:
        """Part of a command has arrived (a line, a literal, an announcement) but not all."""
        return bool(self._buf or self._parts or self._literal_needed is not None or self._skipping)

    def take_buffer(self) -> bytes:
        """Remove and return unparsed bytes (STARTTLS discards what was pipelined after it)."""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def next_line(self) -> bytes | None:
        """A raw line without its CRLF (IDLE's DONE, AUTHENTICATE responses); None: need data."""
        idx = self._buf.find(b"\n")
        if idx < 0:
            if len(self._buf) > self.max_line:
                self._buf.clear()
                return b""
            return None
        line = bytes(self._buf[:idx])
        del self._buf[: idx + 1]
        return line[:-1] if line.endswith(b"\r") else line

    def next_command(self):
        while True:
            if self._literal_needed is not None:
                needed = self._literal_needed
                if len(self._buf) < needed:
                    if self._continuation_due:
                        self._continuation_due = False
                        return NEED_CONTINUATION
                    return NEED_DATA
                self._parts.append(bytes(self._buf[:needed]))
                del self._buf[:needed]
                self._literal_needed = None
                self._continuation_due = False
                continue
            idx = self._buf.find(b"\n")
            if idx < 0:
                if len(self._buf) > self.max_line:
                    if not self._skipping:
                        self._skip_tag = _guess_tag(
                            self._parts[0] if self._parts else bytes(self._buf)
                        )
                    self._skipping = True
                    self._buf.clear()
                return NEED_DATA
            line = bytes(self._buf[:idx])
            del self._buf[: idx + 1]
            if line.endswith(b"\r"):
                line = line[:-1]
            if self._skipping or len(line) > self.max_line:
                tag = (
                    self._skip_tag
                    if self._skipping
                    else _guess_tag(self._parts[0] if self._parts else line)
                )
                self._skipping = False
                self._parts = []
                return ParseError(tag, "Command line too long", code="TOOBIG")
            match = _LITERAL_END.search(line)
            if match:
                size = int(match.group(1))
                synchronizing = not match.group(2)
                first = self._parts[0] if self._parts else line
                tag = _guess_tag(first)
                self._command_size += size + len(line)
                if size > self.max_literal or self._command_size > self.max_command:
                    self._parts = []
                    self._command_size = 0
                    if synchronizing:
                        # RFC 9051 7.1: refuse before the client sends it; nothing to skip.
                        return ParseError(
                            tag,
                            "Literal too large",
                            code="TOOBIG",
                            status="NO",
                            command=_guess_command(first),
                        )
                    # RFC 7888 4: a non-synchronizing literal we will not take: BAD and close.
                    return ParseError(tag, "Literal too large", code="TOOBIG", fatal=True)
                self._parts.append(line)
                self._literal_needed = size
                self._continuation_due = synchronizing
                continue
            self._parts.append(line)
            parts, self._parts = self._parts, []
            self._command_size = 0
            return parse_command(parts, utf8=self.utf8)


def _guess_tag(line: bytes) -> str:
    tag = line.split(b" ", 1)[0]
    if tag and all(c not in _TAG_CHARS_EXCLUDED and c < 128 for c in tag):
        return tag.decode("ascii")
    return "*"


def _guess_command(line: bytes) -> str:
    words = line.split(b" ", 3)
    if len(words) < 2:
        return ""
    name = words[1].decode("ascii", "replace").upper()
    if name == "UID" and len(words) > 2:
        name += " " + words[2].decode("ascii", "replace").upper()
    return name


# --- Parsing one complete command -------------------------------------------------------


class Reader:
    """A cursor over the parts of one command: line, literal, line, literal, ..., line."""

    # FETCH items read from text (parse_fetch_items) may ask for <n.0>, which the command
    # grammar refuses (RFC 9051 9: nz-number): tests render the empty partial with it.
    zero_partial = False

    def __init__(self, parts: list[bytes], *, utf8: bool = False):
        self.parts = parts
        self.index = 0
        self.line = parts[0]
        self.pos = 0
        self.utf8 = utf8

    # low level

    def peek(self) -> int | None:
        return self.line[self.pos] if self.pos < len(self.line) else None

    def at_end(self) -> bool:
        return self.pos >= len(self.line) and self.index == len(self.parts) - 1

    def expect(self, char: bytes) -> None:
        if self.line[self.pos : self.pos + len(char)] != char:
            raise ParseFailure(f"Expected {char.decode()!r}")
        self.pos += len(char)

    def try_take(self, char: bytes) -> bool:
        if self.line[self.pos : self.pos + len(char)] == char:
            self.pos += len(char)
            return True
        return False

    def sp(self) -> None:
        if self.peek() != 0x20:
            raise ParseFailure("Expected a space")
        self.pos += 1

    def end(self) -> None:
        if not self.at_end():
            raise ParseFailure("Unexpected extra arguments")

    # tokens

    def atom(self) -> str:
        start = self.pos
        self.pos = _run_until(_ATOM_SPECIALS).match(self.line, start).end()
        if self.pos == start:
            raise ParseFailure("Expected an atom")
        data = self.line[start : self.pos]
        if any(c > 127 for c in data):
            raise ParseFailure("8-bit characters in an atom")
        return data.decode("ascii")

    def chars(self, stop: frozenset[int]) -> bytes:
        start = self.pos
        self.pos = _run_until(stop).match(self.line, start).end()
        return self.line[start : self.pos]

    def number(self, *, limit: int = MAX_NUMBER, nonzero: bool = False) -> int:
        start = self.pos
        while self.pos < len(self.line) and 0x30 <= self.line[self.pos] <= 0x39:
            self.pos += 1
        text = self.line[start : self.pos]
        if not text:
            raise ParseFailure("Expected a number")
        value = int(text)
        if value > limit or (nonzero and value == 0):
            raise ParseFailure("Number out of range")
        return value

    def quoted(self) -> bytes:
        self.expect(b'"')
        out = bytearray()
        while True:
            if self.pos >= len(self.line):
                raise ParseFailure("Unterminated quoted string")
            c = self.line[self.pos]
            self.pos += 1
            if c == 0x22:
                return bytes(out)
            if c == 0:  # RFC 9051 9: QUOTED-CHAR is a TEXT-CHAR, and CHAR excludes NUL
                raise ParseFailure("NUL in a quoted string")
            if c == 0x5C:
                if self.pos >= len(self.line) or self.line[self.pos] not in (0x22, 0x5C):
                    raise ParseFailure("Bad escape in a quoted string")
                c = self.line[self.pos]
                self.pos += 1
            out.append(c)

    def literal(self) -> bytes:
        match = _LITERAL_END.match(self.line, self.pos)
        if not match or match.end() != len(self.line) or self.index + 2 >= len(self.parts):
            raise ParseFailure("Bad literal")
        data = self.parts[self.index + 1]
        self.index += 2
        self.line = self.parts[self.index]
        self.pos = 0
        return data

    def string(self) -> bytes:
        c = self.peek()
        if c == 0x22:
            return self.quoted()
        if c in (0x7B, 0x7E):
            return self.literal()
        raise ParseFailure("Expected a string")

    def astring(self) -> bytes:
        c = self.peek()
        if c in (0x22, 0x7B):
            return self.string()
        data = self.chars(_ATOM_SPECIALS - {0x5D})
        if not data:
            raise ParseFailure("Expected a string or atom")
        return data

    def nstring(self) -> bytes | None:
        if self.line[self.pos : self.pos + 3].upper() == b"NIL" and self.peek() != 0x22:
            end = self.pos + 3
            if end >= len(self.line) or self.line[end] in b" )":
                self.pos = end
                return None
        return self.string()

    def text_astring(self) -> str:
        return self.astring().decode("utf-8", "replace")

    def mailbox(self) -> str:
        return self.decode_mailbox(self.astring())

    def decode_mailbox(self, raw: bytes, *, lenient: bool = False) -> str:
        """A mailbox name as Unicode. A name that is not valid modified UTF-7 (or UTF-8) is
        refused with NO [CANNOT]; a LIST pattern (lenient) just keeps its raw text."""
        name = self._decode_mailbox(raw, lenient=lenient)
        if not lenient and any(ord(c) < 32 or ord(c) == 127 for c in name):
            # Control characters (NUL as "&AAA-") never name a folder (RFC 9051 5.1).
            raise ParseFailure("Mailbox name has control characters", "CANNOT", "NO")
        return name

    def _decode_mailbox(self, raw: bytes, *, lenient: bool) -> str:
        if raw.upper() == b"INBOX":
            return "INBOX"
        if self.utf8 or any(c > 127 for c in raw):
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                if lenient:
                    return raw.decode("utf-8", "replace")
                raise ParseFailure("Mailbox name is not valid UTF-8", "CANNOT", "NO") from exc
        try:
            return utf7.decode(raw.decode("ascii"))
        except utf7.UTF7Error as exc:
            if lenient:
                return raw.decode("ascii")
            raise ParseFailure("Mailbox name is not valid modified UTF-7", "CANNOT", "NO") from exc

    def list_mailbox(self) -> str:
        c = self.peek()
        if c in (0x22, 0x7B):
            raw = self.string()
        else:
            raw = self.chars(_ATOM_SPECIALS - {0x25, 0x2A, 0x5D})
            if not raw:
                raise ParseFailure("Expected a mailbox pattern")
        if not raw:
            return ""
        return self.decode_mailbox(raw, lenient=True) if raw.upper() != b"INBOX" else "INBOX"

    def sequence_set(self) -> SequenceSet:
        text = self.chars(frozenset(b" ()")).decode("ascii", "replace")
        return parse_sequence_set(text)

    def paren_list(self, item) -> list:
        """ "(" item *(SP item) ")" (possibly empty)."""
        self.expect(b"(")
        result = []
        if self.try_take(b")"):
            return result
        while True:
            result.append(item())
            if self.try_take(b")"):
                return result
            self.sp()

    def flag(self) -> str:
        if self.try_take(b"\\"):
            if self.try_take(b"*"):
                return "\\*"
            return "\\" + self.atom()
        return self.atom()

    def flag_list(self) -> tuple[str, ...]:
        return tuple(self.paren_list(self.flag))

    def generic(self, depth: int = 0):
        """One generic value: list, string (bytes), or atom-like token (str)."""
        c = self.peek()
        if c == 0x28:
            if depth >= MAX_NESTING:
                raise ParseFailure("Lists nested too deeply")
            self.pos += 1
            items: list = []
            if self.try_take(b")"):
                return items
            while True:
                items.append(self.generic(depth + 1))
                if self.try_take(b")"):
                    return items
                self.sp()
        if c == 0x22 or c == 0x7B or c == 0x7E:
            return self.string()
        data = self.chars(_GENERIC_STOP)
        if not data:
            raise ParseFailure("Expected a value")
        return data.decode("utf-8", "replace")

    def date_time(self) -> datetime:
        raw = self.quoted().decode("ascii", "replace")
        return parse_date_time(raw)


def parse_sequence_set(text: str) -> SequenceSet:
    if text == "$":
        return SequenceSet(saved=True)
    if not text:
        raise ParseFailure("Expected a sequence set")
    ranges = []
    for piece in text.split(","):
        bounds = piece.split(":")
        if len(bounds) > 2 or not piece:
            raise ParseFailure("Bad sequence set")
        values = []
        for bound in bounds:
            if bound == "*":
                values.append(STAR)
            elif bound.isdigit() and bound.isascii() and not bound.startswith("0"):
                value = int(bound)
                if value > MAX_NUMBER:
                    raise ParseFailure("Sequence number out of range")
                values.append(value)
            else:
                raise ParseFailure("Bad sequence set")
        ranges.append((values[0], values[-1]))
    return SequenceSet(tuple(ranges))


def parse_date_time(raw: str) -> datetime:
    """RFC 9051 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz" (day may be space-padded)."""
    match = re.fullmatch(
        r"([ \d]?\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)", raw
    )
    if not match:
        raise ParseFailure("Bad date-time")
    day, month, year, hh, mm, ss, sign, zh, zm = match.groups()
    try:
        month_number = [m.lower() for m in MONTHS].index(month.lower()) + 1
        offset = timedelta(hours=int(zh), minutes=int(zm)) * (-1 if sign == "-" else 1)
        return datetime(
            int(year),
            month_number,
            int(day),
            int(hh),
            int(mm),
            int(ss),
            tzinfo=timezone(offset),
        )
    except ValueError as exc:
        raise ParseFailure("Bad date-time") from exc


def parse_command(parts: list[bytes], *, utf8: bool = False):
    """Parse one complete command (its lines and literals) into a command or a ParseError."""
    reader = Reader(parts, utf8=utf8)
    tag = "*"
    name = ""
    try:
        raw_tag = reader.chars(frozenset(b" "))
        if not raw_tag or any(c in _TAG_CHARS_EXCLUDED or c > 127 for c in raw_tag):
            raise ParseFailure("Missing or invalid tag")
        tag = raw_tag.decode("ascii")
        reader.sp()
        name = reader.atom().upper()
        uid = False
        if name == "UID":
            reader.sp()
            name = reader.atom().upper()
            if name not in (
                "FETCH",
                "STORE",
                "COPY",
                "MOVE",
                "SEARCH",
                "EXPUNGE",
                "SORT",
                "THREAD",
                "REPLACE",
            ):
                raise ParseFailure("Unknown UID command")
            uid = True
        handler = _HANDLERS.get(name)
        if handler is None:
            raise ParseFailure("Unknown command")
        if uid and name == "EXPUNGE":
            reader.sp()
            command = UidExpunge(tag, "UID EXPUNGE", reader.sequence_set())
        elif name in ("FETCH", "STORE", "COPY", "MOVE", "SEARCH", "SORT", "THREAD", "REPLACE"):
            command = handler(reader, tag, name, uid)
        else:
            command = handler(reader, tag, name)
        reader.end()
        return command
    except ParseFailure as exc:
        return ParseError(tag, exc.text, code=exc.code, status=exc.status, command=name)
    except (UnicodeDecodeError, ValueError, IndexError):
        return ParseError(tag, "Syntax error", command=name)


def _simple(reader: Reader, tag: str, name: str) -> Command:
    return Simple(tag, name)


def _login(reader: Reader, tag: str, name: str) -> Command:
    reader.sp()
    user = reader.text_astring()
    reader.sp()
    password = reader.text_astring()
    return Login(tag, name, user, password)


def _authenticate(reader: Reader, tag: str, name: str) -> Command:
    reader.sp()
    mechanism = reader.atom().upper()
    initial = None
    if not reader.at_end():
        reader.sp()
        initial = reader.chars(frozenset(b" ")).decode("ascii")
        if not initial:
            raise ParseFailure("Empty initial response")
    return Authenticate(tag, name, mechanism, initial)


def _enable(reader: Reader, tag: str, name: str) -> Command:
    capabilities = []
    while not reader.at_end():
        reader.sp()
        capabilities.append(reader.atom().upper())
    if not capabilities:
        raise ParseFailure("ENABLE needs a capability")
    return Enable(tag, name, tuple(capabilities))


def _select(reader: Reader, tag: str, name: str) -> Command:
    reader.sp()
    mailbox = reader.mailbox()
    condstore = False
    qresync = None
    if not reader.at_end():
        reader.sp()
        reader.expect(b"(")
        while not reader.try_take(b")"):
            param = reader.atom().upper()
            if param == "CONDSTORE":
                condstore = True
            elif param == "QRESYNC":
                reader.sp()
                qresync = _qresync_params(reader)
            else:
                raise ParseFailure(f"Unknown select parameter {param}")
            if reader.peek() == 0x20:
                reader.sp()
    return Select(tag, name, mailbox, condstore, qresync)


def _qresync_params(reader: Reader) -> QresyncParams:
    # RFC 7162 3.2.5: (uidvalidity mod-sequence-value [known-uids [seq-match-data]])
    reader.expect(b"(")
    uidvalidity = reader.number(nonzero=True)
    reader.sp()
    modseq = reader.number(limit=MAX_NUMBER64)
    known = None
    match = None
    if reader.try_take(b" "):
        if reader.peek() == 0x28:
            match = _seq_match(reader)
        else:
            known = reader.sequence_set()
            if reader.try_take(b" "):
                match = _seq_match(reader)
    reader.expect(b")")
    return QresyncParams(uidvalidity, modseq, known, match)


def _seq_match(reader: Reader) -> tuple[SequenceSet, SequenceSet]:
    reader.expect(b"(")
    seqs = reader.sequence_set()
    reader.sp()
    uids = reader.sequence_set()
    reader.expect(b")")
    return seqs, uids


def _mailbox_command(reader: Reader, tag: str, name: str) -> Command:
    reader.sp()
    mailbox = reader.mailbox()
    special_use: tuple[str, ...] = ()
    if name == "CREATE" and not reader.at_end():
        reader.sp()
        reader.expect(b"(")
        keyword = reader.atom().upper()
        if keyword != "USE":
            raise ParseFailure(f"Unknown CREATE parameter {keyword}")
        reader.sp()
        special_use = reader.flag_list()
        reader.expect(b")")
    return MailboxCommand(tag, name, mailbox, special_use)


def _rename(reader: Reader, tag: str, name: str) -> Command:
    reader.sp()
    old = reader.mailbox()
    reader.sp()
    new = reader.mailbox()
    return Rename(tag, name, old, new)


def _list(reader: Reader, tag: str, name: str) -> Command:
    reader.sp()
    selection: set[str] = set()
    extended = False
    if name == "LIST" and reader.peek() == 0x28:
        extended = True
        selection = {s.upper() for s in reader.paren_list(reader.atom)}
        reader.sp()
    reference = reader.decode_mailbox(reader.astring(), lenient=True)
    reader.sp()
    if name == "LIST" and reader.peek() == 0x28:
        extended = True
        patterns = tuple(reader.paren_list(reader.list_mailbox))
    else:
        patterns = (reader.list_mailbox(),)
    returns = ListReturn()
    if name == "LIST" and not reader.at_end():
        reader.sp()
        if reader.atom().upper() != "RETURN":
            raise ParseFailure("Expected RETURN")
        reader.sp()
        extended = True
        returns = _list_returns(reader)
    allowed = {"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"}
    if selection - allowed:
        raise ParseFailure("Unknown LIST selection option")
    if "RECURSIVEMATCH" in selection and not selection - {"RECURSIVEMATCH", "REMOTE"}:
        # RFC 5258 3.1: never alone, and REMOTE does not count.
        raise ParseFailure("RECURSIVEMATCH needs another selection option")
    return ListCommand(tag, name, reference, patterns, frozenset(selection), returns, extended)


def _list_returns(reader: Reader) -> ListReturn:
    reader.expect(b"(")
    subscribed = children = special_use = False
    status = metadata = maxsize = None
    while not reader.try_take(b")"):
        option = reader.atom().upper()
        if option == "SUBSCRIBED":
            subscribed = True
        elif option == "CHILDREN":
            children = True
        elif option == "SPECIAL-USE":
            special_use = True
        elif option == "STATUS":
            reader.sp()
            status = _status_items(reader)
        elif option == "METADATA":
            # RFC 9590: METADATA ([MAXSIZE n] entries) or METADATA (MAXSIZE n) (entries)
            reader.sp()
            if _metadata_options_ahead(reader):
                maxsize, _depth = _metadata_options(reader)
                reader.sp()
            metadata = _metadata_entries(reader)
        else:
            raise ParseFailure(f"Unknown LIST return option {option}")
        if reader.peek() == 0x20:
            reader.sp()
    return ListReturn(subscribed, children, special_use, status, metadata, maxsize)


def _status_items(reader: Reader) -> tuple[str, ...]:
    items = tuple(s.upper() for s in reader.paren_list(reader.atom))
    if not items or any(item not in STATUS_ITEMS for item in items):
        raise ParseFailure("Unknown STATUS item")
    return items


def _status(reader: Reader, tag: str, name: str) -> Command:
    reader.sp()
    mailbox = reader.mailbox()
    reader.sp()
    return Status(tag, name, mailbox, _status_items(reader))


def _append(reader: Reader, tag: str, name: str) -> Command:
    reader.sp()
    mailbox = reader.mailbox()
    messages = []
    while not reader.at_end():
        reader.sp()
        messages.append(_append_message(reader))
    if not messages:
        raise ParseFailure("APPEND needs a message")
    return Append(tag, name, mailbox, tuple(messages))


def _replace(reader: Reader, tag: str, name: str, uid: bool) -> Command:
    # RFC 8508 6: replace = "REPLACE" SP seq-number SP mailbox SP append-message
    reader.sp()
    number = reader.number(nonzero=True)
    reader.sp()
    mailbox = reader.mailbox()
    reader.sp()
    return Replace(tag, name, uid, number, mailbox, _append_message(reader))


def _append_message(reader: Reader) -> AppendMessage:
    """One append-message (RFC 9051 9): [flag-list SP] [date-time SP] literal."""
    flags: tuple[str, ...] = ()
    date = None
    if reader.peek() == 0x28:
        flags = reader.flag_list()
        reader.sp()
    if reader.peek() == 0x22:
        date = reader.date_time()
        reader.sp()
    if reader.line[reader.pos : reader.pos + 5].upper() == b"UTF8 ":
        # RFC 6855 4: APPEND ... UTF8 (literal8)
        reader.pos += 5
        reader.expect(b"(")
        data = reader.string()
        reader.expect(b")")
    else:
        if reader.peek() not in (0x7B, 0x7E):
            raise ParseFailure("APPEND needs a literal")
        data = reader.literal()
    if any(f == "\\*" or f.lower() == "\\recent" for f in flags):
        raise ParseFailure("Invalid flag in APPEND")
    return AppendMessage(data, flags, date)


def _fetch(reader: Reader, tag: str, name: str, uid: bool) -> Command:
    reader.sp()
    sequence = reader.sequence_set()
    reader.sp()
    pairs = _fetch_att_list(reader)
    changedsince = None
    vanished = False
    if not reader.at_end():
        reader.sp()
        reader.expect(b"(")
        while not reader.try_take(b")"):
            modifier = reader.atom().upper()
            if modifier == "CHANGEDSINCE":
                reader.sp()
                changedsince = reader.number(limit=MAX_NUMBER64)
            elif modifier == "VANISHED":
                vanished = True
            else:
                raise ParseFailure(f"Unknown FETCH modifier {modifier}")
            if reader.peek() == 0x20:
                reader.sp()
    if vanished and (not uid or changedsince is None):
        raise ParseFailure("VANISHED needs UID FETCH with CHANGEDSINCE")  # RFC 7162 3.2.6
    atts = tuple(att for att, _item in pairs)
    items = tuple(item for _att, item in pairs)
    return Fetch(tag, name, uid, sequence, atts, changedsince, vanished, items)


def _fetch_att_list(reader: Reader) -> list[tuple[FetchAtt, FetchItem]]:
    """A parenthesized list of FETCH items, or one item or macro."""
    if reader.peek() == 0x28:
        pairs = [a for group in reader.paren_list(lambda: _fetch_att(reader)) for a in group]
        if not pairs:
            raise ParseFailure("Empty FETCH item list")
        return pairs
    return list(_fetch_att(reader, macros=True))


def parse_fetch_items(text: str) -> tuple[FetchItem, ...]:
    """FETCH items from text (tests and tools) by the command's grammar: a macro, or items
    with or without the parentheses ("(UID BODY.PEEK[1])", "RFC822.SIZE BODY[]")."""
    text = text.strip()
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    if text.upper() in FETCH_MACROS:
        return tuple(FetchItem(n) for n in FETCH_MACROS[text.upper()])
    reader = Reader([text.encode("utf-8")])
    reader.zero_partial = True
    items = [item for _att, item in _fetch_att(reader)]
    while not reader.at_end():
        reader.sp()
        items.extend(item for _att, item in _fetch_att(reader))
    return tuple(items)


def fetch_items_of(atts) -> tuple[FetchItem, ...]:
    """The typed items of FetchAtts (a macro names several)."""
    items: list[FetchItem] = []
    for att in atts:
        name = att.name.upper()
        if name in FETCH_MACROS and att.section is None:
            items.extend(FetchItem(n) for n in FETCH_MACROS[name])
        else:
            items.append(_typed_item(name, att.section, att.partial))
    return tuple(items)


def _typed_item(word: str, section: str | None, partial: tuple[int, int] | None) -> FetchItem:
    if section is None:
        if word not in FETCH_SIMPLE or partial is not None:
            raise ParseFailure(f"Unknown FETCH item {word}")
        return FetchItem(word)
    if word not in FETCH_SECTIONED:
        raise ParseFailure(f"{word} takes no section")
    if partial is not None and word == "BINARY.SIZE":
        raise ParseFailure("BINARY.SIZE takes no partial")
    return FetchItem(
        word.removesuffix(".PEEK"), parse_section(section), word.endswith(".PEEK"), partial
    )


FETCH_SPECS = ("HEADER.FIELDS.NOT", "HEADER.FIELDS", "HEADER", "TEXT", "MIME")


def parse_section(text: str) -> Section:
    """The text inside [...]: "", "1.2", "HEADER", "1.TEXT", "HEADER.FIELDS (A B)", ..."""
    text = text.strip()
    if not text:
        return Section()
    fields: tuple[str, ...] = ()
    paren = text.find("(")
    if paren >= 0:
        if not text.endswith(")"):
            raise ParseFailure("Bad header list")
        fields = tuple(_field_names(text[paren + 1 : -1]))
        if not fields:
            raise ParseFailure("Empty header list")
        text = text[:paren].rstrip()
        if " " in text:
            raise ParseFailure("Bad section")
    path: list[int] = []
    rest = text
    while rest:
        number, dot, tail = rest.partition(".")
        if number.isdigit() and number.isascii():
            if number.startswith("0"):
                raise ParseFailure("Section numbers start at 1")
            path.append(int(number))
            if dot and not tail:
                raise ParseFailure("Bad section")
            rest = tail
        else:
            break
    spec = rest.upper()
    if spec and spec not in FETCH_SPECS:
        raise ParseFailure(f"Unknown section {rest}")
    if spec == "MIME" and not path:
        raise ParseFailure("MIME needs a part number")
    if spec.startswith("HEADER.FIELDS") != bool(fields):
        raise ParseFailure("HEADER.FIELDS takes a header list")
    # RFC 3516 section-binary allows part numbers only; like Dovecot (and imaptest's
    # fetch-binary-mime) we also take HEADER, TEXT, MIME and HEADER.FIELDS, sent undecoded.
    return Section(tuple(path), spec, fields)


def _field_names(text: str) -> list[str]:
    names = []
    for match in re.finditer(r'"((?:[^"\\]|\\.)*)"|(\S+)', text):
        if match.group(1) is not None:
            names.append(re.sub(r"\\(.)", r"\1", match.group(1)))
        else:
            names.append(match.group(2))
    return names


def _fetch_att(reader: Reader, macros: bool = False) -> tuple[tuple[FetchAtt, FetchItem], ...]:
    """One FETCH item as written and typed (a macro's items when macros are allowed)."""
    word = reader.chars(frozenset(b" ()[<")).decode("ascii", "replace").upper()
    if macros and word in FETCH_MACROS:
        return tuple((FetchAtt(n), FetchItem(n)) for n in FETCH_MACROS[word])
    section = None
    partial = None
    if reader.peek() == 0x5B:
        if word not in FETCH_SECTIONED:
            raise ParseFailure(f"Unknown FETCH item {word}")
        reader.pos += 1
        start = reader.pos
        in_quote = False
        while True:
            c = reader.peek()
            if c is None:
                raise ParseFailure("Unterminated section")
            if c == 0x22:
                in_quote = not in_quote
            elif c == 0x5C and in_quote:
                reader.pos += 1
            elif c == 0x5D and not in_quote:
                break
            reader.pos += 1
        section = reader.line[start : reader.pos].decode("utf-8", "replace")
        reader.pos += 1
        if reader.try_take(b"<"):
            offset = reader.number()
            if word == "BINARY.SIZE":
                raise ParseFailure("BINARY.SIZE takes no partial")
            reader.expect(b".")
            length = reader.number(nonzero=not reader.zero_partial)
            reader.expect(b">")
            partial = (offset, length)
    elif word in ("BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE"):
        raise ParseFailure(f"{word} needs a section")
    elif word not in FETCH_SIMPLE:
        raise ParseFailure(f"Unknown FETCH item {word or '(empty)'}")
    elif word == "PREVIEW" and reader.line[reader.pos : reader.pos + 7].upper() == b" (LAZY)":
        # RFC 8970 4: PREVIEW (LAZY); we always compute it, which LAZY allows
        reader.pos += 7
    return ((FetchAtt(word, section, partial), _typed_item(word, section, partial)),)


def _store(reader: Reader, tag: str, name: str, uid: bool) -> Command:
    reader.sp()
    sequence = reader.sequence_set()
    reader.sp()
    unchangedsince = None
    if reader.peek() == 0x28:
        reader.expect(b"(")
        if reader.atom().upper() != "UNCHANGEDSINCE":
            raise ParseFailure("Unknown STORE modifier")
        reader.sp()
        unchangedsince = reader.number(limit=MAX_NUMBER64)
        reader.expect(b")")
        reader.sp()
    action = reader.atom().upper()
    mode = "replace"
    if action.startswith("+"):
        mode, action = "add", action[1:]
    elif action.startswith("-"):
        mode, action = "remove", action[1:]
    if action not in ("FLAGS", "FLAGS.SILENT"):
        raise ParseFailure("Expected FLAGS, +FLAGS or -FLAGS")
    reader.sp()
    if reader.peek() == 0x28:
        flags = reader.flag_list()
    else:
        flags_list = [reader.flag()]
        while not reader.at_end():
            reader.sp()
            flags_list.append(reader.flag())
        flags = tuple(flags_list)
    if any(f == "\\*" for f in flags):
        raise ParseFailure("\\* is not a flag")
    if any(f.lower() == "\\recent" for f in flags):
        # RFC 3501 6.4.6 / RFC 9051 2.3.2: the server alone sets \Recent (Dovecot: BAD too)
        raise ParseFailure("Invalid system flag \\Recent: only the server sets it")
    return Store(tag, name, uid, sequence, mode, action.endswith(".SILENT"), flags, unchangedsince)


def _copy(reader: Reader, tag: str, name: str, uid: bool) -> Command:
    reader.sp()
    sequence = reader.sequence_set()
    reader.sp()
    return Copy(tag, name, uid, sequence, reader.mailbox())


def _search(reader: Reader, tag: str, name: str, uid: bool) -> Command:
    returns = None
    charset = None
    reader.sp()
    partial = None
    if reader.line[reader.pos : reader.pos + 7].upper() == b"RETURN ":
        reader.pos += 7
        returns, partial = _return_options(reader, SEARCH_RETURN_OPTIONS)
        reader.sp()
    if reader.line[reader.pos : reader.pos + 8].upper() == b"CHARSET ":
        reader.pos += 8
        charset = reader.astring().decode("ascii", "replace").upper()
        reader.sp()
    return Search(tag, name, uid, _search_keys(reader), charset, returns, partial)


# RFC 4731 and RFC 5182's options, and RFC 5267 4's CONTEXT, UPDATE and PARTIAL
SEARCH_RETURN_OPTIONS = frozenset(
    {"MIN", "MAX", "ALL", "COUNT", "SAVE", "CONTEXT", "UPDATE", "PARTIAL"}
)
SORT_RETURN_OPTIONS = frozenset({"MIN", "MAX", "ALL", "COUNT", "CONTEXT", "UPDATE", "PARTIAL"})


def _return_options(
    reader: Reader, allowed: frozenset[str]
) -> tuple[tuple[str, ...], tuple[int, int] | None]:
    """RETURN (...) of ESEARCH/ESORT; PARTIAL takes a range (RFC 5267 4.4, RFC 9394 3.1).
    CONTEXT is a hint (RFC 5267 4.2) and left out."""
    words = iter(reader.paren_list(reader.atom))
    options: list[str] = []
    partial = None
    for word in words:
        word = word.upper()
        if word == "PARTIAL" and "PARTIAL" in allowed:
            partial = _partial_range(next(words, ""))
        elif word == "CONTEXT" and word in allowed:
            continue
        elif word in allowed:
            options.append(word)
        else:
            raise ParseFailure(f"Unknown RETURN option {word}")
    if partial is not None and "ALL" in options:
        raise ParseFailure("PARTIAL conflicts with ALL")  # RFC 5267 4.4, RFC 9394 3.1
    if options.count("UPDATE") > 1:
        raise ParseFailure("Duplicate UPDATE")
    return tuple(options), partial


_PARTIAL = re.compile(r"(-?)([1-9]\d{0,9}):(-?)([1-9]\d{0,9})$")


def _partial_range(text: str) -> tuple[int, int]:
    """ "2:4" or "-1:-100" (RFC 9394 3.1; both ends on one side), the smaller magnitude
    first as the response gives it."""
    match = _PARTIAL.match(text)
    if match is None or match.group(1) != match.group(3):
        raise ParseFailure("Invalid PARTIAL range")
    low, high = sorted((int(match.group(2)), int(match.group(4))))
    if high > MAX_NUMBER:
        raise ParseFailure("Invalid PARTIAL range")
    return (-low, -high) if match.group(1) else (low, high)


def _search_keys(reader: Reader) -> tuple:
    keys = [reader.generic()]
    while not reader.at_end():
        reader.sp()
        keys.append(reader.generic())
    return tuple(keys)


def parse_search_keys(text: str) -> tuple:
    """SEARCH keys from text (tests and tools) as the command's tokens: atoms str, strings
    bytes, parenthesized lists list."""
    return _search_keys(Reader([text.encode("utf-8")]))


MULTISEARCH_FILTERS = frozenset(
    {
        "SELECTED",
        "SELECTED-DELAYED",
        "INBOXES",
        "PERSONAL",
        "SUBSCRIBED",
        "SUBTREE",
        "SUBTREE-ONE",
        "MAILBOXES",
    }
)


def _esearch(reader: Reader, tag: str, name: str) -> Command:
    # RFC 7377 2: esearch = "ESEARCH" [SP esearch-source-opts] [SP search-return-opts]
    #                       SP search-program
    reader.sp()
    sources = None
    if reader.line[reader.pos : reader.pos + 4].upper() == b"IN (":
        reader.pos += 4
        items = []
        while True:
            word = reader.atom().upper()
            if word not in MULTISEARCH_FILTERS:
                raise ParseFailure(f"Unknown mailbox filter {word}")
            names: tuple[str, ...] = ()
            if word in ("SUBTREE", "SUBTREE-ONE", "MAILBOXES"):
                reader.sp()
                if reader.peek() == 0x28:
                    names = tuple(reader.paren_list(reader.mailbox))
                else:
                    names = (reader.mailbox(),)
                if not names:
                    raise ParseFailure("Mailbox filter needs a mailbox")
            items.append((word, names))
            if reader.try_take(b")"):
                break
            reader.sp()
        sources = tuple(items)
        reader.sp()
    returns: tuple[str, ...] = ()
    if reader.line[reader.pos : reader.pos + 7].upper() == b"RETURN ":
        reader.pos += 7
        returns, _ = _return_options(reader, frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"}))
        reader.sp()
    if sources is not None and "SAVE" in returns:
        raise ParseFailure("SAVE cannot be used with IN")  # RFC 7377 2
    charset = None
    if reader.line[reader.pos : reader.pos + 8].upper() == b"CHARSET ":
        reader.pos += 8
        charset = reader.astring().decode("ascii", "replace").upper()
        reader.sp()
    return MultiSearch(tag, name, sources, returns, charset, _search_keys(reader))


def _sort(reader: Reader, tag: str, name: str, uid: bool) -> Command:
    # RFC 5256 4: SORT [RETURN (...)] (criteria) charset search-key...
    reader.sp()
    returns = partial = None
    if reader.line[reader.pos : reader.pos + 7].upper() == b"RETURN ":
        reader.pos += 7
        returns, partial = _return_options(reader, SORT_RETURN_OPTIONS)
        reader.sp()
    criteria = tuple(word.upper() for word in reader.paren_list(reader.atom))
    reader.sp()
    charset = reader.astring().decode("ascii", "replace").upper()
    reader.sp()
    return Sort(tag, name, uid, criteria, charset, _search_keys(reader), returns, partial)


def _cancelupdate(reader: Reader, tag: str, name: str) -> Command:
    # RFC 5267 5: "CANCELUPDATE" 1*(SP quoted)
    tags = []
    while not reader.at_end():
        reader.sp()
        tags.append(reader.quoted().decode("utf-8", "replace"))
    if not tags:
        raise ParseFailure("CANCELUPDATE needs a tag")
    return CancelUpdate(tag, name, tuple(tags))


def _thread(reader: Reader, tag: str, name: str, uid: bool) -> Command:
    # RFC 5256 4: THREAD algorithm charset search-key...
    reader.sp()
    algorithm = reader.atom().upper()
    reader.sp()
    charset = reader.astring().decode("ascii", "replace").upper()
    reader.sp()
    return Thread(tag, name, uid, algorithm, charset, _search_keys(reader))


def _compress(reader: Reader, tag: str, name: str) -> Command:
    # RFC 4978 3: COMPRESS SP algorithm
    reader.sp()
    return Compress(tag, name, reader.atom().upper())


def _getquota(reader: Reader, tag: str, name: str) -> Command:
    reader.sp()
    if name == "GETQUOTAROOT":
        return QuotaCommand(tag, name, reader.mailbox())
    return QuotaCommand(tag, name, reader.text_astring())


def _setquota(reader: Reader, tag: str, name: str) -> Command:
    # RFC 9208 4.4: setquota_list = "(" [setquota_resource *(SP setquota_resource)] ")"
    reader.sp()
    root = reader.text_astring()
    reader.sp()
    reader.expect(b"(")
    limits = []
    while not reader.try_take(b")"):
        resource = reader.atom().upper()
        reader.sp()
        limits.append((resource, reader.number(limit=MAX_NUMBER64)))
        if reader.peek() == 0x20:
            reader.sp()
    return SetQuota(tag, name, root, tuple(limits))


def _acl(reader: Reader, tag: str, name: str) -> Command:
    # RFC 4314 3 / 7: each takes a mailbox; SETACL DELETEACL LISTRIGHTS an identifier;
    # SETACL a mod-rights (astring)
    reader.sp()
    mailbox = reader.mailbox()
    identifier = rights = ""
    if name in ("SETACL", "DELETEACL", "LISTRIGHTS"):
        reader.sp()
        identifier = reader.text_astring()
    if name == "SETACL":
        reader.sp()
        rights = reader.text_astring()
    return AclCommand(tag, name, mailbox, identifier, rights)


def metadata_entry(reader: Reader, *, setting: bool = False) -> str:
    """An entry name (RFC 5464 3.2): /private or /shared then slash-separated components of
    printable ASCII without "*" or "%"; lower-cased (names are case-insensitive)."""
    raw = reader.astring()
    if any(c < 0x21 or c > 0x7E or c in b"*%" for c in raw):
        raise ParseFailure("Invalid metadata entry name")
    name = raw.decode("ascii").lower()
    roots = ("/private/", "/shared/") if setting else ("/private", "/shared")
    if (
        not name.startswith(roots)
        or "//" in name
        or (name.endswith("/") and len(name) > 1)
        or name.split("/")[1] not in ("private", "shared")
    ):
        raise ParseFailure("Invalid metadata entry name")
    return name


def _metadata_entries(reader: Reader) -> tuple[str, ...]:
    if reader.peek() == 0x28:
        entries = tuple(reader.paren_list(lambda: metadata_entry(reader)))
        if not entries:
            raise ParseFailure("No metadata entries")
        return entries
    return (metadata_entry(reader),)


def _metadata_options(reader: Reader) -> tuple[int | None, int | None]:
    """(MAXSIZE n DEPTH 0|1|infinity), RFC 5464 4.2.1-4.2.2; (maxsize, depth)."""
    maxsize, depth = None, 0
    reader.expect(b"(")
    while not reader.try_take(b")"):
        option = reader.atom().upper()
        reader.sp()
        if option == "MAXSIZE":
            maxsize = reader.number()
        elif option == "DEPTH":
            value = reader.atom().lower()
            if value not in ("0", "1", "infinity"):
                raise ParseFailure("DEPTH is 0, 1 or infinity")
            depth = None if value == "infinity" else int(value)
        else:
            raise ParseFailure(f"Unknown GETMETADATA option {option}")
        if reader.peek() == 0x20:
            reader.sp()
    return maxsize, depth


def _metadata_options_ahead(reader: Reader) -> bool:
    rest = reader.line[reader.pos : reader.pos + 9].upper()
    return rest.startswith((b"(MAXSIZE ", b"(DEPTH "))


def _getmetadata(reader: Reader, tag: str, name: str) -> Command:
    # RFC 5464 4.2; the options may also follow the mailbox, as Dovecot and clients send
    reader.sp()
    maxsize, depth = None, 0
    if _metadata_options_ahead(reader):
        maxsize, depth = _metadata_options(reader)
        reader.sp()
    mailbox = _metadata_mailbox(reader)
    reader.sp()
    if _metadata_options_ahead(reader):
        maxsize, depth = _metadata_options(reader)
        reader.sp()
    return GetMetadata(tag, name, mailbox, _metadata_entries(reader), maxsize, depth)


def _setmetadata(reader: Reader, tag: str, name: str) -> Command:
    # RFC 5464 4.3: SETMETADATA mailbox (entry value *(SP entry value))
    reader.sp()
    mailbox = _metadata_mailbox(reader)
    reader.sp()
    reader.expect(b"(")
    entries = []
    while True:
        entry = metadata_entry(reader, setting=True)
        reader.sp()
        entries.append((entry, reader.nstring()))
        if reader.try_take(b")"):
            break
        reader.sp()
    return SetMetadata(tag, name, mailbox, tuple(entries))


def _metadata_mailbox(reader: Reader) -> str:
    """A mailbox name, or "" for the server (RFC 5464 4.2: an empty mailbox name)."""
    if reader.line[reader.pos : reader.pos + 2] == b'""':
        reader.pos += 2
        return ""
    return reader.mailbox()


NOTIFY_FILTERS = frozenset(
    {"SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED", "SUBTREE", "MAILBOXES"}
)
NOTIFY_EVENTS = {
    name.upper(): name
    for name in (
        "MessageNew",
        "MessageExpunge",
        "FlagChange",
        "AnnotationChange",
        "MailboxName",
        "SubscriptionChange",
        "MailboxMetadataChange",
        "ServerMetadataChange",
    )
}


def _notify_group(reader: Reader) -> NotifyGroup:
    reader.expect(b"(")
    kind = reader.atom().upper()
    if kind not in NOTIFY_FILTERS:
        raise ParseFailure(f"Unknown NOTIFY filter {kind}")
    mailboxes: tuple[str, ...] = ()
    if kind in ("SUBTREE", "MAILBOXES"):
        reader.sp()
        if reader.peek() == 0x28:
            mailboxes = tuple(reader.paren_list(reader.mailbox))
        else:
            mailboxes = (reader.mailbox(),)
    reader.sp()
    events: list[str] = []
    fetch: tuple[FetchItem, ...] = ()
    if reader.try_take(b"("):
        while True:
            word = reader.atom().upper()
            if word not in NOTIFY_EVENTS:
                # RFC 5465 3.1: NO [BADEVENT] names the events we support
                raise ParseFailure(
                    f"Unknown event {word}",
                    "BADEVENT (" + " ".join(NOTIFY_EVENTS.values()) + ")",
                    "NO",
                )
            events.append(NOTIFY_EVENTS[word])
            if word == "MESSAGENEW" and reader.line[reader.pos : reader.pos + 2] == b" (":
                reader.sp()
                fetch = tuple(
                    item
                    for group in reader.paren_list(lambda: _fetch_att(reader))
                    for _att, item in group
                )
            if reader.try_take(b")"):
                break
            reader.sp()
    elif reader.atom().upper() != "NONE":
        raise ParseFailure("Expected events or NONE")
    reader.expect(b")")
    # RFC 5465 5 asks clients to name MessageNew and MessageExpunge together; like Dovecot
    # (and its imaptest script) each is taken alone too.
    return NotifyGroup(kind, mailboxes, tuple(events), fetch)


def _notify(reader: Reader, tag: str, name: str) -> Command:
    # RFC 5465 8: notify = "NOTIFY" SP (notify-set / notify-none)
    reader.sp()
    word = reader.atom().upper()
    if word == "NONE":
        return Notify(tag, name, None)
    if word != "SET":
        raise ParseFailure("Expected SET or NONE")
    reader.sp()
    status = False
    if reader.line[reader.pos : reader.pos + 7].upper() == b"STATUS ":
        reader.pos += 7
        status = True
    groups = [_notify_group(reader)]
    while not reader.at_end():
        reader.sp()
        groups.append(_notify_group(reader))
    return Notify(tag, name, tuple(groups), status)


def _id(reader: Reader, tag: str, name: str) -> Command:
    reader.sp()
    if reader.peek() != 0x28:
        if reader.nstring() is not None:
            raise ParseFailure("ID takes a list or NIL")
        return Id(tag, name, None)
    reader.expect(b"(")
    params = []
    while not reader.try_take(b")"):
        key = reader.string().decode("utf-8", "replace")
        reader.sp()
        value = reader.nstring()
        params.append((key, None if value is None else value.decode("utf-8", "replace")))
        if reader.peek() == 0x20:
            reader.sp()
    return Id(tag, name, tuple(params[:30]))


_HANDLERS = {
    **{name: _simple for name in SIMPLE_COMMANDS},
    "LOGIN": _login,
    "AUTHENTICATE": _authenticate,
    "ENABLE": _enable,
    "SELECT": _select,
    "EXAMINE": _select,
    "CREATE": _mailbox_command,
    "DELETE": _mailbox_command,
    "SUBSCRIBE": _mailbox_command,
    "UNSUBSCRIBE": _mailbox_command,
    "RENAME": _rename,
    "LIST": _list,
    "LSUB": _list,
    "STATUS": _status,
    "APPEND": _append,
    "FETCH": _fetch,
    "STORE": _store,
    "COPY": _copy,
    "MOVE": _copy,
    "SEARCH": _search,
    "SORT": _sort,
    "THREAD": _thread,
    "COMPRESS": _compress,
    "ESEARCH": _esearch,
    "CANCELUPDATE": _cancelupdate,
    "REPLACE": _replace,
    "GETQUOTA": _getquota,
    "GETQUOTAROOT": _getquota,
    "SETQUOTA": _setquota,
    "ID": _id,
    "GETMETADATA": _getmetadata,
    "NOTIFY": _notify,
    "SETMETADATA": _setmetadata,
    **{name: _acl for name in ("SETACL", "DELETEACL", "GETACL", "LISTRIGHTS", "MYRIGHTS")},
}
