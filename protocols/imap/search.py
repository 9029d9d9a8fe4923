"""SEARCH: search keys into a key tree (RFC 3501 6.4.4, RFC 9051 6.4.4, RFC 7162 MODSEQ), and
the key tree evaluated against a folder.

Evaluation is split in two: every key compiles to
- `exact`: a Django Q on mailboxes.models.Message giving exactly the key's messages, when the
  key is about columns (flags, dates, size, uid, modseq, sequence numbers, \\Recent);
- `pre`: a Q that is a superset of the key's messages otherwise (cached header fields, dates);
- `py`: a Python predicate that is always exact, used on the rows the SQL lets through. It
  reads the message's bytes only when the key needs them (BODY, TEXT, HEADER, BCC, a
  Date: header near the day boundary, a header field too long to be cached whole).

So flag/date/uid/size searches on a 100k-message folder are one SQL query, and header or body
searches read blobs only for the candidate rows.

What the string keys match (case-insensitively, Unicode case folding, white space runs as one):
FROM/TO/CC/BCC the decoded addresses as mailboxes.headers displays them ("Name <a@b>", group
names too); SUBJECT the decoded subject; HEADER the decoded field (all occurrences); BODY the
text/* parts with their transfer encoding and charset undone; TEXT the header and BODY.
"""

from __future__ import annotations

import bisect
import codecs
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.utils import parsedate_tz

from django.db.models import BooleanField, F, Func, Q
from django.db.models.functions import Length

from mailboxes import fulltext, selectors
from mailboxes import headers as header_cache
from mailboxes.flags import COLUMNS as FLAG_COLUMNS
from mailboxes.flags import SYSTEM as SYSTEM_FLAGS
from mailboxes.flags import SystemFlag
from mailboxes.flags import column as flag_column
from protocols.imap import objectid
from protocols.imap.parser import (
    ParseFailure,
    SequenceSet,
    parse_search_keys,
    parse_sequence_set,
)

# Advertised in BADCHARSET; any charset Python can decode is accepted (aliases too: utf8).
SUPPORTED_CHARSETS = ("US-ASCII", "UTF-8")
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")

# Header fields cached on Message, with the length at which the cache truncates them.
CACHED_FIELDS = {
    "from": ("from_display", 2000),
    "to": ("to_display", 4000),
    "cc": ("cc_display", 4000),
    "subject": ("subject", 2000),
}
# A Date: header's own day may differ from its UTC day by this much (RFC 5322 zones).
SENT_DATE_BAND = timedelta(hours=24)
# More ranges than this in a sequence set are matched in Python (SQL expression depth).
MAX_SQL_RANGES = 100
# NOT, OR and parenthesized lists nested deeper than this are refused with BAD: the key tree
# is built and evaluated recursively (5,000 NOTs were a RecursionError, NO [SERVERBUG]).
MAX_KEY_DEPTH = 100


class SearchSyntaxError(ValueError):
    """Keys the grammar does not allow: the engine answers BAD."""


class BadCharset(Exception):
    """An unknown CHARSET: NO [BADCHARSET (US-ASCII UTF-8)] (RFC 9051 6.4.4)."""

    code = "BADCHARSET (" + " ".join(SUPPORTED_CHARSETS) + ")"


# --- The key tree ------------------------------------------------------------------------


@dataclass(frozen=True)
class All:
    pass


@dataclass(frozen=True)
class Flag:
    column: str  # a Message column of mailboxes.flags.COLUMNS
    value: bool


@dataclass(frozen=True)
class Keyword:
    name: str
    present: bool


@dataclass(frozen=True)
class Recent:
    pass


@dataclass(frozen=True)
class DateKey:
    field: str  # "internal" (BEFORE ON SINCE) or "sent" (SENTBEFORE SENTON SENTSINCE)
    op: str  # "before" "on" "since"
    day: date


@dataclass(frozen=True)
class ObjectId:
    """EMAILID / THREADID (RFC 8474 6)."""

    kind: str  # "emailid" "threadid"
    value: str


@dataclass(frozen=True)
class Size:
    op: str  # "larger" "smaller"
    octets: int


@dataclass(frozen=True)
class HeaderKey:
    field: str  # lower-case field name (FROM TO CC BCC SUBJECT map here too)
    needle: str


@dataclass(frozen=True)
class TextKey:
    where: str  # "body" or "text"
    needle: str


@dataclass(frozen=True)
class Sequence_:
    set: SequenceSet
    uid: bool


