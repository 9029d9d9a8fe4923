"""POP3 command parser: bytes in, frozen command dataclasses out. No I/O (like h11).

    parser = Parser(max_line_length=2048)
    parser.receive_data(b"LIST 1\\r\\nST")
    parser.next_event()  # List(message=1)
    parser.next_event()  # NEED_DATA

Commands are one line each (RFC 1939 3): a case-insensitive keyword, arguments separated by
single spaces, CRLF (a bare LF is accepted, as most servers do). While a SASL exchange waits
for the client's response (RFC 5034 4), `expect_sasl_response()` makes the next line come out
as `SaslResponse` instead of a command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# RFC 1939 message numbers and TOP line counts; longer digit strings are refused as syntax.
MAX_NUMBER_DIGITS: Final = 10


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()


# --- Commands -------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    name: str


@dataclass(frozen=True)
class Pass:
    password: str  # the rest of the line: passwords may contain spaces (RFC 1939 7)


@dataclass(frozen=True)
class Auth:
    mechanism: str | None  # None: bare AUTH, which lists the mechanisms
    initial_response: str | None = None  # RFC 5034 4: "=" stands for an empty one


@dataclass(frozen=True)
class SaslResponse:
    data: str  # "*" cancels the exchange (RFC 5034 4)


@dataclass(frozen=True)
class Capa:
    pass


@dataclass(frozen=True)
class Stls:
    pass


@dataclass(frozen=True)
class Quit:
    pass


@dataclass(frozen=True)
class Stat:
    pass


@dataclass(frozen=True)
class List:
    message: int | None = None


@dataclass(frozen=True)
class Retr:
    message: int


@dataclass(frozen=True)
class Dele:
    message: int


@dataclass(frozen=True)
class Noop:
    pass


@dataclass(frozen=True)
class Rset:
    pass


@dataclass(frozen=True)
class Top:
    message: int
    lines: int


@dataclass(frozen=True)
class Uidl:
    message: int | None = None


Command = (
    User | Pass | Auth | Capa | Stls | Quit | Stat | List | Retr | Dele | Noop | Rset | Top | Uidl
)


# --- Input the parser refuses ---------------------------------------------------------------


@dataclass(frozen=True)
class UnknownCommand:
    keyword: str


@dataclass(frozen=True)
class BadArguments:
    keyword: str


@dataclass(frozen=True)
class LineTooLong:
    pass


Event = Command | SaslResponse | UnknownCommand | BadArguments | LineTooLong | _NeedData


def _number(text: str) -> int | None:
    # RFC 1939 3: numbers are decimal; no sign, no spaces, no leading "+".
    if not text or len(text) > MAX_NUMBER_DIGITS or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def parse_line(line: str) -> Command | UnknownCommand | BadArguments:
    """One command line without its CRLF."""
    keyword, _, rest = line.partition(" ")
    name = keyword.upper()
    if name == "PASS":
        # RFC 1939 7: the password is everything after the single space.
        return Pass(rest) if rest else BadArguments(name)
    rest = rest.rstrip(" ")  # a trailing space is a common client slip, not an argument
    args = rest.split(" ") if rest else []
    if any(a == "" for a in args):
        return BadArguments(name) if name in _KNOWN else UnknownCommand(name)
    if name not in _KNOWN:
        return UnknownCommand(name[:40])
    return _KNOWN[name](name, args)


def _no_args(cls):
    def build(name, args):
        return cls() if not args else BadArguments(name)

    return build


def _one_number(cls):
    def build(name, args):
        if len(args) != 1 or (number := _number(args[0])) is None:
            return BadArguments(name)
        return cls(number)

    return build


def _optional_number(cls):
    def build(name, args):
        if not args:
            return cls()
        if len(args) != 1 or (number := _number(args[0])) is None:
            return BadArguments(name)
        return cls(number)

    return build


def _user(name, args):
    # RFC 1939 7 names one argument; addresses have no spaces.
    return User(args[0]) if len(args) == 1 else BadArguments(name)


def _auth(name, args):
    if not args:
        return Auth(None)
    if len(args) > 2:
        return BadArguments(name)
    return Auth(args[0].upper(), args[1] if len(args) == 2 else None)


def _top(name, args):
    if len(args) != 2:
        return BadArguments(name)
    message, lines = _number(args[0]), _number(args[1])
    if message is None or lines is None:
        return BadArguments(name)
    return Top(message, lines)


_KNOWN = {
    "USER": _user,
    "AUTH": _auth,
    "CAPA": _no_args(Capa),
    "STLS": _no_args(Stls),
    "QUIT": _no_args(Quit),
    "STAT": _no_args(Stat),
    "LIST": _optional_number(List),
    "RETR": _one_number(Retr),
    "DELE": _one_number(Dele),
    "NOOP": _no_args(Noop),
    "RSET": _no_args(Rset),
    "TOP": _top,
    "UIDL": _optional_number(Uidl),
    "PASS": None,  # handled in parse_line
}


class Parser:
    """Splits the byte stream into lines and lines into events."""

    def __init__(self, *, max_line_length: int = 2048) -> None:
        self.max_line_length = max_line_length
        self._buffer = bytearray()
        self._discarding = False  # inside an overlong line, dropping it up to its LF
        self._sasl = False

    def receive_data(self, data: bytes) -> None:
        if self._discarding:
            end = data.find(b"\n")
            if end < 0:
                return
            self._discarding = False
            data = data[end + 1 :]
        self._buffer += data

    def expect_sasl_response(self) -> None:
        """The next line is a SASL response, not a command."""
        self._sasl = True

    def discard_buffered(self) -> int:
        """Drop everything received but not yet parsed (before a TLS handshake, RFC 2595 4:
        nothing sent in the clear may be taken as coming from inside TLS). Returns its size."""
        dropped = len(self._buffer)
        self._buffer.clear()
        self._discarding = False
        return dropped

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def next_event(self) -> Event:
        end = self._buffer.find(b"\n", 0, self.max_line_length)
        if end < 0:
            if len(self._buffer) >= self.max_line_length:
                line_end = self._buffer.find(b"\n")
                if line_end < 0:
                    self._buffer.clear()
                    self._discarding = True
                else:
                    del self._buffer[: line_end + 1]
                self._sasl = False
                return LineTooLong()
            return NEED_DATA
        raw = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        # Commands and SASL data are ASCII (RFC 1939 3); other octets survive as U+FFFD and
        # then fail as an unknown command, a bad argument or a wrong password.
        line = raw.decode("utf-8", errors="replace")
        if self._sasl:
            self._sasl = False
            return SaslResponse(line)
        return parse_line(line)
