"""SMTP input parser: bytes in, events out. No I/O (h11's shape, like pop3/parser.py).

    parser = Parser(max_line=1000)
    parser.receive_data(b"MAIL FROM:<a@b.example>\\r\\nRC")
    parser.next_event()  # Command(verb="MAIL", arg="FROM:<a@b.example>")
    parser.next_event()  # NEED_DATA

What the bytes mean depends on what the session asked for last, as in SMTP itself:

- commands (the default): one line each, CRLF only (RFC 5321 2.3.8). A line longer than
  `max_line` octets (CRLF counted), a bare CR or LF, an empty verb or one that is not a known
  ASCII word comes out as `BadCommand` carrying the 500 reply; an overlong line is dropped
  as it arrives, never held whole.
- `start_data()`: DATA's message, up to CRLF.CRLF (the only end, RFC 5321 4.1.1.4), handed
  out in large `DataChunk` pieces as they come (only a tail that may be the start of the
  terminator waits); the last piece has `end=True`. Dot-stuffing and content checks are the
  session's (syntax.ContentFilter).
- `start_chunk(size)`: one BDAT chunk of exactly `size` octets (RFC 3030 2), as `DataChunk`s.
- `start_line()`: one line of any content (an AUTH response, RFC 4954 4), as `Line`.
- `proxy_header()`: the load balancer's PROXY header before anything else (protocols/proxy).

Whatever follows an event stays buffered for the next one (PIPELINING, RFC 2920).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final

from protocols import proxy
from protocols.smtp import replies
from protocols.smtp.replies import Reply

# The verbs the session implements (RFC 5321 4.1, RFC 3207, RFC 4954, RFC 3030).
VERBS: Final = frozenset(
    {
        "HELO",
        "EHLO",
        "MAIL",
        "RCPT",
        "DATA",
        "BDAT",
        "RSET",
        "NOOP",
        "QUIT",
        "VRFY",
        "EXPN",
        "HELP",
        "STARTTLS",
        "AUTH",
    }
)
# An AUTH response line may be longer than a command (a long password in base64).
MAX_RESPONSE_LINE: Final = 64 * 1024


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()


@dataclass(frozen=True, slots=True)
class Command:
    verb: str  # upper case, one of VERBS
    arg: str | None  # the rest of the line without surrounding spaces (UTF-8,
    # surrogateescape); None when empty


@dataclass(frozen=True, slots=True)
class BadCommand:
    reply: Reply  # the 500 to send; the line is consumed


@dataclass(frozen=True, slots=True)
class Line:
    data: bytes  # the line without surrounding whitespace
    too_long: bool = False  # longer than MAX_RESPONSE_LINE: dropped, `data` is empty


@dataclass(frozen=True, slots=True)
class DataChunk:
    data: bytes  # message octets in order (DATA: as sent, dot-stuffed; the terminator cut)
    end: bool  # the last piece of the message (DATA) or of the chunk (BDAT)


Event = Command | BadCommand | Line | DataChunk


class Mode(enum.Enum):
    COMMAND = "command"
    LINE = "line"
    DATA = "data"
    CHUNK = "chunk"


class Parser:
    def __init__(self, *, max_line: int) -> None:
        self.max_line = max_line
        self.mode = Mode.COMMAND
        self._buffer = bytearray()
        self._dropping = False  # inside an overlong line: drop up to its LF
        self._skip = 0  # DATA: octets at the buffer's start that are not message data
        self._remaining = 0  # BDAT: octets of the chunk still to come

    # --- input -------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Octets received and not yet handed out."""
        return len(self._buffer)

    def command_waiting(self) -> bool:
        """A whole line is buffered: another pipelined command waits (RFC 2920 3.1 batches
        replies until then)."""
        # find() >= 0, not `in`: CPython 3.11's bytes `in` first reads the needle as an
        # integer, raising and clearing a TypeError (about 1,800 instructions) each time.
        return self._buffer.find(b"\n") >= 0

    def discard_buffered(self) -> None:
        """Drop what was received and not handed out (RFC 3207 4.2: plaintext a client
        pipelined after STARTTLS is never read as if it came through TLS)."""
        self._buffer.clear()
        self._dropping = False

    # --- what comes next ---------------------------------------------------------------------

    def start_data(self) -> None:
        # A CRLF before the first octet, so that an empty message (".\r\n" at once) ends too.
        self._buffer[0:0] = b"\r\n"
        self._skip = 2
        self.mode = Mode.DATA

    def start_chunk(self, size: int) -> None:
        self._remaining = size
        self.mode = Mode.CHUNK

    def start_line(self) -> None:
        self.mode = Mode.LINE

    # --- output ------------------------------------------------------------------------------

    def next_event(self) -> Event | _NeedData:
        if self.mode is Mode.COMMAND:
            return self._command()
        if self.mode is Mode.DATA:
            return self._data()
        if self.mode is Mode.CHUNK:
            return self._chunk()
        return self._line()

    def _take_line(self, limit: int) -> bytes | None | _NeedData:
        """The next line with its LF; None for one longer than `limit` (dropped)."""
        buf = self._buffer
        end = buf.find(b"\n")
        if self._dropping:
            if end < 0:
                buf.clear()
                return NEED_DATA
            del buf[: end + 1]
            self._dropping = False
            return None
        if end < 0:
            if len(buf) > limit:  # already too long: drop it as it comes
                buf.clear()
                self._dropping = True
            return NEED_DATA
        line = bytes(buf[: end + 1])
        del buf[: end + 1]
        return None if len(line) > limit else line

    def _command(self) -> Event | _NeedData:
        line = self._take_line(self.max_line)
        if line is NEED_DATA:
            return NEED_DATA
        if line is None:
            return BadCommand(replies.S500_LINE_TOO_LONG)
        if not line.endswith(b"\r\n") or line.find(b"\r", 0, -2) >= 0:  # find: see above
            return BadCommand(replies.S500_BARE_LINE_ENDING)
        verb_bytes, _, arg_bytes = line[:-2].partition(b" ")
        if not verb_bytes:
            return BadCommand(replies.S500_BAD_SYNTAX)
        if not verb_bytes.isascii() or not verb_bytes.isalpha():
            return BadCommand(replies.S500_UNRECOGNIZED)
        verb = verb_bytes.decode("ascii").upper()
        if verb not in VERBS:
            return BadCommand(replies.S500_UNRECOGNIZED)
        arg = arg_bytes.strip(b" ").decode("utf-8", "surrogateescape") or None
        return Command(verb, arg)

    def _line(self) -> Event | _NeedData:
        line = self._take_line(MAX_RESPONSE_LINE)
        if line is NEED_DATA:
            return NEED_DATA
        self.mode = Mode.COMMAND
        if line is None:
            return Line(b"", too_long=True)
        return Line(line.strip())

    def _data(self) -> Event | _NeedData:
        buf = self._buffer
        end = buf.find(b"\r\n.\r\n")
        if end >= 0:
            with memoryview(buf) as view:  # one copy of the piece (bytes(buf[a:b]) made two)
                data = view[self._skip : end + 2].tobytes()
            del buf[: end + 5]
            self._skip = 0
            self.mode = Mode.COMMAND
            return DataChunk(data, end=True)
        cut = len(buf) - 4  # the last 4 octets may be "\r\n.\r"'s start: they wait
        if cut <= self._skip:
            return NEED_DATA
        with memoryview(buf) as view:
            data = view[self._skip : cut].tobytes()
        del buf[:cut]
        self._skip = 0
        return DataChunk(data, end=False)

    def _chunk(self) -> Event | _NeedData:
        buf = self._buffer
        if self._remaining and not buf:
            return NEED_DATA
        take = min(self._remaining, len(buf))
        with memoryview(buf) as view:
            data = view[:take].tobytes()
        del buf[:take]
        self._remaining -= take
        if self._remaining:
            return DataChunk(data, end=False)
        self.mode = Mode.COMMAND
        return DataChunk(data, end=True)

    # --- PROXY (before the greeting) ----------------------------------------------------------

    def proxy_header(self) -> proxy.ProxyHeader | _NeedData:
        """The PROXY v1 or v2 header at the start of the input (removed from it), or
        NEED_DATA; raises proxy.ProxyHeaderError when the input starts with anything else."""
        buf = self._buffer
        head = bytes(buf[:16])
        if not head:
            return NEED_DATA
        if head.startswith(b"P"):
            if not b"PROXY ".startswith(head[:6]):
                raise proxy.ProxyHeaderError("no PROXY header")
            if len(head) < 6:
                return NEED_DATA
            end = buf.find(b"\r\n", 0, proxy.V1_MAX)
            if end < 0:
                if len(buf) >= proxy.V1_MAX:
                    raise proxy.ProxyHeaderError("PROXY v1 line too long")
                return NEED_DATA
            line = bytes(buf[: end + 2])
            del buf[: end + 2]
            return proxy.parse_v1(line)
        if proxy.V2_SIGNATURE.startswith(head[:12]):
            if len(head) < 16:
                return NEED_DATA
            (length,) = struct.unpack("!H", head[14:16])
            if length > proxy.V2_MAX_BODY:
                raise proxy.ProxyHeaderError("PROXY v2 body too long")
            if len(buf) < 16 + length:
                return NEED_DATA
            body = bytes(buf[16 : 16 + length])
            del buf[: 16 + length]
            return proxy.parse_v2(head, body)
        raise proxy.ProxyHeaderError("no PROXY header")