@dataclass(frozen=True)
class Modseq:
    value: int


@dataclass(frozen=True)
class Not:
    key: object


@dataclass(frozen=True)
class Or:
    left: object
    right: object


@dataclass(frozen=True)
class And:
    keys: tuple


# --- Parsing -----------------------------------------------------------------------------

_SEQUENCE = re.compile(r"^[0-9*$:,]+$")
_DATE = re.compile(r"^(\d{1,2})-([A-Za-z]{3})-(\d{4})$")


def check_charset(charset: str | None) -> str | None:
    """The Python codec that decodes the SEARCH strings of `charset`.

    RFC 9051 6.4.4: US-ASCII and UTF-8 must be supported, others may be. Every name Python
    decodes text with is taken, aliases included ("utf8", "latin1", "KOI8-R"); an unknown
    one (or a bytes-to-bytes codec such as base64) is BADCHARSET."""
    if charset is None:
        return None
    try:
        name = codecs.lookup(charset).name
        b"a".decode(name, "replace")  # bytes-to-bytes codecs raise LookupError here
    except (LookupError, UnicodeError):
        raise BadCharset(charset) from None
    return "utf-8" if name == "ascii" else name  # 8-bit "us-ascii" strings are UTF-8


def parse_keys(tokens: Sequence | str, charset: str | None = None) -> object:
    """The key tree of a SEARCH command's keys (implicitly ANDed).

    tokens: the parser's generic list (atoms str, strings bytes, lists list), or text read
    by the parser's grammar (parser.parse_search_keys).
    A leading CHARSET x in the tokens is honoured too.
    """
    if isinstance(tokens, str):
        try:
            tokens = parse_search_keys(tokens)
        except ParseFailure as exc:
            raise SearchSyntaxError(str(exc)) from None
    tokens = list(tokens)
    if len(tokens) >= 2 and isinstance(tokens[0], str) and tokens[0].upper() == "CHARSET":
        charset = _text(tokens[1], None)
        tokens = tokens[2:]
    charset = check_charset(charset)
    if not tokens:
        raise SearchSyntaxError("Missing search key")
    reader = _Reader(tokens, charset)
    keys = []
    while not reader.done():
        keys.append(reader.key())
    return keys[0] if len(keys) == 1 else And(tuple(keys))


def _text(token: object, charset: str | None) -> str:
    if isinstance(token, bytes):
        # RFC 9051 6.4.4: strings are in the CHARSET (UTF-8 when absent; US-ASCII is a subset)
        return token.decode(charset or "utf-8", "replace")
    if isinstance(token, str):
        return token
    raise SearchSyntaxError("Expected a string")


