"""Every POP3 reply: named constants and small pure functions. Tests compare against these.

Lines are str without CRLF; `encode` adds it. Extended response codes in brackets follow
RFC 2449 8 ([IN-USE], [LOGIN-DELAY]) and RFC 3206 ([SYS/TEMP], [SYS/PERM], [AUTH]).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

# RFC 2449 8.1, RFC 3206 4
IN_USE: Final = "[IN-USE]"
LOGIN_DELAY: Final = "[LOGIN-DELAY]"
SYS_TEMP: Final = "[SYS/TEMP]"
SYS_PERM: Final = "[SYS/PERM]"
AUTH: Final = "[AUTH]"

TERMINATOR: Final = "."
IMPLEMENTATION: Final = "Mailhost"

# --- AUTHORIZATION --------------------------------------------------------------------------

OK_CAPA: Final = "+OK Capability list follows"
OK_STLS: Final = "+OK Begin TLS negotiation"
OK_USER: Final = "+OK Send PASS"
OK_AUTH_MECHANISMS: Final = "+OK Supported SASL mechanisms follow"
SASL_CONTINUE: Final = "+ "  # RFC 5034 4: PLAIN's server challenge is empty
ERR_TLS_ACTIVE: Final = "-ERR TLS is already active"
ERR_PASS_WITHOUT_USER: Final = "-ERR USER first"
ERR_PLAINTEXT_DISALLOWED: Final = (
    f"-ERR {AUTH} Plaintext authentication disallowed on non-secure connections, use STLS"
)
ERR_AUTH_FAILED: Final = f"-ERR {AUTH} Invalid user name or password"
ERR_AUTH_APP_PASSWORD: Final = (
    f"-ERR {AUTH} Two-factor sign-in is on for this account: use an app password"
)
# RFC 3206 4: SYS/TEMP, a transient failure; the limiter did not check the password.
ERR_AUTH_THROTTLED: Final = f"-ERR {SYS_TEMP} Too many failed logins, try again later"
ERR_AUTH_FAILED_CLOSING: Final = f"-ERR {AUTH} Too many failed logins, closing connection"
ERR_AUTH_MECHANISM: Final = "-ERR Unsupported SASL mechanism"
ERR_AUTH_CANCELLED: Final = "-ERR Authentication cancelled"
ERR_AUTH_MALFORMED: Final = "-ERR Malformed SASL response"
ERR_IN_USE: Final = f"-ERR {IN_USE} Maildrop is in use by another POP3 session"
ERR_LOGIN_DELAY: Final = f"-ERR {LOGIN_DELAY} Logged in too recently, try again later"
ERR_MAILDROP_UNAVAILABLE: Final = f"-ERR {SYS_PERM} Maildrop unavailable"

# --- TRANSACTION ----------------------------------------------------------------------------

OK: Final = "+OK"
OK_TOP: Final = "+OK Top of message follows"
OK_UIDL: Final = "+OK Unique-id listing follows"
ERR_NO_SUCH_MESSAGE: Final = "-ERR No such message"
ERR_MESSAGE_DELETED: Final = "-ERR Message is deleted"
ERR_MESSAGE_GONE: Final = "-ERR Message was removed by another session"

# --- UPDATE and sign-off --------------------------------------------------------------------

OK_BYE: Final = "+OK Logging out"
ERR_UPDATE_FAILED: Final = f"-ERR {SYS_TEMP} Some deleted messages were not removed"
# A newer login of the same mailbox took the maildrop over (MAILHOST_POP3_TAKEOVER): sent to
# the older session, idle or at its QUIT, before it closes; its DELE marks are discarded.
ERR_TAKEN_OVER: Final = f"-ERR {IN_USE} Maildrop taken over by a newer session, no message deleted"

# --- Errors in any state --------------------------------------------------------------------

ERR_UNKNOWN_COMMAND: Final = "-ERR Unknown command"
ERR_BAD_ARGUMENTS: Final = "-ERR Invalid arguments"
ERR_WRONG_STATE: Final = "-ERR Command not valid in this state"
ERR_LINE_TOO_LONG: Final = "-ERR Line too long"
ERR_TOO_MANY_ERRORS: Final = "-ERR Too many invalid commands, closing connection"
ERR_TOO_MANY_CONNECTIONS: Final = f"-ERR {SYS_TEMP} Too many connections, try again later"
ERR_SERVER: Final = f"-ERR {SYS_TEMP} Internal server error, try again later"
# Sent before the server closes a session when it stops (SIGTERM); RFC 3206 4: transient.
ERR_SHUTDOWN: Final = f"-ERR {SYS_TEMP} Server shutting down, try again later"
# Sent before the close when the account's password changed (RFC 3206 5: the credentials are
# no longer good); the session's DELE marks are discarded.
ERR_SIGNED_OUT: Final = f"-ERR {AUTH} Signed out: the account's password was changed"


def greeting(hostname: str) -> str:
    return f"+OK {hostname} POP3 server ready"


def ok_login(count: int, octets: int) -> str:
    return f"+OK Logged in, maildrop has {count} messages ({octets} octets)"


def ok_stat(count: int, octets: int) -> str:
    # RFC 1939 5 STAT: exactly "+OK nn mm"
    return f"+OK {count} {octets}"


def ok_list(count: int, octets: int) -> str:
    return f"+OK {count} messages ({octets} octets)"


def list_entry(number: int, octets: int) -> str:
    return f"{number} {octets}"


def ok_list_one(number: int, octets: int) -> str:
    return f"+OK {number} {octets}"


def ok_retr(octets: int) -> str:
    return f"+OK {octets} octets"


def ok_dele(number: int) -> str:
    return f"+OK Message {number} deleted"


def ok_rset(count: int, octets: int) -> str:
    return f"+OK Maildrop has {count} messages ({octets} octets)"


def uidl_entry(number: int, unique_id: str) -> str:
    return f"{number} {unique_id}"


def ok_uidl_one(number: int, unique_id: str) -> str:
    return f"+OK {number} {unique_id}"


def ok_bye_update(removed: int) -> str:
    return f"+OK Logging out, {removed} messages deleted"


def capabilities(
    *,
    stls: bool,
    login: bool,
    expire: str,
    login_delay: int,
) -> list[str]:
    """RFC 2449 6 capability lines (without the +OK line and terminator).

    `stls`: offer STLS (plain port, before TLS). `login`: USER and SASL are usable now.
    """
    lines = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
    if login:
        lines += ["USER", "SASL PLAIN"]
    if stls:
        lines.append("STLS")
    if expire:
        lines.append(f"EXPIRE {expire}")
    if login_delay:
        lines.append(f"LOGIN-DELAY {login_delay}")
    lines.append(f"IMPLEMENTATION {IMPLEMENTATION}")
    return lines


def encode(line: str) -> bytes:
    return line.encode("utf-8") + b"\r\n"


def multiline(first: str, lines: Iterable[str]) -> bytes:
    """A multi-line reply of short text lines (CAPA, LIST, UIDL); none starts with "."."""
    return b"".join([encode(first), *(encode(line) for line in lines), b".\r\n"])
