"""A message's flags: the five system flags and its keywords, in one table with one order.

The order is SystemFlag's: its bit positions, the Message columns (seen, answered, flagged,
deleted, draft) as selectors and services read and write them, and every list of flag names
Mailhost gives out (FETCH FLAGS, STORE replies, Message.flags, exports): system flags in
this order, then the keywords as stored. IMAP's FLAGS and PERMANENTFLAGS lines list the same
five in the order RFC 9051's examples do (ANNOUNCED), a permutation of this table, not a
second spelling of it.

A leaf module: it imports nothing of Mailhost's, so models, services, selectors, the
protocols and the webmail all take their flags from here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class SystemFlag(enum.IntFlag):
    """IMAP's system flags (RFC 9051 2.3.2) a message stores, as bits of one integer."""

    SEEN = 1
    ANSWERED = 2
    FLAGGED = 4
    DELETED = 8
    DRAFT = 16

    @property
    def imap(self) -> str:
        """The flag's IMAP name, `\\Seen`."""
        return NAMES[self.bit_length() - 1]

    @property
    def column(self) -> str:
        """The Message column holding the flag, `seen`."""
        return COLUMNS[self.bit_length() - 1]


NONE = SystemFlag(0)
SYSTEM: tuple[SystemFlag, ...] = tuple(SystemFlag)  # the canonical order
NAMES: tuple[str, ...] = tuple("\\" + flag.name.capitalize() for flag in SYSTEM)
COLUMNS: tuple[str, ...] = tuple(flag.name.lower() for flag in SYSTEM)
# FLAGS and PERMANENTFLAGS responses (RFC 9051 7.3.5, 7.1): the five, in the order Mailhost
# has always announced them.
ANNOUNCED: tuple[str, ...] = tuple(
    NAMES[SYSTEM.index(flag)]
    for flag in (
        SystemFlag.ANSWERED,
        SystemFlag.FLAGGED,
        SystemFlag.DELETED,
        SystemFlag.SEEN,
        SystemFlag.DRAFT,
    )
)

_BY_NAME = {name.lower(): flag for name, flag in zip(NAMES, SYSTEM)}
# Flag names of every combination of system flags, by its bits: what a hot loop over rows
# (FETCH 1:* (FLAGS) at 100k messages) looks up instead of building.
_NAMES_BY_BITS: tuple[tuple[str, ...], ...] = tuple(
    tuple(name for k, name in enumerate(NAMES) if bits >> k & 1) for bits in range(1 << len(NAMES))
)
# RFC 9051 4: a flag keyword is an atom; atom-specials and controls cannot be stored.
_KEYWORD_FORBIDDEN = frozenset('(){ %*"\\]') | {chr(c) for c in range(33)} | {"\x7f"}


def system_flag(name: str) -> SystemFlag | None:
    """The system flag a name spells (without regard to case), or None: `\\Recent`, other
    backslash names and keywords are not stored system flags."""
    return _BY_NAME.get(name.lower())


def column(name: str) -> str | None:
    """The Message column of a system flag's name (without regard to case), or None."""
    flag = _BY_NAME.get(name.lower())
    return None if flag is None else flag.column


def bits_of(values: Iterable[object]) -> int:
    """The system flags (as SystemFlag bits) of the five column values, in COLUMNS order
    (truthy: 0/1 on SQLite). A plain int: called once per row on hot paths."""
    bits = 0
    for k, on in enumerate(values):
        if on:
            bits |= 1 << k
    return bits


def column_values(bits: int) -> tuple[bool, ...]:
    """The five column values, in COLUMNS order, of a set of system flags."""
    return tuple(bool(bits >> k & 1) for k in range(len(COLUMNS)))


def system_names(bits: int) -> tuple[str, ...]:
    """The names of a set of system flags, in the canonical order."""
    return _NAMES_BY_BITS[bits]


def names_of_columns(keywords: str, values: Sequence[object]) -> list[str]:
    """The flag names of a stored row: its five column values (in COLUMNS order) and its
    keywords text (space-separated, as stored)."""
    names = [name for name, on in zip(NAMES, values) if on]
    if keywords:
        names.extend(keywords.split())
    return names


def names_of_bits(bits: int, keywords: str) -> list[str]:
    """The flag names of a row read as bits (selectors.message_flag_bits) and keywords."""
    names = list(_NAMES_BY_BITS[bits])
    if keywords:
        names.extend(keywords.split())
    return names


def keyword_storable(flag: str) -> bool:
    """Whether a keyword can be stored: a non-empty atom, not a backslash name."""
    return bool(flag) and not flag.startswith("\\") and not _KEYWORD_FORBIDDEN.intersection(flag)


@dataclass(frozen=True, slots=True)
class Flags:
    """A message's flags as a value: its system flags and its keywords (in the order given,
    each once without regard to case)."""

    system: SystemFlag = NONE
    keywords: tuple[str, ...] = ()

    @classmethod
    def parse(cls, names: Iterable[str]) -> Flags:
        """Flags from names a client or a Sieve script gave: system flags recognized without
        regard to case; `\\Recent`, unknown system flags and non-atoms are not stored and
        dropped; a keyword given twice (in any case) is kept once, as first spelled."""
        bits = 0
        keywords: list[str] = []
        have: set[str] = set()
        for name in names:
            flag = _BY_NAME.get(name.lower())
            if flag is not None:
                bits |= flag
            elif keyword_storable(name) and name.lower() not in have:
                have.add(name.lower())
                keywords.append(name)
        return cls(SystemFlag(bits), tuple(keywords))

    @classmethod
    def of(cls, *system: SystemFlag) -> Flags:
        """Flags of system flags alone: Flags.of(SystemFlag.DRAFT, SystemFlag.SEEN)."""
        bits = 0
        for flag in system:
            bits |= flag
        return cls(SystemFlag(bits))

    def __contains__(self, flag: SystemFlag) -> bool:
        return bool(self.system & flag)

    def names(self) -> list[str]:
        """The flags' names: system flags in the canonical order, then the keywords."""
        return [*_NAMES_BY_BITS[self.system], *self.keywords]

    def columns(self) -> dict[str, bool]:
        """Message column values of the system flags, for a row to write."""
        return dict(zip(COLUMNS, column_values(self.system)))