class _Reader:
    def __init__(self, tokens: list, charset: str | None, depth: int = 0):
        self.tokens = tokens
        self.pos = 0
        self.charset = charset
        self.depth = depth  # NOT, OR and lists around this reader's keys

    def done(self) -> bool:
        return self.pos >= len(self.tokens)

    def next(self) -> object:
        if self.done():
            raise SearchSyntaxError("Missing search argument")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def string(self) -> str:
        return _text(self.next(), self.charset)

    def atom(self) -> str:
        token = self.next()
        if not isinstance(token, str):
            raise SearchSyntaxError("Expected an atom")
        return token

    def number(self) -> int:
        token = self.next()
        if not isinstance(token, str) or not token.isdigit() or not token.isascii():
            raise SearchSyntaxError("Expected a number")
        value = int(token)
        if value >= 2**63:
            raise SearchSyntaxError("Number out of range")
        return value

    def date(self) -> date:
        text = _text(self.next(), None)
        match = _DATE.match(text)
        if not match or match.group(2).lower() not in MONTHS:
            raise SearchSyntaxError("Bad date")
        try:
            return date(
                int(match.group(3)), MONTHS.index(match.group(2).lower()) + 1, int(match.group(1))
            )
        except ValueError as exc:
            raise SearchSyntaxError("Bad date") from exc

    def nested(self) -> object:
        """The key inside a NOT or OR."""
        self.depth += 1
        if self.depth > MAX_KEY_DEPTH:
            raise SearchSyntaxError(f"Search keys nested deeper than {MAX_KEY_DEPTH}")
        try:
            return self.key()
        finally:
            self.depth -= 1

    def key(self) -> object:
        token = self.next()
        if isinstance(token, list):
            if not token:
                raise SearchSyntaxError("Empty parenthesized key list")
            if self.depth + 1 > MAX_KEY_DEPTH:
                raise SearchSyntaxError(f"Search keys nested deeper than {MAX_KEY_DEPTH}")
            inner = _Reader(token, self.charset, self.depth + 1)
            keys = []
            while not inner.done():
                keys.append(inner.key())
            return keys[0] if len(keys) == 1 else And(tuple(keys))
        if not isinstance(token, str):
            raise SearchSyntaxError("Expected a search key")
        name = token.upper()
        simple = _SIMPLE_KEYS.get(name)
        if simple is not None:
            return simple
        if name in _DATE_KEYS:
            return DateKey(*_DATE_KEYS[name], self.date())
        if name in ("FROM", "TO", "CC", "BCC", "SUBJECT"):
            return HeaderKey(name.lower(), self.string())
        if name == "HEADER":
            field = self.string().strip().lower()
            return HeaderKey("header:" + field, self.string())
        if name in ("BODY", "TEXT"):
            return TextKey(name.lower(), self.string())
        if name in ("KEYWORD", "UNKEYWORD"):
            flag = self.atom()
            if flag.lower() == "\\recent":
                return Recent() if name == "KEYWORD" else Not(Recent())
            column = flag_column(flag)
            if column is not None:
                return Flag(column, name == "KEYWORD")
            return Keyword(flag, name == "KEYWORD")
        if name in ("LARGER", "SMALLER"):
            return Size(name.lower(), self.number())
        if name in ("EMAILID", "THREADID"):
            value = _text(self.next(), None)
            if not objectid.valid(value):
                raise SearchSyntaxError(f"Bad {name}")
            return ObjectId(name.lower(), value)
        if name == "NOT":
            return Not(self.nested())
        if name == "OR":
            return Or(self.nested(), self.nested())
        if name == "UID":
            return Sequence_(_sequence(self.atom()), True)
        if name == "MODSEQ":
            # RFC 7162 3.1.5: MODSEQ [entry-name entry-type-req] mod-sequence-valzer;
            # per-flag entries are not kept apart, so the message's MODSEQ answers for all.
            if not self.done() and isinstance(self.tokens[self.pos], bytes):
                self.next()
                kind = self.atom().lower()
                if kind not in ("priv", "shared", "all"):
                    raise SearchSyntaxError("Bad MODSEQ entry type")
            return Modseq(self.number())
        if _SEQUENCE.match(token):
            return Sequence_(_sequence(token), False)
        raise SearchSyntaxError(f"Unknown search key {token}")


def _sequence(text: str) -> SequenceSet:
    try:
        return parse_sequence_set(text)
    except ParseFailure as exc:
        raise SearchSyntaxError(str(exc)) from exc


_SIMPLE_KEYS = {
    "ALL": All(),
    "SAVEDATESUPPORTED": All(),  # RFC 8514 4: every mailbox keeps save dates
    # ANSWERED, UNANSWERED, DELETED, UNDELETED...: one pair per system flag.
    **{flag.name: Flag(flag.column, True) for flag in SYSTEM_FLAGS},
    **{"UN" + flag.name: Flag(flag.column, False) for flag in SYSTEM_FLAGS},
    "RECENT": Recent(),
    # RFC 3501 6.4.4: NEW is RECENT UNSEEN; OLD is NOT RECENT.
    "NEW": And((Recent(), Flag(SystemFlag.SEEN.column, False))),
    "OLD": Not(Recent()),
}
_DATE_KEYS = {
    "BEFORE": ("internal", "before"),
    "ON": ("internal", "on"),
    "SINCE": ("internal", "since"),
    "SENTBEFORE": ("sent", "before"),
    "SENTON": ("sent", "on"),
    "SENTSINCE": ("sent", "since"),
    "SAVEDBEFORE": ("saved", "before"),  # RFC 8514 4
    "SAVEDON": ("saved", "on"),
    "SAVEDSINCE": ("saved", "since"),
}


def _any_key(key: object, test: Callable[[object], bool]) -> bool:
    """True when `test` holds for a leaf key anywhere in the tree (NOT, OR, AND walked)."""
    if isinstance(key, Not):
        return _any_key(key.key, test)
    if isinstance(key, Or):
        return _any_key(key.left, test) or _any_key(key.right, test)
    if isinstance(key, And):
        return any(_any_key(k, test) for k in key.keys)
    return test(key)


