"""Searching messages: one criteria tree, compiled to a query plus a residual Python check,
for IMAP SEARCH (protocols/imap/search.py, which parses its keys into this tree) and the
webmail's search page (webmail/search.py) alike.

Every criterion compiles to
- `exact`: a Django Q on Message giving exactly the criterion's messages, when it is about
  columns (flags, dates, size, uid, modseq);
- `pre`: a Q that is a superset of the criterion's messages otherwise (cached header fields,
  dates, the full-text index when some messages are not indexed yet);
- `py`: a Python predicate that is always exact, used on the rows the SQL lets through. It
  reads the message's bytes only when the criterion needs them (body or header text of a
  message not indexed yet, BCC, HEADER, a Date: header near the day boundary, a header field
  too long to be cached whole).

So flag/date/uid/size searches on a 100k-message folder are one SQL query, and header or body
searches read blobs only for the candidate rows.

What the text criteria match (RFC 9051 6.4.4: substrings, case-insensitively; here with
Unicode case folding and white space runs as one): "from", "to", "cc", "bcc" the decoded
addresses as mailboxes.headers displays them ("Name <a@b>", group names too); "subject" the
decoded subject; "header:<name>" the decoded field (all occurrences); body text the text/*
parts with their transfer encoding and charset undone (what mailboxes/fulltext.py indexes);
"text" the header and the body. Inflected (the webmail's alone, beside "body"): body text
holding another inflection of a word, by its English Snowball stem.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.utils import parsedate_tz
from functools import cached_property

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import BooleanField, F, Func, IntegerField, Q, QuerySet

from mailboxes import ascending, fulltext, selectors
from mailboxes import headers as header_cache
from mailboxes.flags import COLUMNS as FLAG_COLUMNS
from mailboxes.models import Message
from mailhost import plainsql

# Header fields cached on Message, with the length at which the cache truncates them.
CACHED_FIELDS = {
    "from": ("from_display", 2000),
    "to": ("to_display", 4000),
    "cc": ("cc_display", 4000),
    "subject": ("subject", 2000),
}
# Cached columns whose text is stored with white space runs as one space already
# (headers.decode_words), as _fold leaves it: a needle of several words is looked for whole.
# (The display columns' addresses keep what a quoted local part holds.)
SPACED_COLUMNS = {"subject"}
# A Date: header's own day may differ from its UTC day by this much (RFC 5322 zones).
SENT_DATE_BAND = timedelta(hours=24)
# More ranges than this in a UID set are matched in Python (SQL expression depth).
MAX_SQL_RANGES = 100
# Above every UID (RFC 9051 2.3.1.1: 32 bits): a whole folder.
MAX_UID = 2**32
# Fewer full-text matches than this are looked up by id (the blob index finds them); more go
# to the database as a subquery, which it joins as it likes.
FEW_TEXT_MATCHES = 2000
UNINDEXED_LISTED = 2000  # more blobs waiting for the indexer than this: the rows say which


# --- The criteria tree -------------------------------------------------------------------


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
class DateKey:
    field: str  # "internal", "sent" (the Date: header's own day) or "saved"
    op: str  # "before" "on" "since"
    day: date


@dataclass(frozen=True)
class Size:
    op: str  # "larger" "smaller"
    octets: int


@dataclass(frozen=True)
class HeaderKey:
    field: str  # "from" "to" "cc" "bcc" "subject", or "header:" + a lower-case field name
    needle: str


@dataclass(frozen=True)
class TextKey:
    where: str  # "body" or "text" (header and body)
    needle: str


@dataclass(frozen=True)
class Inflected:
    """Body text holding another inflection of the needle, a word (its English Snowball stem):
    the webmail's search, beside TextKey's substrings (body_stemmed). Never IMAP's, whose
    BODY matches substrings alone (RFC 9051 6.4.4)."""

    needle: str


@dataclass(frozen=True)
class Uids:
    ranges: tuple[tuple[int, int], ...]  # sorted, disjoint (low, high)


@dataclass(frozen=True)
class Modseq:
    value: int  # at least this MODSEQ


@dataclass(frozen=True)
class BlobIs:
    blob_id: int  # the messages that are copies of this blob


@dataclass(frozen=True)
class ThreadIs:
    test: Callable[[str], bool]  # of Message.thread_key (never called with "")


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


# --- Evaluation --------------------------------------------------------------------------


_fold = fulltext.fold


class ReadBudgetSpent(Exception):
    """A row needed its bytes after the search's reading budget was spent."""


