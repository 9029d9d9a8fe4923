"""IMAP status replies as values and named constants (RFC 9051 7.1; response codes 7.1), and
how values are written on the wire (strings, literals, mailbox names, flag lists, sets).

Transcript tests compare against these constants, so the wording lives in one place. The other
untagged responses are values of protocols/imap/untagged.py, written by its `wire`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from protocols.imap import utf7

CRLF = b"\r\n"


@dataclass(frozen=True)
class Reply:
    status: str  # OK NO BAD BYE PREAUTH
    text: str
    code: str | None = None

    def tagged(self, tag: str) -> bytes:
        return f"{tag} {self._body()}\r\n".encode()

    def untagged(self) -> bytes:
        return f"* {self._body()}\r\n".encode()

    def with_code(self, code: str | None) -> Reply:
        return replace(self, code=code)

    def with_text(self, text: str) -> Reply:
        return replace(self, text=text)

    def _body(self) -> str:
        code = f"[{self.code}] " if self.code else ""
        return f"{self.status} {code}{self.text}"


# --- Fixed replies ------------------------------------------------------------------------

OK_COMPLETED = Reply("OK", "Completed")
OK_LOGGED_IN = Reply("OK", "Logged in")
OK_LOGOUT = Reply("OK", "Logout completed")
OK_BEGIN_TLS = Reply("OK", "Begin TLS negotiation now")
OK_IDLE_DONE = Reply("OK", "IDLE terminated")
OK_SELECT_RW = Reply("OK", "SELECT completed", "READ-WRITE")
OK_SELECT_RO = Reply("OK", "SELECT completed", "READ-ONLY")  # RFC 4314 4: no write right
OK_EXAMINE_RO = Reply("OK", "EXAMINE completed", "READ-ONLY")
OK_CLOSED = Reply("OK", "Previous mailbox closed", "CLOSED")
OK_NOOP = Reply("OK", "NOOP completed")
OK_CAPABILITY = Reply("OK", "CAPABILITY completed")

BYE_LOGOUT = Reply("BYE", "Logging out")
BYE_TIMEOUT = Reply("BYE", "Autologout; idle for too long", "UNAVAILABLE")
BYE_TOO_MANY_CONNECTIONS = Reply("BYE", "Too many connections", "UNAVAILABLE")
BYE_TOO_MANY_COMMANDS = Reply("BYE", "Too many commands before authentication")
BYE_TOO_MANY_FAILURES = Reply("BYE", "Too many authentication failures")
BYE_SHUTDOWN = Reply("BYE", "Server shutting down", "UNAVAILABLE")
BYE_LITERAL_TOO_BIG = Reply("BYE", "Literal too large; closing", "TOOBIG")
BYE_MAILBOX_DELETED = Reply("BYE", "Selected mailbox was deleted")
BYE_SIGNED_OUT = Reply("BYE", "Signed out: the account's password was changed")

BAD_STATE = Reply("BAD", "Command not allowed in this state")
BAD_NOT_SELECTED = Reply("BAD", "No mailbox selected")
BAD_TLS_ACTIVE = Reply("BAD", "TLS is already active")
BAD_SEARCHRES_EMPTY = Reply("BAD", "No saved search result")
BAD_BASE64 = Reply("BAD", "Invalid base64")
BAD_AUTH_CANCELLED = Reply("BAD", "Authentication cancelled")
BAD_INVALID_SEQUENCE = Reply("BAD", "Invalid message sequence number")
BAD_CONDSTORE_OFF = Reply("BAD", "QRESYNC must be enabled first")
# RFC 9586 3: once UIDONLY is enabled, no command may name messages by sequence number.
BAD_UID_REQUIRED = Reply(
    "BAD", "Message sequence numbers are not used once UIDONLY is on", "UIDREQUIRED"
)

NO_AUTH_FAILED = Reply("NO", "Authentication failed", "AUTHENTICATIONFAILED")
# Two-factor sign-in is on: the main password is for the web; mail clients use app passwords.
NO_AUTH_APP_PASSWORD = Reply(
    "NO",
    "Two-factor sign-in is on for this account: use an app password (webmail Settings)",
    "AUTHENTICATIONFAILED",
)
# RFC 5530 3: UNAVAILABLE, a temporary failure; the limiter did not check the password.
NO_AUTH_THROTTLED = Reply("NO", "Too many failed logins; try again later", "UNAVAILABLE")
NO_PRIVACY_REQUIRED = Reply("NO", "Plaintext authentication disallowed", "PRIVACYREQUIRED")
NO_UNKNOWN_MECHANISM = Reply("NO", "Unsupported authentication mechanism", "CANNOT")
NO_TOO_MANY_CONNECTIONS = Reply("NO", "Too many connections for this user", "LIMIT")
NO_NONEXISTENT = Reply("NO", "Mailbox does not exist", "NONEXISTENT")
NO_TRYCREATE = Reply("NO", "Mailbox does not exist", "TRYCREATE")
NO_ALREADY_EXISTS = Reply("NO", "Mailbox already exists", "ALREADYEXISTS")
NO_CANNOT = Reply("NO", "Operation not permitted", "CANNOT")
NO_INBOX_DELETE = Reply("NO", "INBOX cannot be deleted", "CANNOT")
NO_HAS_CHILDREN = Reply("NO", "Mailbox has children; delete them first", "HASCHILDREN")
NO_OVER_QUOTA = Reply("NO", "Quota exceeded", "OVERQUOTA")
# The disk (or the database) is full: RFC 5530 has no code of its own for it.
NO_NO_SPACE = Reply("NO", "Not enough disk space", "OVERQUOTA")
NO_TOO_BIG = Reply("NO", "Message too large", "TOOBIG")
NO_READ_ONLY = Reply("NO", "Mailbox is read-only", "READ-ONLY")
NO_SERVERBUG = Reply("NO", "Internal error; try again later", "SERVERBUG")
NO_EXPUNGE_ISSUED = Reply("NO", "Some messages were expunged", "EXPUNGEISSUED")
OK_EXPUNGE_ISSUED = Reply("OK", "Completed; some messages were expunged", "EXPUNGEISSUED")
NO_UIDVALIDITY_CHANGED = Reply("NO", "UIDVALIDITY changed", "UIDVALIDITY")
NO_LIMIT = Reply("NO", "Too many keywords", "LIMIT")  # RFC 5530 3
NO_BAD_CHARSET = Reply("NO", "Unsupported charset", "BADCHARSET (US-ASCII UTF-8)")
NO_BAD_NAME = Reply("NO", "Invalid mailbox name", "CANNOT")
NO_LOGIN_DISABLED = Reply("NO", "LOGIN is disabled before STARTTLS", "PRIVACYREQUIRED")
NO_PERMISSION = Reply("NO", "Permission denied", "NOPERM")  # RFC 4314 4
NO_USE_ATTR = Reply("NO", "Unsupported special-use attribute", "USEATTR")

CONTINUE_LITERAL = b"+ Ready for literal data\r\n"
CONTINUE_IDLE = b"+ idling\r\n"
CONTINUE_AUTH = b"+ \r\n"


# --- Values -----------------------------------------------------------------------------


def quoted_or_literal(value: str | bytes, *, utf8: bool = True) -> bytes:
    """A string as a quoted string when it can be one, else as a literal (RFC 9051 4.3)."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if (
        len(data) < 1024
        and b"\r" not in data
        and b"\n" not in data
        and b"\0" not in data
        and (utf8 or data.isascii())
    ):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


def nstring(value: str | bytes | None, *, utf8: bool = True) -> bytes:
    return b"NIL" if value is None else quoted_or_literal(value, utf8=utf8)


def mailbox_name(name: str, *, utf8: bool = False) -> bytes:
    """A mailbox name on the wire: UTF-8 after UTF8=ACCEPT, modified UTF-7 otherwise."""
    if name == "INBOX":
        return b"INBOX"
    wire = name if utf8 else utf7.encode(name)
    return quoted_or_literal(wire, utf8=utf8)


def flag_list(flags: Iterable[str]) -> str:
    return "(" + " ".join(flags) + ")"


def sequence_text(numbers: Iterable[int]) -> str:
    """Compress sorted numbers into a sequence set: 1:3,5,7:9 (empty input: empty text)."""
    parts: list[str] = []
    start = prev = None
    for n in sorted(set(numbers)):
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            parts.append(str(start) if start == prev else f"{start}:{prev}")
            start = prev = n
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(parts)