def uses_modseq(key: object) -> bool:
    """True when the keys contain MODSEQ: the response then carries (MODSEQ n) (RFC 7162
    3.1.5)."""
    return _any_key(key, lambda leaf: isinstance(leaf, Modseq))


def uses_sequence_numbers(key: object) -> bool:
    """True when the keys name messages by sequence number (a bare sequence set, not UID
    nor "$"): refused once UIDONLY is enabled (RFC 9586 3)."""
    return _any_key(
        key, lambda leaf: isinstance(leaf, Sequence_) and not leaf.uid and not leaf.set.saved
    )


def uses_saved(key: object) -> bool:
    """True when the keys refer to the saved result "$" (RFC 5182)."""
    return _any_key(key, lambda leaf: isinstance(leaf, Sequence_) and leaf.set.saved)


# --- Evaluation --------------------------------------------------------------------------


_fold = fulltext.fold


class _Message:
    """One candidate row, with its bytes and decoded texts loaded on first use."""

    __slots__ = ("row", "_raw", "_parsed", "_body", "_tree")

    def __init__(self, row: dict):
        self.row = row
        self._raw: bytes | None = None
        self._parsed = None
        self._body: str | None = None
        self._tree = None

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            try:
                self._raw = selectors.blob_read(self.row["blob__name"])
            except OSError:
                self._raw = b""  # a missing blob matches no content key
        return self._raw

    def fields(self) -> list[tuple[str, str]]:
        """(lower-case name, value as text) of each header field, in order."""
        if self._parsed is None:
            self._parsed = fulltext.header_fields(self.raw)
        return self._parsed

    def header_values(self, name: str) -> list[str]:
        name = name.lower()
        return [value for field, value in self.fields() if field == name]

    def field_text(self, field: str) -> str:
        """What FROM/TO/CC/BCC/SUBJECT/HEADER match: the decoded field, as the cache has it."""
        if field == "subject":
            values = self.header_values("Subject")
            return header_cache.decode_words(values[0] if values else None)
        if field in ("from", "to", "cc", "bcc"):
            return header_cache._addresses_display(self.header_values(field))[0]
        name = field.removeprefix("header:")
        return " ".join(header_cache.decode_words(v) for v in self.header_values(name))

    def has_field(self, name: str) -> bool:
        return bool(self.header_values(name))

    def body_text(self) -> str:
        if self._body is None:
            self._body = fulltext.body_text(self.raw)
        return self._body

    def header_text(self) -> str:
        return fulltext.header_text(self.fields())


@dataclass
class _Compiled:
    exact: Q | None
    pre: Q
    py: Callable[[_Message], bool]

    @property
    def sql(self) -> Q:
        return self.exact if self.exact is not None else self.pre


_NOTHING = Q(pk__in=[])
# Django drops an empty Q() from | and ~ (it is the identity), so "every row" must be a real
# condition for NOT ALL and OR with a Python-only key to mean what they say.
_EVERY = Q(uid__gte=0)


def _exact(q: Q, py: Callable[[_Message], bool]) -> _Compiled:
    return _Compiled(q, q, py)


def _ranges_q(ranges: list[tuple[int, int]]) -> _Compiled:
    """UIDs in sorted, disjoint (low, high) ranges."""
    if not ranges:
        return _exact(_NOTHING, lambda m: False)
    lows = [low for low, _high in ranges]

    def py(m: _Message) -> bool:
        uid = m.row["uid"]
        i = bisect.bisect_right(lows, uid) - 1
        return i >= 0 and uid <= ranges[i][1]

    if len(ranges) > MAX_SQL_RANGES:
        return _Compiled(None, Q(uid__gte=ranges[0][0], uid__lte=ranges[-1][1]), py)
    q = Q()
    for low, high in ranges:
        q |= Q(uid=low) if low == high else Q(uid__gte=low, uid__lte=high)
    return _exact(q, py)


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if out and low <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], high))
        else:
            out.append((low, high))
    return out


def uid_ranges(uids: Iterable[int]) -> list[tuple[int, int]]:
    return _merge((u, u) for u in uids)