class _Context:
    """What one search knows beyond its criteria: where it runs and what it may read."""

    def __init__(
        self,
        *,
        folder_id: int | None = None,
        mailbox_id: int | None = None,
        max_uid: int = 0,
        read_limit: int | None = None,
        read_bytes: int | None = None,
        reader: int | None = None,
    ):
        self.folder_id = folder_id
        self.mailbox_id = mailbox_id  # a search of a whole mailbox (folder_id None)
        # A reader of another's shared folder: \Seen is its own (the scope's reader_seen)
        self.reader = reader
        self.max_uid = max_uid
        self.read_limit = read_limit
        self.read_bytes = read_bytes
        self.read = 0  # messages whose bytes (or their text) were needed
        self.bytes = 0
        self.incomplete = False  # a row was left unchecked: the budget was spent
        self.needs_indexed = False  # rows need their fts_indexed annotation
        self.raw: dict[object, bytes] = {}  # copies share a blob: read it once
        self.bodies: dict[object, str] = {}

    @cached_property
    def unindexed(self) -> set[int] | None:
        """The blobs of the scope without usable indexed text, as they were before the index
        was first asked (None: more than UNINDEXED_LISTED of them)."""
        return fulltext.unindexed_blobs(self.folder_id, self.max_uid, limit=UNINDEXED_LISTED)

    def charge(self, size: int) -> None:
        if (self.read_limit is not None and self.read >= self.read_limit) or (
            self.read_bytes is not None and self.bytes >= self.read_bytes
        ):
            raise ReadBudgetSpent
        self.read += 1
        self.bytes += size


class Candidate:
    """One candidate row, with its bytes and decoded texts loaded on first use (once per blob
    in a search: copies share one), charged to the search's reading budget."""

    __slots__ = ("row", "ctx", "_raw", "_parsed", "_body", "_charged")

    def __init__(self, row: dict, ctx: _Context | None = None):
        self.row = row
        self.ctx = ctx
        self._raw: bytes | None = None
        self._parsed = None
        self._body: str | None = None
        self._charged = ctx is None

    def _blob_key(self) -> object:
        return self.row.get("blob_id", self.row["blob__name"])

    def _charge(self) -> None:
        if not self._charged:
            self.ctx.charge(self.row.get("size", 0))
            self._charged = True

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._charge()
            cache = self.ctx.raw if self.ctx is not None else {}
            key = self._blob_key()
            if key not in cache:
                try:
                    cache[key] = selectors.blob_read(self.row["blob__name"])
                except OSError:
                    cache[key] = b""  # a missing blob matches no content criterion
            self._raw = cache[key]
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
        """What a HeaderKey matches: the decoded field, as the cache has it."""
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
            self._charge()
            cache = self.ctx.bodies if self.ctx is not None else {}
            key = self._blob_key()
            if key not in cache:
                cache[key] = fulltext.body_text(self.raw)
            self._body = cache[key]
        return self._body

    def header_text(self) -> str:
        return fulltext.header_text(self.fields())


@dataclass
class _Compiled:
    exact: Q | None
    pre: Q
    py: Callable[[Candidate], bool]

    @property
    def sql(self) -> Q:
        return self.exact if self.exact is not None else self.pre


_NOTHING = Q(pk__in=[])
# Django drops an empty Q() from | and ~ (it is the identity), so "every row" must be a real
# condition for NOT ALL and OR with a Python-only key to mean what they say.
_EVERY = Q(uid__gte=0)


def _exact(q: Q, py: Callable[[Candidate], bool]) -> _Compiled:
    return _Compiled(q, q, py)


