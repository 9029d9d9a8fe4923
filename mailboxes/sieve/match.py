"""Comparators (RFC 4790, RFC 5228 2.7.3) and match types: :is :contains :matches (RFC 5228
2.7.1), :count :value (RFC 5231) and :regex (draft-ietf-sieve-regex).

match() compares a list of values with a list of keys and returns None (no match) or the match
variables of the first pair that matched (RFC 5229 3.2: ${0} the whole value, ${1}... what
each wildcard or regex group matched).

Regex guard: :regex runs on the `regex` module (POSIX classes, POSIX leftmost-longest
matching like Pigeonhole's regcomp) with a timeout per search, so a catastrophic pattern
("(a|aa)+$") ends in a run-time error (implicit keep) instead of a stuck delivery; patterns
are at most MAX_REGEX_CHARS long and each value searched is cut to MAX_REGEX_SUBJECT.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

import regex

from mailboxes.sieve.errors import SieveRuntimeError

MAX_REGEX_CHARS = 1024
MAX_REGEX_SUBJECT = 64 * 1024
REGEX_TIMEOUT = 0.05  # seconds per search
# RFC 5228 strings hold line ends: "." matches them as in POSIX regcomp without REG_NEWLINE.
_REGEX_FLAGS = regex.POSIX | regex.DOTALL

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_LEADING_DIGITS = re.compile(r"[0-9]+")


def fold(comparator: str, value: str) -> str:
    return value.translate(_ASCII_LOWER) if comparator == "i;ascii-casemap" else value


def numeric(value: str) -> float:
    """RFC 4790 9.1.1: the number the leading digits spell, or positive infinity."""
    digits = _LEADING_DIGITS.match(value)
    return int(digits.group()) if digits else math.inf


def order(comparator: str, a: str, b: str) -> int:
    if comparator == "i;ascii-numeric":
        x, y = numeric(a), numeric(b)
    else:
        x, y = fold(comparator, a), fold(comparator, b)
    return (x > y) - (x < y)


_RELATIONS = {
    "gt": lambda o: o > 0,
    "ge": lambda o: o >= 0,
    "lt": lambda o: o < 0,
    "le": lambda o: o <= 0,
    "eq": lambda o: o == 0,
    "ne": lambda o: o != 0,
}


def match(
    values: list[str],
    keys: list[str],
    *,
    match_type: str = ":is",
    comparator: str = "i;ascii-casemap",
    relation: str = "eq",
    count: int | None = None,
) -> list[str] | None:
    """The match variables when one value matches one key, else None. For :count, `count`
    is the number of items counted (defaults to len(values))."""
    if match_type == ":count":
        number = str(len(values) if count is None else count)
        test = _RELATIONS[relation.lower()]
        for key in keys:
            if test(order(comparator, number, key)):
                return []
        return None
    for value in values:
        for key in keys:
            found = _one(value, key, match_type, comparator, relation)
            if found is not None:
                return found
    return None


def _one(value: str, key: str, match_type: str, comparator: str, relation: str):  # noqa: ANN202
    if match_type == ":is":
        return [] if order(comparator, value, key) == 0 else None
    if match_type == ":contains":
        return [] if fold(comparator, key) in fold(comparator, value) else None
    if match_type == ":matches":
        return glob(value, key, comparator)
    if match_type == ":value":
        return [] if _RELATIONS[relation.lower()](order(comparator, value, key)) else None
    if match_type == ":regex":
        return regex_search(value, key, comparator)
    raise ValueError(match_type)


# -- :matches ------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _glob_segments(pattern: str, casemap: bool) -> tuple[list, bool]:
    """The pattern cut at its stars: a compiled regex per segment ('?' a group), and
    whether the pattern holds a star at all."""
    segments: list[list[str]] = [[]]
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            segments[-1].append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if char == "*":
            segments.append([])
        elif char == "?":
            segments[-1].append("(.)")
        else:
            segments[-1].append(re.escape(char))
        i += 1
    flags = re.DOTALL | (re.IGNORECASE | re.ASCII if casemap else 0)
    # Each part matches exactly one character: a segment's length is its number of parts.
    compiled = [(re.compile("".join(parts), flags), len(parts)) for parts in segments]
    return compiled, len(segments) > 1


def glob(value: str, pattern: str, comparator: str = "i;ascii-casemap") -> list[str] | None:
    """RFC 5228 2.7.1 :matches. Each star takes as little as it can, leftmost first (the
    RFC 5229 3.2 example: "[*] *" on "[acme-users] [fwd] x" gives "acme-users"), found
    segment by segment with str searches: linear, no backtracking."""
    segments, has_star = _glob_segments(pattern, comparator == "i;ascii-casemap")
    if not has_star:
        found = segments[0][0].fullmatch(value)
        return [value, *found.groups()] if found else None
    (first, _), *middle, (last, last_length) = segments
    head = first.match(value)
    if head is None:
        return None
    tail_start = len(value) - last_length
    if tail_start < head.end():
        return None
    tail = last.fullmatch(value, tail_start)
    if tail is None:
        return None
    captures = list(head.groups())
    cursor = head.end()
    for segment, _length in middle:
        found = segment.search(value, cursor, tail_start)
        if found is None:
            return None
        captures.append(value[cursor : found.start()])
        captures.extend(found.groups())
        cursor = found.end()
    captures.append(value[cursor:tail_start])
    captures.extend(tail.groups())
    return [value, *captures]


# -- :regex --------------------------------------------------------------------------------


# "(?i)", "(?=", "(?P<": Perl and Python syntax that POSIX regcomp (Pigeonhole) refuses.
_PERL_GROUP = re.compile(r"(?<!\\)\(\?")


def regex_problem(pattern: str) -> str | None:
    """Why a :regex key cannot be used, or None."""
    if len(pattern) > MAX_REGEX_CHARS:
        return f"longer than {MAX_REGEX_CHARS} characters"
    if _PERL_GROUP.search(pattern):
        return "'(?' is not POSIX extended syntax"
    try:
        regex.compile(pattern, _REGEX_FLAGS)
    except regex.error as error:
        return str(error)
    return None


@lru_cache(maxsize=256)
def _compiled_regex(pattern: str, casemap: bool) -> regex.Pattern | None:
    if regex_problem(pattern):
        return None
    return regex.compile(pattern, _REGEX_FLAGS | (regex.IGNORECASE | regex.ASCII if casemap else 0))


def regex_search(value: str, pattern: str, comparator: str) -> list[str] | None:
    compiled = _compiled_regex(pattern, comparator == "i;ascii-casemap")
    if compiled is None:  # built from variables at run time, and not a valid expression
        raise SieveRuntimeError(f"bad regular expression {pattern!r}")
    try:
        found = compiled.search(value[:MAX_REGEX_SUBJECT], timeout=REGEX_TIMEOUT)
    except TimeoutError:
        raise SieveRuntimeError(
            f"regular expression {pattern!r} took longer than {REGEX_TIMEOUT} s"
        ) from None
    if found is None:
        return None
    return [found.group(), *(group or "" for group in found.groups())]