class _Context:
    def __init__(
        self,
        seq_uids: Sequence[int],
        recent_uids: set[int],
        saved: Sequence[int],
        folder_id: int | None = None,
    ):
        self.seq_uids = seq_uids
        self.recent_uids = recent_uids
        self.saved = saved
        self.folder_id = folder_id
        self.needs_indexed = False  # rows need their fts_indexed annotation
        self._unindexed: bool | None = None

    def has_unindexed(self) -> bool:
        """Does the session's view hold a message without usable indexed text?"""
        if self._unindexed is None:
            self._unindexed = self.folder_id is None or fulltext.folder_has_unindexed(
                self.folder_id, self.seq_uids[-1] if self.seq_uids else 0
            )
        return self._unindexed

    def sequence(self, key: Sequence_) -> list[tuple[int, int]]:
        if key.set.saved:
            return uid_ranges(self.saved)
        seq = self.seq_uids
        if key.uid:
            largest = seq[-1] if seq else 0
            return _merge(key.set.resolve(largest))
        count = len(seq)
        out = []
        for low, high in key.set.resolve(count):
            low, high = max(low, 1), min(high, count)
            if low <= high:
                # consecutive message numbers are consecutive UIDs of the session's view
                out.append((seq[low - 1], seq[high - 1]))
        return _merge(out)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _compare(value: date, op: str, day: date) -> bool:
    if op == "before":
        return value < day
    if op == "on":
        return value == day
    return value >= day


def _sent_day(m: _Message) -> date | None:
    """The date of the Date: header in its own zone (RFC 9051 6.4.4 SENT* keys disregard
    time and timezone)."""
    values = m.header_values("Date")
    parsed = parsedate_tz(values[0]) if values else None
    if not parsed:
        return None
    try:
        return date(parsed[0], parsed[1], parsed[2])
    except (ValueError, TypeError):
        return None


def _compile_date(key: DateKey) -> _Compiled:
    start = _day_start(key.day)
    end = start + timedelta(days=1)
    if key.field == "saved":
        # RFC 8514 4: the save date's UTC day, as INTERNALDATE's; a row without one (older
        # than the column) is taken at its internal date
        def saved_q(column: str) -> Q:
            return {
                "before": Q(**{f"{column}__lt": start}),
                "on": Q(**{f"{column}__gte": start, f"{column}__lt": end}),
                "since": Q(**{f"{column}__gte": start}),
            }[key.op]

        q = (Q(saved_at__isnull=False) & saved_q("saved_at")) | (
            Q(saved_at__isnull=True) & saved_q("internal_date")
        )

        def saved_py(m: _Message) -> bool:
            when = m.row["saved_at"] or m.row["internal_date"]
            return _compare(when.astimezone(UTC).date(), key.op, key.day)

        return _exact(q, saved_py)
    if key.field == "internal":
        # INTERNALDATE is kept (and shown) in UTC, so its day is the UTC day.
        column = "internal_date"
        q = {
            "before": Q(internal_date__lt=start),
            "on": Q(internal_date__gte=start, internal_date__lt=end),
            "since": Q(internal_date__gte=start),
        }[key.op]

        def py(m: _Message) -> bool:
            return _compare(m.row[column].astimezone(UTC).date(), key.op, key.day)

        return _exact(q, py)
    band = SENT_DATE_BAND
    pre = {
        "before": Q(sent_date__lt=start + band),
        "on": Q(sent_date__gte=start - band, sent_date__lt=end + band),
        "since": Q(sent_date__gte=start - band),
    }[key.op]

    def sent_py(m: _Message) -> bool:
        sent = m.row["sent_date"]
        if sent is None:
            return False
        # Far from the day's edges the UTC time decides; near them the header's own zone.
        if key.op == "before" and sent < start - band:
            return True
        if key.op == "since" and sent >= end + band:
            return True
        if key.op == "before" and sent >= start + band:
            return False
        if key.op == "since" and sent < start - band:
            return False
        if key.op == "on" and not (start - band <= sent < end + band):
            return False
        day = _sent_day(m)
        return day is not None and _compare(day, key.op, key.day)

    return _Compiled(None, pre, sent_py)


def _cacheable(needle: str) -> bool:
    # SQL LIKE folds ASCII case only (SQLite); other needles are matched in Python.
    return needle.isascii()


# The characters whose case folding holds an ASCII letter ("ß" -> "ss", "ﬁ" -> "fi", the
# Kelvin sign -> "k", "İ" -> "i" + U+0307): a text holding one may match an ASCII needle
# that SQL's LIKE does not find in it. All of Unicode has these 19 (a test recomputes them).
FOLDS_TO_ASCII = "ßİŉſǰẖẗẘẙẚẞ\u212aﬀﬁﬂﬃﬄﬅﬆ"


