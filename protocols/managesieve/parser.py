"""ManageSieve command parser (RFC 5804 4), sans-IO: bytes in, frozen command dataclasses out.

    parser = Parser(max_line_length=8192, max_literal=8192)
    parser.receive_data(b'PUTSCRIPT "a" {4+}\\r\\nkeep\\r\\n')
    parser.next_event()  # PutScript(name="a", script=b"keep")
    parser.next_event()  # NEED_DATA

A command is an atom and arguments separated by spaces: quoted strings (RFC 5804 4:
`\\"` and `\\\\` are the only escapes), literals (`{n+}` CRLF n octets; the synchronizing form
`{n}` is taken the same way, without waiting for a continuation, which ManageSieve has none
of) and numbers. While a SASL exchange waits for the client (RFC 5804 2.1),
`expect_sasl_response()` makes the next line come out as `SaslResponse`.

Limits: a line longer than `max_line_length` (literals excluded) is `LineTooLong` (the
session closes: what follows it cannot be framed safely); a literal larger than
`max_literal` is skipped, octet for octet, and the command comes out as `LiteralTooLarge`,
unless `fatal_literals` (before login), when it is `LiteralTooLarge(fatal=True)` at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()

# {n+} or {n} at the end of a line (RFC 5804 4 literal-c2s).
_LITERAL_END = re.compile(rb"\{(\d{1,20})(\+?)\}$")
MAX_NUMBER: Final = 2**32 - 1  # RFC 5804 4: number = 1*DIGIT, 0 .. 4,294,967,295
MAX_ARGUMENTS: Final = 8  # no command takes more than two; a flood of tokens is a syntax error
# Octets of lines and small literals a command may carry beside its one large literal.
COMMAND_OVERHEAD: Final = 64 * 1024


# --- Commands (RFC 5804 2) ---------------------------------------------------------------


@dataclass(frozen=True)
class Authenticate:
    mechanism: str  # upper-case
    initial_response: bytes | None = None


@dataclass(frozen=True)
class StartTls:
    pass


@dataclass(frozen=True)
class Logout:
    pass


@dataclass(frozen=True)
class Capability:
    pass


@dataclass(frozen=True)
class HaveSpace:
    name: str
    size: int


@dataclass(frozen=True)
class PutScript:
    name: str
    script: bytes


@dataclass(frozen=True)
class ListScripts:
    pass


@dataclass(frozen=True)
class SetActive:
    name: str  # "": no script is active


@dataclass(frozen=True)
class GetScript:
    name: str


@dataclass(frozen=True)
class DeleteScript:
    name: str


@dataclass(frozen=True)
class RenameScript:
    old_name: str
    new_name: str


@dataclass(frozen=True)
class CheckScript:
    script: bytes


@dataclass(frozen=True)
class Noop:
    tag: str | None = None  # RFC 5804 2.13: echoed in a TAG response code


@dataclass(frozen=True)
class Unauthenticate:
    pass


Command = (
    Authenticate
    | StartTls
    | Logout
    | Capability
    | HaveSpace
    | PutScript
    | ListScripts
    | SetActive
    | GetScript
    | DeleteScript
    | RenameScript
    | CheckScript
    | Noop
    | Unauthenticate
)


@dataclass(frozen=True)
class SaslResponse:
    data: bytes  # base64 text as sent; meaningless when cancelled
    cancelled: bool = False  # RFC 5804 2.1: the client sent "*"


# --- Input the parser refuses ---------------------------------------------------------------


@dataclass(frozen=True)
class UnknownCommand:
    command: str


@dataclass(frozen=True)
class BadSyntax:
    command: str
    text: str


@dataclass(frozen=True)
class LineTooLong:
    pass


@dataclass(frozen=True)
class LiteralTooLarge:
    command: str
    size: int
    fatal: bool = False  # the session closes (before login, or a size past any reason)


Event = (
    Command | SaslResponse | UnknownCommand | BadSyntax | LineTooLong | LiteralTooLarge | _NeedData
)


# --- Tokens ---------------------------------------------------------------------------------


class _Syntax(Exception):
    pass


@dataclass(frozen=True)
class _Atom:
    text: str


def _tokens(parts: list[bytes]) -> list[_Atom | bytes]:
    """parts alternate line, literal, line, ...; a literal is a string token (bytes)."""
    tokens: list[_Atom | bytes] = []
    for index, part in enumerate(parts):
        if index % 2:
            tokens.append(part)
            continue
        line = part
        if index + 1 < len(parts):  # this line announced the literal that follows it
            line = line[: _LITERAL_END.search(line).start()]
        _line_tokens(line, tokens, first=index == 0)
        if len(tokens) > MAX_ARGUMENTS + 1:
            raise _Syntax("Too many arguments")
    return tokens


def _line_tokens(line: bytes, tokens: list, *, first: bool) -> None:
    pos, end = 0, len(line)
    # Tokens are separated by one space (clients send exactly one; more is tolerated).
    if not first and line and line[0:1] != b" ":
        raise _Syntax("Missing space after literal")
    while pos < end:
        if line[pos] == 0x20:
            pos += 1
            continue
        if line[pos] == 0x22:  # quoted string
            value = bytearray()
            pos += 1
            while True:
                if pos >= end:
                    raise _Syntax("Unterminated quoted string")
                char = line[pos]
                if char == 0x22:
                    pos += 1
                    break
                if char == 0x5C:  # RFC 5804 4: QUOTED-SPECIALS are DQUOTE and "\"
                    if pos + 1 >= end or line[pos + 1] not in (0x22, 0x5C):
                        raise _Syntax("Bad escape in quoted string")
                    value.append(line[pos + 1])
                    pos += 2
                    continue
                if char in (0x00, 0x0D, 0x0A):
                    raise _Syntax("Bad character in quoted string")
                value.append(char)
                pos += 1
            if pos < end and line[pos] != 0x20:
                raise _Syntax("Missing space after quoted string")
            tokens.append(bytes(value))
            continue
        start = pos
        while pos < end and line[pos] != 0x20:
            pos += 1
        atom = line[start:pos]
        if b'"' in atom or b"{" in atom or any(c < 0x21 or c > 0x7E for c in atom):
            raise _Syntax("Bad atom")
        tokens.append(_Atom(atom.decode("ascii")))


def _text(token: _Atom | bytes) -> str:
    """A string argument (script names, tags): quoted or literal, UTF-8."""
    if not isinstance(token, bytes):
        raise _Syntax("Expected a string")
    try:
        return token.decode("utf-8")
    except UnicodeDecodeError:
        raise _Syntax("String is not UTF-8") from None


def _mechanism(token: _Atom | bytes) -> str:
    # RFC 5804 2.1: auth-type is a string; some clients send an atom, which we take too.
    name = token.text if isinstance(token, _Atom) else _text(token)
    return name.upper()


def _number(token: _Atom | bytes) -> int:
    if not isinstance(token, _Atom) or not token.text.isdigit() or len(token.text) > 10:
        raise _Syntax("Expected a number")
    value = int(token.text)
    if value > MAX_NUMBER:
        raise _Syntax("Number too large")
    return value


def _arity(args: list, low: int, high: int | None = None) -> None:
    high = low if high is None else high
    if not low <= len(args) <= high:
        raise _Syntax("Wrong number of arguments")


def _authenticate(args):
    _arity(args, 1, 2)
    initial = None
    if len(args) == 2:
        if not isinstance(args[1], bytes):
            raise _Syntax("Expected a string")
        initial = args[1]
    return Authenticate(_mechanism(args[0]), initial)


def _no_args(cls):
    def build(args):
        _arity(args, 0)
        return cls()

    return build


def _one_name(cls):
    def build(args):
        _arity(args, 1)
        return cls(_text(args[0]))

    return build


def _havespace(args):
    _arity(args, 2)
    return HaveSpace(_text(args[0]), _number(args[1]))


def _putscript(args):
    _arity(args, 2)
    if not isinstance(args[1], bytes):
        raise _Syntax("Expected a string")
    return PutScript(_text(args[0]), args[1])


def _renamescript(args):
    _arity(args, 2)
    return RenameScript(_text(args[0]), _text(args[1]))


def _checkscript(args):
    _arity(args, 1)
    if not isinstance(args[0], bytes):
        raise _Syntax("Expected a string")
    return CheckScript(args[0])


def _noop(args):
    _arity(args, 0, 1)
    return Noop(_text(args[0]) if args else None)


_COMMANDS = {
    "AUTHENTICATE": _authenticate,
    "STARTTLS": _no_args(StartTls),
    "LOGOUT": _no_args(Logout),
    "CAPABILITY": _no_args(Capability),
    "HAVESPACE": _havespace,
    "PUTSCRIPT": _putscript,
    "LISTSCRIPTS": _no_args(ListScripts),
    "SETACTIVE": _one_name(SetActive),
    "GETSCRIPT": _one_name(GetScript),
    "DELETESCRIPT": _one_name(DeleteScript),
    "RENAMESCRIPT": _renamescript,
    "CHECKSCRIPT": _checkscript,
    "NOOP": _noop,
    "UNAUTHENTICATE": _no_args(Unauthenticate),
}


def parse_command(parts: list[bytes]) -> Command | UnknownCommand | BadSyntax:
    """One complete command: its lines (without CRLF) and literals, alternating."""
    name = _command_name(parts[0])
    try:
        tokens = _tokens(parts)
    except _Syntax as exc:
        return BadSyntax(name, str(exc))
    if not tokens or not isinstance(tokens[0], _Atom):
        return BadSyntax(name, "Expected a command")
    if name not in _COMMANDS:
        return UnknownCommand(name)
    try:
        return _COMMANDS[name](tokens[1:])
    except _Syntax as exc:
        return BadSyntax(name, str(exc))


def parse_sasl_response(parts: list[bytes]) -> SaslResponse | BadSyntax:
    """RFC 5804 2.1: a client response is one string (quoted or literal); "*" cancels."""
    try:
        tokens = _tokens(parts)
    except _Syntax as exc:
        return BadSyntax("AUTHENTICATE", str(exc))
    if len(tokens) == 1 and (tokens[0] in (_Atom("*"), b"*")):
        return SaslResponse(b"", cancelled=True)
    if len(tokens) != 1 or not isinstance(tokens[0], bytes):
        return BadSyntax("AUTHENTICATE", "Expected a string")
    return SaslResponse(tokens[0])


def _command_name(line: bytes) -> str:
    word = line.split(b" ", 1)[0][:40]
    return word.decode("ascii", "replace").upper()


# --- Framing: bytes to complete commands ------------------------------------------------


class Parser:
    def __init__(
        self, *, max_line_length: int, max_literal: int, fatal_literals: bool = True
    ) -> None:
        self.max_line_length = max_line_length
        self.max_literal = max_literal
        # Before login a literal past the limit closes the session (nobody has a reason to
        # send one); after it, an oversized script is skipped and refused with QUOTA/MAXSIZE.
        self.fatal_literals = fatal_literals
        self._buffer = bytearray()
        self._parts: list[bytes] = []
        self._literal_needed: int | None = None
        self._skip = 0  # octets of a refused literal still to drop
        self._refused: LiteralTooLarge | None = None
        self._command_size = 0
        self._sasl = False

    def set_limits(self, *, max_literal: int, fatal_literals: bool) -> None:
        self.max_literal = max_literal
        self.fatal_literals = fatal_literals

    def receive_data(self, data: bytes) -> None:
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        self._buffer += data

    def expect_sasl_response(self) -> None:
        """The next line is a SASL client response, not a command."""
        self._sasl = True

    def discard_buffered(self) -> int:
        """Drop what was received but not parsed (before a TLS handshake: nothing sent in the
        clear may be taken as coming from inside TLS). Returns its size."""
        dropped = len(self._buffer)
        self._buffer.clear()
        self._parts = []
        self._literal_needed = None
        self._skip = 0
        self._refused = None
        self._command_size = 0
        return dropped

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def next_event(self) -> Event:
        while True:
            if self._skip:
                return NEED_DATA
            if self._literal_needed is not None:
                needed = self._literal_needed
                if len(self._buffer) < needed:
                    return NEED_DATA
                self._parts.append(bytes(self._buffer[:needed]))
                del self._buffer[:needed]
                self._literal_needed = None
                continue
            end = self._buffer.find(b"\n", 0, self.max_line_length + 1)
            if end < 0:
                if len(self._buffer) > self.max_line_length:
                    self._buffer.clear()
                    self._parts = []
                    return LineTooLong()
                return NEED_DATA
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if line.endswith(b"\r"):
                line = line[:-1]
            match = _LITERAL_END.search(line)
            if match:
                size = int(match.group(1))
                self._command_size += size + len(line)
                first = self._parts[0] if self._parts else line
                too_large = (
                    size > self.max_literal
                    or self._command_size > self.max_literal + COMMAND_OVERHEAD
                )
                if too_large or self._refused is not None:
                    refused = self._refused or LiteralTooLarge(_command_name(first), size)
                    if self.fatal_literals:
                        self._reset()
                        return LiteralTooLarge(refused.command, size, fatal=True)
                    # Drop the literal's octets as they come, then the rest of the command.
                    self._refused = refused
                    self._parts = [first]
                    dropped = min(size, len(self._buffer))
                    del self._buffer[:dropped]
                    self._skip = size - dropped
                    continue
                self._parts.append(line)
                self._literal_needed = size
                continue
            if self._refused is not None:
                refused = self._refused
                self._reset()
                self._sasl = False
                return refused
            self._parts.append(line)
            parts = self._parts
            self._reset()
            if self._sasl:
                self._sasl = False
                return parse_sasl_response(parts)
            return parse_command(parts)

    def _reset(self) -> None:
        self._parts = []
        self._refused = None
        self._command_size = 0
