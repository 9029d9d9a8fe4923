"""Sieve tokens (RFC 5228 8.1), with the line and column where each starts.

The lexer never raises: a malformed token becomes an error and lexing goes on, so that one
upload reports every mistake it can find.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailboxes.sieve.errors import SieveError

# Token kinds.
IDENTIFIER = "identifier"
TAG = "tag"
NUMBER = "number"
STRING = "string"  # quoted or multi-line: the value is already unescaped
PUNCT = "punct"  # one of ; , ( ) [ ] { }
END = "end"

PUNCTUATION = frozenset(";,()[]{}")
_QUANTIFIERS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
# RFC 5228 does not bound numbers; Pigeonhole keeps them in 64 unsigned bits, so do we.
MAX_NUMBER = (1 << 64) - 1

_CRLF = re.compile(r"\r?\n")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9]+([KkMmGg])?")
_WHITE = re.compile(r"[ \t\r\n]+")
# RFC 5228 8.1: multi-line = "text:" *(SP / HTAB) (hash-comment / CRLF)
_TEXT_START = re.compile(r"text:[ \t]*(#[^\n]*)?\r?\n", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    value: object  # str for identifiers, tags, strings and punctuation; int for numbers
    line: int
    column: int


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.errors: list[SieveError] = []
        # Positions only move forward: count lines from the last answer, not from the start.
        self._seen_pos = 0
        self._seen_line = 1
        self._seen_line_start = 0

    def where(self, pos: int | None = None) -> tuple[int, int]:
        pos = self.pos if pos is None else pos
        if pos < self._seen_pos:
            self._seen_pos, self._seen_line, self._seen_line_start = 0, 1, 0
        self._seen_line += self.text.count("\n", self._seen_pos, pos)
        last_break = self.text.rfind("\n", self._seen_pos, pos)
        if last_break >= 0:
            self._seen_line_start = last_break + 1
        self._seen_pos = pos
        return self._seen_line, pos - self._seen_line_start + 1

    def error(self, message: str, pos: int | None = None) -> None:
        line, column = self.where(pos)
        self.errors.append(SieveError(line, column, message))


def tokenize(text: str) -> tuple[list[Token], list[SieveError]]:
    scan = _Scanner(text)
    tokens: list[Token] = []
    text_len = len(text)
    while True:
        _skip_blanks(scan)
        if scan.pos >= text_len:
            line, column = scan.where()
            tokens.append(Token(END, None, line, column))
            return tokens, scan.errors
        start = scan.pos
        line, column = scan.where()
        char = text[start]
        if char in PUNCTUATION:
            scan.pos += 1
            tokens.append(Token(PUNCT, char, line, column))
        elif char == '"':
            tokens.append(Token(STRING, _quoted(scan), line, column))
        elif char == ":":
            match = _IDENT.match(text, start + 1)
            if match:
                scan.pos = match.end()
                tokens.append(Token(TAG, match.group().lower(), line, column))
            else:
                scan.error("expected a tag name after ':'")
                scan.pos += 1
        elif char.isdigit():
            match = _NUMBER.match(text, start)
            scan.pos = match.end()
            tokens.append(Token(NUMBER, _number(scan, match, start), line, column))
        elif _TEXT_START.match(text, start):
            tokens.append(Token(STRING, _multiline(scan), line, column))
        elif match := _IDENT.match(text, start):
            scan.pos = match.end()
            tokens.append(Token(IDENTIFIER, match.group().lower(), line, column))
        else:
            scan.error(f"unexpected character {char!r}")
            scan.pos += 1


def _skip_blanks(scan: _Scanner) -> None:
    """Whitespace, hash comments and bracket comments (RFC 5228 2.3)."""
    text = scan.text
    while scan.pos < len(text):
        match = _WHITE.match(text, scan.pos)
        if match:
            scan.pos = match.end()
            continue
        if text.startswith("#", scan.pos):
            end = text.find("\n", scan.pos)
            scan.pos = len(text) if end < 0 else end + 1
            continue
        if text.startswith("/*", scan.pos):
            end = text.find("*/", scan.pos + 2)
            if end < 0:
                scan.error("unterminated bracket comment")
                scan.pos = len(text)
            else:
                scan.pos = end + 2
            continue
        return


def _number(scan: _Scanner, match: re.Match, start: int) -> int:
    digits = match.group()
    quantifier = match.group(1)
    value = int(digits[:-1] if quantifier else digits)
    if quantifier:
        value *= _QUANTIFIERS[quantifier.upper()]
    if value > MAX_NUMBER:
        scan.error(f"number {digits} is too large", start)
        return MAX_NUMBER
    return value


def _quoted(scan: _Scanner) -> str:
    """RFC 5228 2.4.2: backslash escapes the next character, whatever it is."""
    text = scan.text
    start = scan.pos
    pos = start + 1
    pieces = []
    while pos < len(text):
        char = text[pos]
        if char == '"':
            scan.pos = pos + 1
            # Line ends inside a string are CRLF whatever the file has (RFC 5228 2.4.2).
            return _CRLF.sub("\r\n", "".join(pieces))
        if char == "\\" and pos + 1 < len(text):
            pieces.append(text[pos + 1])
            pos += 2
            continue
        pieces.append(char)
        pos += 1
    scan.error("unterminated string", start)
    scan.pos = len(text)
    return "".join(pieces)


def _multiline(scan: _Scanner) -> str:
    """RFC 5228 2.4.2: lines up to a line holding a single dot; a leading ".." loses a dot.
    Lines end in CRLF in the value, whatever the script used."""
    text = scan.text
    start = scan.pos
    pos = _TEXT_START.match(text, start).end()
    lines = []
    while pos < len(text):
        end = text.find("\n", pos)
        if end < 0:
            break
        line = text[pos:end].removesuffix("\r")
        pos = end + 1
        if line == ".":
            scan.pos = pos
            return "".join(part + "\r\n" for part in lines)
        lines.append(line[1:] if line.startswith("..") else line)
    scan.error("unterminated multi-line string (a line with a single '.' ends it)", start)
    scan.pos = len(text)
    return "".join(part + "\r\n" for part in lines)