class _HoldsAnyOf(Func):
    """True when a text column holds one of `chars` (GLOB on SQLite, ~ on PostgreSQL; no
    narrowing elsewhere)."""

    output_field = BooleanField()

    def __init__(self, column: str, chars: str):
        super().__init__(F(column))
        self.chars = chars

    def as_sql(self, compiler, connection, **extra):
        column_sql, params = compiler.compile(self.get_source_expressions()[0])
        if connection.vendor == "postgresql":
            return f"({column_sql} ~ %s)", [*params, f"[{self.chars}]"]
        if connection.vendor == "sqlite":
            return f"({column_sql} GLOB %s)", [*params, f"*[{self.chars}]*"]
        return "(1 = 1)", []


def _cached_pre(column: str, limit: int, needle: str) -> Q:
    """A superset, in SQL, of the rows whose cached `column` holds the folded ASCII `needle`
    after _fold: each of its words appears as such (white space runs fold to one space),
    or the text holds a character that folds to ASCII, or it was too long to cache whole."""
    words = Q()
    for word in needle.split():
        words &= Q(**{f"{column}__icontains": word})
    return words | Q(_HoldsAnyOf(column, FOLDS_TO_ASCII)) | Q(**{f"{column}_len__gte": limit})


def _compile_header(key: HeaderKey) -> _Compiled:
    needle = _fold(key.needle)
    cached = CACHED_FIELDS.get(key.field)
    if cached is not None:
        column, limit = cached

        def cached_py(m: _Message) -> bool:
            value = m.row[column]
            if len(value) >= limit:  # the cache may have cut it: use the bytes
                value = m.field_text(key.field)
            return needle in _fold(value)

        if needle and _cacheable(needle):
            # The cached field is the same decoded text the Python check reads; SQL narrows
            # to rows containing the needle, or too long to be cached whole.
            return _Compiled(None, _cached_pre(column, limit, needle), cached_py)
        return _Compiled(None, _EVERY, cached_py)
    if key.field.startswith("header:") and not key.needle:
        name = key.field.removeprefix("header:")
        # RFC 9051 6.4.4: an empty string matches every message that has the field.
        return _Compiled(None, _EVERY, lambda m: m.has_field(name))
    return _Compiled(None, _EVERY, lambda m: needle in _fold(m.field_text(key.field)))


def _compile_text(key: TextKey, ctx: _Context) -> _Compiled:
    """BODY and TEXT through the full-text index (mailboxes/fulltext.py): exact SQL when every
    message of the folder is indexed; otherwise the index for those that are and the bytes of
    the others (not indexed yet, or too long to index)."""
    needle, where = _fold(key.needle), key.where
    ids = fulltext.matching_ids(where, needle)
    found = set(ids)
    # A few matches: the UIDs of their messages, found through the blob index; many: the
    # subquery, which the database joins as it likes.
    if len(ids) <= 2000 and ctx.folder_id is not None:
        matched = Q(uid__in=fulltext.folder_uids(ctx.folder_id, ids))
    else:
        matched = Q(blob_id__in=fulltext.matching(where, needle))

    def indexed_match(m: _Message) -> bool:
        return m.row["blob_id"] in found

    def read_match(m: _Message) -> bool:
        if where == "body":
            return needle in m.body_text()
        return needle in m.header_text() or needle in m.body_text()

    if not ctx.has_unindexed():
        return _exact(matched, indexed_match)
    ctx.needs_indexed = True
    return _Compiled(
        None,
        matched | fulltext.unindexed_q(),
        lambda m: indexed_match(m) if m.row["fts_indexed"] else read_match(m),
    )


