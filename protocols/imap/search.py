"""SEARCH: search keys into a key tree (RFC 3501 6.4.4, RFC 9051 6.4.4, RFC 7162 MODSEQ), and
the key tree evaluated against a folder.

The tree is the store's criteria tree (mailboxes/search.py, which the webmail's search uses
too, and which compiles it to SQL plus an exact Python check) with three leaves of IMAP's own:
message sequence sets (and UID sets, "$"), \\Recent and OBJECTID's EMAILID/THREADID. Before
evaluation these become the store's UID ranges, blob and thread criteria for the session's
view of the folder.
"""

from __future__ import annotations

import bisect
import codecs
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from mailboxes import search as store_search
from mailboxes.flags import SYSTEM as SYSTEM_FLAGS
from mailboxes.flags import SystemFlag
from mailboxes.flags import column as flag_column
from mailboxes.search import (
    FOLDS_TO_ASCII,
    All,
    And,
    DateKey,
    Flag,
    HeaderKey,
    Keyword,
    Modseq,
    Not,
    Or,
    Size,
    TextKey,
)
from protocols.imap import objectid, untagged
from protocols.imap.parser import (
    ParseFailure,
    SequenceSet,
    parse_search_keys,
    parse_sequence_set,
)

__all__ = [  # the store's criteria, as IMAP's key tree names them
    "FOLDS_TO_ASCII",
    "All",
    "And",
    "DateKey",
    "Flag",
    "HeaderKey",
    "Keyword",
    "Modseq",
    "Not",
    "Or",
    "Size",
    "TextKey",
]

# Advertised in BADCHARSET; any charset Python can decode is accepted (aliases too: utf8).
SUPPORTED_CHARSETS = ("US-ASCII", "UTF-8")
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")

# NOT, OR and parenthesized lists nested deeper than this are refused with BAD: the key tree
# is built and evaluated recursively (5,000 NOTs were a RecursionError, NO [SERVERBUG]).
MAX_KEY_DEPTH = 100


class SearchSyntaxError(ValueError):
    """Keys the grammar does not allow: the engine answers BAD."""


class BadCharset(Exception):
    """An unknown CHARSET: NO [BADCHARSET (US-ASCII UTF-8)] (RFC 9051 6.4.4)."""

    code = "BADCHARSET (" + " ".join(SUPPORTED_CHARSETS) + ")"


# --- IMAP's own leaves of the key tree (the rest is mailboxes/search.py's) -------------


@dataclass(frozen=True)
class Recent:
    pass


@dataclass(frozen=True)
class ObjectId:
    """EMAILID / THREADID (RFC 8474 6)."""

    kind: str  # "emailid" "threadid"
    value: str


@dataclass(frozen=True)
class Sequence_:
    set: SequenceSet
    uid: bool


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

# Candidate rows as the store evaluates them (tests read their texts).
_Message = store_search.Candidate


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
    """The session's view: what sequence numbers, \\Recent and "$" mean."""

    def __init__(self, seq_uids: Sequence[int], recent_uids: set[int], saved: Sequence[int]):
        self.seq_uids = seq_uids
        self.recent_uids = recent_uids
        self.saved = saved

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