def _ranges_q(ranges: list[tuple[int, int]]) -> _Compiled:
    """UIDs in sorted, disjoint (low, high) ranges."""
    if not ranges:
        return _exact(_NOTHING, lambda m: False)
    lows = [low for low, _high in ranges]

    def py(m: Candidate) -> bool:
        uid = m.row["uid"]
        i = bisect.bisect_right(lows, uid) - 1
        return i >= 0 and uid <= ranges[i][1]

    if len(ranges) > MAX_SQL_RANGES:
        return _Compiled(None, Q(uid__gte=ranges[0][0], uid__lte=ranges[-1][1]), py)
    q = Q()
    for low, high in ranges:
        q |= Q(uid=low) if low == high else Q(uid__gte=low, uid__lte=high)
    return _exact(q, py)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _compare(value: date, op: str, day: date) -> bool:
    if op == "before":
        return value < day
    if op == "on":
        return value == day
    return value >= day


def _sent_day(m: Candidate) -> date | None:
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

        def saved_py(m: Candidate) -> bool:
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

        def py(m: Candidate) -> bool:
            return _compare(m.row[column].astimezone(UTC).date(), key.op, key.day)

        return _exact(q, py)
    band = SENT_DATE_BAND
    pre = {
        "before": Q(sent_date__lt=start + band),
        "on": Q(sent_date__gte=start - band, sent_date__lt=end + band),
        "since": Q(sent_date__gte=start - band),
    }[key.op]

    def sent_py(m: Candidate) -> bool:
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
            # the chars are not ASCII: a text as long in octets as in characters (most are)
            # is passed over without the GLOB, which costs several times more
            return (
                f"(length(CAST({column_sql} AS BLOB)) > length({column_sql})"
                f" AND {column_sql} GLOB %s)",
                [*params, *params, *params, f"*[{self.chars}]*"],
            )
        return "(1 = 1)", []


class _Octets(Func):
    """A text column's length in octets: at least its length in characters, and cheaper
    (SQLite counts the characters of a text; its octets are known)."""

    def as_sql(self, compiler, connection, **extra):
        column_sql, params = compiler.compile(self.get_source_expressions()[0])
        if connection.vendor == "sqlite":
            return f"length(CAST({column_sql} AS BLOB))", params
        if connection.vendor == "postgresql":
            return f"octet_length({column_sql})", params
        return f"length({column_sql})", params


def _cached_pre(column: str, limit: int, needle: str) -> Q:
    """A superset, in SQL, of the rows whose cached `column` holds the folded ASCII `needle`
    after _fold: the needle appears as such (in a column of SPACED_COLUMNS; elsewhere each of
    its words, white space runs folding to one space), or the text holds a character that
    folds to ASCII, or it was too long to cache whole."""
    if column in SPACED_COLUMNS:
        # One LIKE, not one per word: a subject search for "message 42" at 100k messages
        # handed Python the 3,970 rows holding both words for the 1,111 that hold it.
        words = Q(**{f"{column}__icontains": needle})
    else:
        words = Q()
        for word in needle.split():
            words &= Q(**{f"{column}__icontains": word})
    return words | Q(_HoldsAnyOf(column, FOLDS_TO_ASCII)) | Q(**{f"{column}_len__gte": limit})


def _compile_header(key: HeaderKey) -> _Compiled:
    needle = _fold(key.needle)
    cached = CACHED_FIELDS.get(key.field)
    if cached is not None:
        column, limit = cached

        def cached_py(m: Candidate) -> bool:
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


@dataclass(frozen=True)
class _IndexMatch:
    """How the full-text index answers a text criterion, and how a message it lacks is read."""

    ids: Callable[[int | None], list[int]]  # the matching blobs' ids, at most so many
    messages: Callable[[], Q]  # the folder's matching messages, many
    blobs: Callable[[], Q]  # the mailbox's, many
    read: Callable[[Candidate], bool]  # a message not indexed, from its text


def _compile_text(key: TextKey, ctx: _Context) -> _Compiled:
    """Body text through the full-text index (mailboxes/fulltext.py)."""
    needle, where = _fold(key.needle), key.where

    def read_match(m: Candidate) -> bool:
        if where == "body":
            return needle in m.body_text()
        return needle in m.header_text() or needle in m.body_text()

    return _compile_indexed(
        _IndexMatch(
            ids=lambda limit: fulltext.matching_ids(where, needle, limit=limit),
            messages=lambda: fulltext.matching_messages(where, needle),
            # the webmail's newest first over a mailbox: SQLite's plan is better on blob ids
            blobs=lambda: fulltext.matching_blobs(where, needle),
            read=read_match,
        ),
        ctx,
    )