def _compile(key: object, ctx: _Context) -> _Compiled:
    if isinstance(key, All):
        return _exact(_EVERY, lambda m: True)
    if isinstance(key, Flag):
        column, value = key.column, key.value
        return _exact(Q(**{column: value}), lambda m: m.row[column] == value)
    if isinstance(key, Keyword):
        name = key.name
        q = (
            Q(keywords__iexact=name)
            | Q(keywords__istartswith=name + " ")
            | Q(keywords__iendswith=" " + name)
            | Q(keywords__icontains=" " + name + " ")
        )
        lowered = name.lower()

        def has_keyword(m: _Message) -> bool:
            return lowered in m.row["keywords"].lower().split()

        if key.present:
            return _exact(q, has_keyword)
        return _exact(~q, lambda m: not has_keyword(m))
    if isinstance(key, Recent):
        return _ranges_q(uid_ranges(ctx.recent_uids))
    if isinstance(key, DateKey):
        return _compile_date(key)
    if isinstance(key, Size):
        octets = key.octets
        if key.op == "larger":
            return _exact(Q(size__gt=octets), lambda m: m.row["size"] > octets)
        return _exact(Q(size__lt=octets), lambda m: m.row["size"] < octets)
    if isinstance(key, ObjectId):
        wanted = key.value
        if key.kind == "emailid":
            blob_id = objectid.parse_email_id(wanted)
            if blob_id is None:
                return _exact(_NOTHING, lambda m: False)
            return _exact(Q(blob_id=blob_id), lambda m: m.row["blob_id"] == blob_id)
        # THREADID is a digest of thread_key: compared row by row (thread_key is indexed,
        # but the digest is not in the database)
        return _Compiled(
            None, ~Q(thread_key=""), lambda m: objectid.thread_id(m.row["thread_key"]) == wanted
        )
    if isinstance(key, Modseq):
        value = key.value
        return _exact(Q(modseq__gte=value), lambda m: m.row["modseq"] >= value)
    if isinstance(key, Sequence_):
        return _ranges_q(ctx.sequence(key))
    if isinstance(key, HeaderKey):
        return _compile_header(key)
    if isinstance(key, TextKey):
        return _compile_text(key, ctx)
    if isinstance(key, Not):
        inner = _compile(key.key, ctx)
        if inner.exact is not None:
            return _exact(~inner.exact, lambda m: not inner.py(m))
        return _Compiled(None, _EVERY, lambda m: not inner.py(m))
    if isinstance(key, Or):
        left, right = _compile(key.left, ctx), _compile(key.right, ctx)
        if left.exact is not None and right.exact is not None:
            return _exact(left.exact | right.exact, lambda m: left.py(m) or right.py(m))
        return _Compiled(None, left.sql | right.sql, lambda m: left.py(m) or right.py(m))
    if isinstance(key, And):
        parts = [_compile(k, ctx) for k in key.keys]
        q = Q()
        for part in parts:
            q &= part.sql
        if all(part.exact is not None for part in parts):
            return _exact(q, lambda m: all(part.py(m) for part in parts))
        return _Compiled(None, q, lambda m: all(part.py(m) for part in parts))
    raise SearchSyntaxError(f"Unknown key {key!r}")


ROW_FIELDS = (
    "uid",
    "modseq",
    "size",
    "internal_date",
    "sent_date",
    *FLAG_COLUMNS,
    "keywords",
    "subject",
    "from_display",
    "to_display",
    "cc_display",
    "blob_id",
    "blob__name",
    "thread_key",
    "saved_at",
)


@dataclass
class SearchResult:
    uids: list[int]
    highest_modseq: int | None  # of the matching messages, when asked for (RFC 7162 3.1.5)
    modseqs: list[int] | None = None  # each match's MODSEQ, parallel to uids, when asked for


def search_full(
    folder_id: int,
    key: object,
    *,
    seq_uids: Sequence[int],
    recent_uids: set[int] = frozenset(),
    saved_uids: Sequence[int] = (),
    want_modseq: bool = False,
) -> SearchResult:
    """The UIDs (ascending) of the session's messages that match the key tree."""
    if not seq_uids:
        return SearchResult([], None)
    ctx = _Context(seq_uids, set(recent_uids), saved_uids, folder_id)
    compiled = _compile(key, ctx)
    queryset = selectors.messages_to_search(folder_id, max_uid=seq_uids[-1])
    fields = ROW_FIELDS
    if ctx.needs_indexed:
        queryset = queryset.annotate(fts_indexed=fulltext.indexed())
        fields = (*ROW_FIELDS, "fts_indexed")
    queryset = queryset.alias(
        **{f"{column}_len": Length(column) for column, _limit in CACHED_FIELDS.values()}
    )
    view = set(seq_uids)
    matches: list[tuple[int, int]] = []
    if compiled.exact is not None and not want_modseq:
        found = queryset.filter(compiled.exact).order_by("uid").values_list("uid", flat=True)
        return SearchResult([uid for uid in found.iterator(chunk_size=5000) if uid in view], None)
    if compiled.exact is not None:
        rows = queryset.filter(compiled.exact).order_by("uid").values_list("uid", "modseq")
        matches = [(uid, modseq) for uid, modseq in rows.iterator(chunk_size=5000) if uid in view]
    else:
        rows = queryset.filter(compiled.pre).order_by("uid").values(*fields)
        for row in rows.iterator(chunk_size=2000):
            if row["uid"] in view and compiled.py(_Message(row)):
                matches.append((row["uid"], row["modseq"]))
    if not want_modseq:
        return SearchResult([uid for uid, _modseq in matches], None)
    highest = max((modseq for _uid, modseq in matches), default=None)
    return SearchResult(
        [uid for uid, _modseq in matches], highest, [modseq for _uid, modseq in matches]
    )