def _to_store(key: object, ctx: _Context) -> object:
    """The key tree with IMAP's own leaves made the store's criteria."""
    if isinstance(key, Sequence_):
        return store_search.Uids(tuple(ctx.sequence(key)))
    if isinstance(key, Recent):
        return store_search.Uids(tuple(uid_ranges(ctx.recent_uids)))
    if isinstance(key, ObjectId):
        if key.kind == "emailid":
            blob_id = objectid.parse_email_id(key.value)
            if blob_id is None:
                return store_search.Uids(())
            return store_search.BlobIs(blob_id)
        wanted = key.value
        return store_search.ThreadIs(lambda thread_key: objectid.thread_id(thread_key) == wanted)
    if isinstance(key, Not):
        return Not(_to_store(key.key, ctx))
    if isinstance(key, Or):
        return Or(_to_store(key.left, ctx), _to_store(key.right, ctx))
    if isinstance(key, And):
        return And(tuple(_to_store(k, ctx) for k in key.keys))
    return key


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
    only_uids: Iterable[int] | None = None,
    reader: int | None = None,
) -> SearchResult:
    """The UIDs (ascending) of the session's messages that match the key tree; with
    only_uids, of those messages alone (an update context re-checking what changed)."""
    if not seq_uids:
        return SearchResult([], None)
    criteria = _to_store(key, _Context(seq_uids, set(recent_uids), saved_uids))
    if not want_modseq and only_uids is None:
        uids = store_search.folder_search_uids(
            folder_id, criteria, max_uid=seq_uids[-1], view=seq_uids, reader=reader
        )
        return SearchResult(uids, None)
    rows = store_search.folder_search(
        folder_id,
        criteria,
        max_uid=seq_uids[-1],
        view=seq_uids if only_uids is None else _in_view(only_uids, seq_uids),
        # a reader of another's folder: its own \\Seen changes count (RFC 7162 3.1.5)
        fields=("uid", "modseq" if reader is None else "reader_modseq")
        if want_modseq
        else ("uid",),
        only_uids=only_uids,
        reader=reader,
    )
    if not want_modseq:
        return SearchResult([row[0] for row in rows], None)
    highest = max((modseq for _uid, modseq in rows), default=None)
    return SearchResult([uid for uid, _modseq in rows], highest, [m for _uid, m in rows])


def _in_view(uids: Iterable[int], seq_uids: Sequence[int]) -> set[int]:
    """Those of `uids` in the ascending view, without a set of the whole view."""
    out = set()
    for uid in uids:
        i = bisect.bisect_left(seq_uids, uid)
        if i < len(seq_uids) and seq_uids[i] == uid:
            out.add(uid)
    return out


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
    return untagged.wire([untagged.Search(numbers, modseq)])


def partial_slice(numbers: Sequence[int], low: int, high: int) -> list[int]:
    """The numbers at 1-based positions low..high (RFC 5267 4.4); negative positions count
    from the end (RFC 9394 3.1: -1 is the last)."""
    if low < 0:
        count = len(numbers)
        first, last = count + high + 1, count + low + 1  # -1:-100 -> the last hundred
        return list(numbers[max(first, 1) - 1 : max(last, 0)])
    return list(numbers[low - 1 : high])


def esearch_response(*args, **kwargs) -> bytes:
    """esearch's response (same arguments) as the client reads it."""
    return untagged.wire([esearch(*args, **kwargs)])


def esearch(
    tag: str,
    numbers: Sequence[int],
    returns: Sequence[str],
    *,
    uid: bool,
    modseqs: Sequence[int] | None = None,
    modseq: int | None = None,
    partial: tuple[int, int] | None = None,
) -> untagged.ESearch:
    """`* ESEARCH (TAG "t") [UID] MIN n MAX n COUNT n ALL set [MODSEQ n]` (RFC 4731 3.1).

    An empty RETURN () means ALL. MIN, MAX and ALL are left out when nothing matched.
    modseqs (parallel to numbers) when the keys held MODSEQ: RFC 7162 3.1.5 answers the
    highest MODSEQ of the messages returned, so with only MIN/MAX just of those. (modseq,
    the highest of all matches, is the older form, used when modseqs is not given.)
    """
    options = {r.upper() for r in returns} or ({"ALL"} if partial is None else set())
    # SAVE and UPDATE (RFC 5267 4.3: the correlator alone, as Dovecot) return no data
    options -= {"SAVE", "UPDATE"}
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
    data: list[tuple[str, object]] = []
    if numbers:
        if "MIN" in options:
            data.append(("MIN", numbers[0]))
        if "MAX" in options:
            data.append(("MAX", numbers[-1]))
    if "COUNT" in options:
        data.append(("COUNT", len(numbers)))
    if numbers and "ALL" in options:
        data.append(("ALL", sequence_set_text(numbers)))
    if partial is not None:  # RFC 5267 4.4, RFC 9394 3.1
        low, high = partial
        chosen = partial_slice(numbers, low, high)
        data.append(("PARTIAL", f"({low}:{high} {sequence_set_text(chosen) if chosen else 'NIL'})"))
    if modseq is not None:
        data.append(("MODSEQ", modseq))
    return untagged.ESearch(tag, uid, tuple(data))


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