def _compile_inflected(key: Inflected, ctx: _Context) -> _Compiled:
    """The words of the vocabulary that are other inflections of the needle, looked up in the
    words index (no text read); a message not indexed yet, its text's words stemmed."""
    needle = _fold(key.needle)
    if not fulltext.stemmable(needle):
        return _exact(_NOTHING, lambda m: False)
    stem_of = fulltext.stemmer().stemWord
    words = fulltext.inflections(needle)
    return _compile_indexed(
        _IndexMatch(
            ids=lambda limit: fulltext.holding_ids(words, limit=limit),
            messages=lambda: fulltext.holding_messages(words),
            blobs=lambda: fulltext.holding_blobs(words),
            read=lambda m: fulltext.holds_inflection(m.body_text(), needle, stem_of),
        ),
        ctx,
    )


def _compile_indexed(match: _IndexMatch, ctx: _Context) -> _Compiled:
    """A text criterion: exact SQL when every message of the scope is indexed; otherwise the
    index for those that are and the bytes of the others (not indexed yet, or too long to
    index)."""
    # Which messages lack indexed text, asked before the index: one the indexer reaches in
    # between is then read from its bytes rather than missed.
    unindexed = ctx.unindexed
    # The first FEW_TEXT_MATCHES + 1 matches tell a rare needle from a common one at a small
    # part of a common one's cost.
    ids = match.ids(FEW_TEXT_MATCHES + 1)
    if len(ids) <= FEW_TEXT_MATCHES:
        found: set[int] | None = set(ids)
        if ctx.folder_id is not None:  # the UIDs of their messages, found through the blob index
            matched = Q(uid__in=fulltext.folder_uids(ctx.folder_id, ids))
        elif ctx.mailbox_id is not None:
            # the mailbox's messages with them, through the blob index: asked for its newest
            # matches, SQLite walked every message of its folders by date instead
            matched = Q(pk__in=fulltext.mailbox_message_ids(ctx.mailbox_id, ids))
        else:
            matched = Q(blob_id__in=ids)
    else:
        # Many: the index query is part of the search's own, asked once; the ids themselves
        # only when a row must be checked in Python (a criterion SQL cannot decide).
        found = None
        matched = match.messages() if ctx.folder_id is not None else match.blobs()

    def indexed_match(m: Candidate) -> bool:
        nonlocal found
        if found is None:
            found = set(match.ids(None))
        return m.row["blob_id"] in found

    read_match = match.read
    if unindexed is not None:
        if not unindexed:
            return _exact(matched, indexed_match)
        return _Compiled(
            None,
            matched | Q(blob_id__in=unindexed),
            lambda m: read_match(m) if m.row["blob_id"] in unindexed else indexed_match(m),
        )
    # A backlog too long to list (a fresh import): the rows say whether they are indexed.
    ctx.needs_indexed = True
    return _Compiled(
        None,
        matched | fulltext.unindexed_q(),
        lambda m: indexed_match(m) if m.row["fts_indexed"] else read_match(m),
    )


def body_stemmed(needle: str) -> object:
    """The webmail's body criterion: the needle as a substring (IMAP's BODY) and, for a word,
    its other inflections too."""
    key = TextKey("body", needle)
    return Or(key, Inflected(needle)) if fulltext.stemmable(_fold(needle)) else key