def search(
    folder_id: int,
    key: object,
    *,
    seq_uids: Sequence[int],
    recent_uids: set[int] = frozenset(),
    saved_uids: Sequence[int] = (),
) -> list[int]:
    return search_full(
        folder_id, key, seq_uids=seq_uids, recent_uids=recent_uids, saved_uids=saved_uids
    ).uids


# --- Responses ---------------------------------------------------------------------------


def sequence_set_text(numbers: Iterable[int]) -> str:
    """Ascending numbers as a compact sequence set: 1:3,7,9:10."""
    return ",".join(
        str(low) if low == high else f"{low}:{high}" for low, high in uid_ranges(numbers)
    )


def search_response(numbers: Sequence[int], modseq: int | None = None) -> bytes:
    """`* SEARCH n n n` (RFC 9051 7.3.4 as RFC 3501 7.2.5), with (MODSEQ n) of RFC 7162."""
    out = b"* SEARCH"
    if numbers:
        out += b" " + b" ".join(b"%d" % n for n in numbers)
        if modseq is not None:
            out += b" (MODSEQ %d)" % modseq
    return out + b"\r\n"


def esearch_response(
    tag: str,
    numbers: Sequence[int],
    returns: Sequence[str],
    *,
    uid: bool,
    modseqs: Sequence[int] | None = None,
    modseq: int | None = None,
) -> bytes:
    """`* ESEARCH (TAG "t") [UID] MIN n MAX n COUNT n ALL set [MODSEQ n]` (RFC 4731 3.1).

    An empty RETURN () means ALL. MIN, MAX and ALL are left out when nothing matched.
    modseqs (parallel to numbers) when the keys held MODSEQ: RFC 7162 3.1.5 answers the
    highest MODSEQ of the messages returned, so with only MIN/MAX just of those. (modseq,
    the highest of all matches, is the older form, used when modseqs is not given.)
    """
    options = {r.upper() for r in returns} or {"ALL"}
    if options == {"SAVE"}:
        options = set()
    out = b'* ESEARCH (TAG "' + tag.encode("ascii", "replace") + b'")'
    if uid:
        out += b" UID"
    if not numbers or not options:
        modseq = None
    if modseqs is not None and numbers:
        pairs = sorted(zip(numbers, modseqs))
        if options & {"ALL", "COUNT"}:
            modseq = max(m for _n, m in pairs)
        elif options & {"MIN", "MAX"}:
            chosen = ([pairs[0]] if "MIN" in options else []) + (
                [pairs[-1]] if "MAX" in options else []
            )
            modseq = max(m for _n, m in chosen)
    numbers = sorted(numbers)
    if numbers:
        if "MIN" in options:
            out += b" MIN %d" % numbers[0]
        if "MAX" in options:
            out += b" MAX %d" % numbers[-1]
    if "COUNT" in options:
        out += b" COUNT %d" % len(numbers)
    if numbers and "ALL" in options:
        out += b" ALL " + sequence_set_text(numbers).encode("ascii")
    if modseq is not None:
        out += b" MODSEQ %d" % modseq
    return out + b"\r\n"


def esearch_sends_response(returns: Sequence[str]) -> bool:
    """RFC 5182 2.4: RETURN (SAVE) alone gives no ESEARCH response."""
    return {r.upper() for r in returns} != {"SAVE"}


def saved_result(uids: Sequence[int], returns: Sequence[str]) -> list[int] | None:
    """What SAVE stores as "$" (RFC 5182 2.4): everything, or just MIN and/or MAX when they
    are the only other options; None when SAVE was not asked for."""
    options = {r.upper() for r in returns}
    if "SAVE" not in options:
        return None
    uids = sorted(uids)
    if not uids:
        return []
    other = options - {"SAVE"}
    if other and other <= {"MIN", "MAX"}:
        picked = set()
        if "MIN" in other:
            picked.add(uids[0])
        if "MAX" in other:
            picked.add(uids[-1])
        return sorted(picked)
    return uids
