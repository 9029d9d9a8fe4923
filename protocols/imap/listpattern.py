"""LIST/LSUB mailbox patterns (RFC 9051 6.3.9), matched in linear time.

`*` matches any run of characters, `%` any run without the hierarchy delimiter; every other
character matches itself, except that INBOX is case-insensitive, also as the first component
of a longer name. A pattern is never turned into a regular expression: a backtracking engine
takes exponential time on a few `%*` pairs and holds the interpreter lock meanwhile, stopping
every protocol of the process.

The matcher is a bit-parallel NFA (shift-and): bit i of the state says "the first i pattern
items match what was read so far". Each character of the name costs a few operations on one
integer of about len(pattern) bits, so a match is O(len(name) * len(pattern) / 64) machine
work, with no backtracking.
"""

from __future__ import annotations

from dataclasses import dataclass

STAR = "*"
PERCENT = "%"


def _items(full: str) -> list[str]:
    """The pattern with each run of wildcards collapsed to one (a run holding `*` is `*`, a
    run of `%` is `%`): the same names match, and no wildcard then follows another, so one
    step of the empty-match closure suffices."""
    items: list[str] = []
    for char in full:
        if char in (STAR, PERCENT) and items and items[-1] in (STAR, PERCENT):
            if char == STAR:
                items[-1] = STAR
            continue
        items.append(char)
    return items


@dataclass(frozen=True)
class MailboxPattern:
    """One compiled pattern; `matches(name)` is the test."""

    accept: int  # the bit of "the whole pattern matched"
    star: int  # positions holding `*`
    percent: int  # positions holding `%`
    literal: dict[str, int]  # character -> positions where that character matches
    delimiter: str

    @classmethod
    def compile(cls, reference: str, pattern: str, *, delimiter: str) -> MailboxPattern:
        # RFC 9051 6.3.9: the reference and the pattern are joined; a delimiter ending the
        # one and starting the other counts once.
        if pattern.startswith(delimiter) and reference.endswith(delimiter):
            full = reference + pattern[1:]
        else:
            full = reference + pattern
        # INBOX is case-insensitive, also as the first component of a longer name.
        inbox = full[:5].upper() == "INBOX" and (
            len(full) == 5 or full[5] in (delimiter, STAR, PERCENT)
        )
        star = percent = 0
        literal: dict[str, int] = {}
        items = _items(full)
        for position, item in enumerate(items):
            bit = 1 << position
            if item == STAR:
                star |= bit
            elif item == PERCENT:
                percent |= bit
            elif inbox and position < 5:
                for variant in {item.lower(), item.upper()}:
                    literal[variant] = literal.get(variant, 0) | bit
            else:
                literal[item] = literal.get(item, 0) | bit
        return cls(1 << len(items), star, percent, literal, delimiter)

    def _closure(self, state: int) -> int:
        # A wildcard may match nothing: reaching it also reaches the item after it.
        return state | ((state & (self.star | self.percent)) << 1)

    def matches(self, name: str) -> bool:
        state = self._closure(1)
        star, percent, literal, delimiter = self.star, self.percent, self.literal, self.delimiter
        for char in name:
            # A wildcard consumes the character and stays; a literal advances.
            wild = star if char == delimiter else star | percent
            state = self._closure((state & wild) | ((state & literal.get(char, 0)) << 1))
            if not state:
                return False
        return bool(state & self.accept)