def _compile(key: object, ctx: _Context) -> _Compiled:
    if isinstance(key, All):
        return _exact(_EVERY, lambda m: True)
    if isinstance(key, Flag):
        column, value = key.column, key.value
        if column == "seen" and ctx.reader is not None:
            column = "reader_seen"
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

        def has_keyword(m: Candidate) -> bool:
            return lowered in m.row["keywords"].lower().split()

        if key.present:
            return _exact(q, has_keyword)
        return _exact(~q, lambda m: not has_keyword(m))
    if isinstance(key, DateKey):
        return _compile_date(key)
    if isinstance(key, Size):
        octets = key.octets
        if key.op == "larger":
            return _exact(Q(size__gt=octets), lambda m: m.row["size"] > octets)
        return _exact(Q(size__lt=octets), lambda m: m.row["size"] < octets)
    if isinstance(key, BlobIs):
        blob_id = key.blob_id
        return _exact(Q(blob_id=blob_id), lambda m: m.row["blob_id"] == blob_id)
    if isinstance(key, ThreadIs):
        # compared row by row: what the test computes from thread_key is not in the database
        test = key.test
        return _Compiled(None, ~Q(thread_key=""), lambda m: test(m.row["thread_key"]))
    if isinstance(key, Modseq):
        value = key.value
        column = "modseq" if ctx.reader is None else "reader_modseq"
        return _exact(Q(**{f"{column}__gte": value}), lambda m: m.row[column] >= value)
    if isinstance(key, Uids):
        return _ranges_q(list(key.ranges))
    if isinstance(key, HeaderKey):
        return _compile_header(key)
    if isinstance(key, TextKey):
        return _compile_text(key, ctx)
    if isinstance(key, Inflected):
        return _compile_inflected(key, ctx)
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
    raise ValueError(f"Unknown search criterion {key!r}")


ROW_FIELDS = (
    "id",
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
class Found:
    rows: list[tuple]  # the asked-for fields of each match, in the asked-for order
    read: int = 0  # messages whose bytes (or their text) were read
    incomplete: bool = False  # rows left unchecked: the reading budget was spent


def _run(
    scope: QuerySet[Message],
    criteria: object,
    ctx: _Context,
    *,
    fields: Sequence[str],
    order: Sequence[str],
    view: Container[int] | None = None,
    limit: int | None = None,
) -> Found:
    compiled = _compile(criteria, ctx)
    scope = scope.alias(
        # a superset of the values the cache may have cut (at `limit` characters): Python
        # tells them apart from the row
        **{
            f"{column}_len": _Octets(F(column), output_field=IntegerField())
            for column, _limit in CACHED_FIELDS.values()
        }
    )
    found = Found([])
    if compiled.exact is not None:
        rows = scope.filter(compiled.exact).order_by(*order).values_list(*fields)
        if view is None and limit is not None:
            rows = rows[:limit]
        for row in _rows_of(rows, fields):
            if view is None or row[fields.index("uid")] in view:
                found.rows.append(row)
                if limit is not None and len(found.rows) >= limit:
                    break
        return found
    names = ROW_FIELDS if ctx.reader is None else (*ROW_FIELDS, "reader_seen", "reader_modseq")
    if ctx.needs_indexed:
        scope = scope.annotate(fts_indexed=fulltext.indexed())
        names = (*names, "fts_indexed")
    for row in scope.filter(compiled.pre).order_by(*order).values(*names).iterator(chunk_size=2000):
        if view is not None and row["uid"] not in view:
            continue
        full = limit is not None and len(found.rows) >= limit
        if full and not (ctx.read and ctx.read_limit is not None):
            break
        try:
            matched = compiled.py(Candidate(row, ctx))
        except ReadBudgetSpent:
            ctx.incomplete = True
            if full:
                break
            continue
        if matched and not full:
            found.rows.append(tuple(row[name] for name in fields))
    found.read, found.incomplete = ctx.read, ctx.incomplete
    return found


def _rows_of(rows: QuerySet, fields: Sequence[str]) -> Iterable[tuple]:
    """The rows of `rows` (values_list of `fields`): through a plain cursor when no field's
    value is converted on reading (UIDs, ids, MODSEQs), in chunks; else the ORM's iterator.
    At 100k messages a common needle's 44,624 UIDs took the ORM 30 ms of Python, and on
    PostgreSQL a server-side cursor, planned for its first rows."""
    names = {field.name: field for field in Message._meta.concrete_fields}
    columns = [(names.get(name), Message._meta.db_table) for name in fields]
    if any(field is None for field, _ in columns) or plainsql.converters_of(columns):
        yield from rows.iterator(chunk_size=5000)  # an annotation, or a converted value
        return
    try:
        sql, params = rows.query.sql_with_params()
    except EmptyResultSet:  # a condition no row meets (uid__in=[]): the ORM asks nothing
        return
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(5000):
            yield from chunk


def _text_alone(criteria: object, ctx: _Context) -> list[int] | None:
    """The UIDs of a folder's search for one text key alone (IMAP's SEARCH BODY word), every
    message indexed: from the index as one string of UIDs, not as a row each (on SQLite
    without walking the folder's rows; on PostgreSQL for a needle the words index answers).
    None otherwise, and the search runs as any other."""
    while isinstance(criteria, And) and len(criteria.keys) == 1:
        criteria = criteria.keys[0]
    if not isinstance(criteria, TextKey):
        return None
    if ctx.unindexed != set():  # asked before the index, as _compile_text does
        return None
    return fulltext.folder_matching_uids(
        ctx.folder_id, criteria.where, _fold(criteria.needle), ctx.max_uid, few=FEW_TEXT_MATCHES
    )


def folder_search(
    folder_id: int,
    criteria: object,
    *,
    max_uid: int,
    view: Container[int] | Sequence[int] | None = None,
    fields: Sequence[str] = ("uid",),
    only_uids: Iterable[int] | None = None,
    reader: int | None = None,
) -> list[tuple]:
    """The asked-for fields of the folder's messages (UID up to max_uid, and in `view` when
    given: a set, or the UIDs ascending) that match, in UID order; with only_uids, among
    those messages alone (IMAP's update contexts re-checking what changed). Exact: every
    message whose bytes a criterion needs is read. (The UIDs alone: folder_search_uids.)"""
    ctx = _Context(folder_id=folder_id, max_uid=max_uid, reader=reader)
    return _folder_rows(ctx, criteria, view, fields, only_uids)


def folder_search_uids(
    folder_id: int,
    criteria: object,
    *,
    max_uid: int,
    view: Container[int] | Sequence[int] | None = None,
    reader: int | None = None,
) -> list[int]:
    """folder_search's UIDs alone, as a list. A search for one text key alone takes them
    from the index as one string (_text_alone), not as rows (at 100k messages, a common
    needle's 44,624 UIDs spent 3 ms of Python on becoming rows and back)."""
    ctx = _Context(folder_id=folder_id, max_uid=max_uid, reader=reader)
    uids = _text_alone(criteria, ctx)
    if uids is not None:
        return _in_view(uids, view)
    return [row[0] for row in _folder_rows(ctx, criteria, view, ("uid",), None)]


def _in_view(uids: list[int], view: Container[int] | Sequence[int] | None) -> list[int]:
    """Those of the ascending UIDs in the view (a set, or the UIDs ascending)."""
    if view is None:
        return uids
    if isinstance(view, Sequence):
        return ascending.present(view, uids)
    return [uid for uid in uids if uid in view]


def _folder_rows(
    ctx: _Context,
    criteria: object,
    view: Container[int] | Sequence[int] | None,
    fields: Sequence[str],
    only_uids: Iterable[int] | None,
) -> list[tuple]:
    if isinstance(view, Sequence):
        view = set(view)
    scope = selectors.messages_to_search(ctx.folder_id, max_uid=ctx.max_uid, reader=ctx.reader)
    if only_uids is not None:
        scope = scope.filter(uid__in=list(only_uids))
    return _run(scope, criteria, ctx, fields=tuple(fields), order=("uid",), view=view).rows


def mailbox_search(
    mailbox_id: int,
    criteria: object,
    *,
    folder_id: int | None = None,
    limit: int,
    read_limit: int | None = None,
    read_bytes: int | None = None,
) -> tuple[list[Message], Found]:
    """The mailbox's (or one of its folders') messages that match, newest first, at most
    `limit`, their folder rows read with them. Reading is budgeted: once `read_limit`
    messages (or `read_bytes` octets) were read, rows that need their bytes are left out
    and the result says it is incomplete. A search that reads spends its budget even past
    `limit` matches, so that how far back it read does not depend on how many matched."""
    ctx = _Context(
        folder_id=folder_id,
        mailbox_id=mailbox_id,
        max_uid=MAX_UID,
        read_limit=read_limit,
        read_bytes=read_bytes,
    )
    scope = selectors.messages_to_search_in_mailbox(mailbox_id, folder_id=folder_id)
    found = _run(scope, criteria, ctx, fields=("id",), order=("-internal_date", "-id"), limit=limit)
    ids = [row[0] for row in found.rows]
    by_id = scope.in_bulk(ids)
    return [by_id[pk] for pk in ids if pk in by_id], found
