"""Every ManageSieve reply (RFC 5804 1.2, 1.3, 4): named constants and small pure functions.

Replies are bytes with their CRLF. A response is `OK`, `NO` or `BYE`, an optional response
code in parentheses and an optional human-readable string, quoted when it fits on one line
(RFC 5804 4: at most 1024 octets, no CR/LF), a literal `{n}` otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

IMPLEMENTATION: Final = "Mailhost"
VERSION: Final = "1.0"
QUOTED_MAX: Final = 1024  # RFC 5804 4: quoted = DQUOTE *1024QUOTED-CHAR DQUOTE

# RFC 5804 1.3 response codes
ACTIVE: Final = "ACTIVE"
ALREADYEXISTS: Final = "ALREADYEXISTS"
AUTH_TOO_WEAK: Final = "AUTH-TOO-WEAK"
ENCRYPT_NEEDED: Final = "ENCRYPT-NEEDED"
NONEXISTENT: Final = "NONEXISTENT"
QUOTA: Final = "QUOTA"
QUOTA_MAXSCRIPTS: Final = "QUOTA/MAXSCRIPTS"
QUOTA_MAXSIZE: Final = "QUOTA/MAXSIZE"
TRYLATER: Final = "TRYLATER"
WARNINGS: Final = "WARNINGS"


def string(text: str | bytes) -> bytes:
    """A quoted string, or a literal when the text cannot be quoted (RFC 5804 4)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    if len(data) <= QUOTED_MAX and b"\r" not in data and b"\n" not in data and b"\0" not in data:
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


def response(status: str, text: str | None = None, code: str | bytes | None = None) -> bytes:
    line = status.encode("ascii")
    if code is not None:
        line += b" (" + (code.encode("ascii") if isinstance(code, str) else code) + b")"
    if text is not None:
        line += b" " + string(text)
    return line + b"\r\n"


def ok(text: str | None = None, code: str | bytes | None = None) -> bytes:
    return response("OK", text, code)


def no(text: str, code: str | bytes | None = None) -> bytes:
    return response("NO", text, code)


def bye(text: str, code: str | bytes | None = None) -> bytes:
    return response("BYE", text, code)


# --- Greeting, capabilities, session --------------------------------------------------------

OK_GREETING: Final = ok("Mailhost ManageSieve ready.")
OK_CAPABILITY: Final = ok("Capability completed.")
OK_STARTTLS: Final = ok("Begin TLS negotiation now.")
OK_TLS_STARTED: Final = ok("TLS negotiation successful.")
OK_LOGGED_IN: Final = ok("Logged in.")
OK_LOGOUT: Final = ok("Logout completed.")
OK_UNAUTHENTICATED: Final = ok("Unauthenticate completed.")
OK_NOOP: Final = ok("NOOP completed.")

NO_TLS_ACTIVE: Final = no("TLS is already active.")
NO_ENCRYPT_NEEDED: Final = no(
    "Plaintext authentication disallowed on non-secure connections, use STARTTLS.",
    ENCRYPT_NEEDED,
)
NO_MECHANISM: Final = no("Unsupported SASL mechanism.")
# RFC 5804 2.1: an initial response with a mechanism whose server speaks first (LOGIN) is refused.
NO_INITIAL_RESPONSE: Final = no("This mechanism takes no initial response.")
NO_AUTH_FAILED: Final = no("Authentication failed.")
NO_AUTH_APP_PASSWORD: Final = no("Two-factor sign-in is on for this account: use an app password.")
NO_AUTH_CANCELLED: Final = no("Authentication cancelled.")
NO_AUTH_MALFORMED: Final = no("Malformed SASL response.")
# The shared limiter refused the attempt without checking the password (RFC 5804 1.3 TRYLATER).
NO_AUTH_THROTTLED: Final = no("Too many failed logins, try again later.", TRYLATER)
BYE_AUTH_FAILURES: Final = bye("Too many failed logins, closing connection.")

NO_UNKNOWN_COMMAND: Final = no("Unknown command.")
NO_WRONG_STATE_AUTH: Final = no("Log in first.")
NO_WRONG_STATE_LOGGED_IN: Final = no("Already logged in.")
BYE_TOO_MANY_ERRORS: Final = bye("Too many invalid commands, closing connection.")
BYE_LINE_TOO_LONG: Final = bye("Command line too long, closing connection.")
BYE_LITERAL_TOO_LARGE: Final = bye("Literal too large, closing connection.")
BYE_IDLE: Final = bye("Disconnected for inactivity.", TRYLATER)
BYE_TOO_MANY_CONNECTIONS: Final = bye("Too many connections, try again later.", TRYLATER)
BYE_SHUTDOWN: Final = bye("Server shutting down, try again later.", TRYLATER)
BYE_SIGNED_OUT: Final = bye("Signed out: the account's password was changed.")
NO_SERVER_ERROR: Final = no("Internal server error, try again later.", TRYLATER)

# --- Scripts (RFC 5804 2.5 - 2.12) ------------------------------------------------------

OK_PUTSCRIPT: Final = ok("PUTSCRIPT completed.")
OK_CHECKSCRIPT: Final = ok("Script is valid.")
OK_HAVESPACE: Final = ok("Putscript would succeed.")
OK_LISTSCRIPTS: Final = ok("Listscripts completed.")
OK_SETACTIVE: Final = ok("Setactive completed.")
OK_GETSCRIPT: Final = ok("Getscript completed.")
OK_DELETESCRIPT: Final = ok("Deletescript completed.")
OK_RENAMESCRIPT: Final = ok("Renamescript completed.")
NO_NONEXISTENT: Final = no("There is no script by that name.", NONEXISTENT)
NO_ACTIVE: Final = no("You may not delete an active script.", ACTIVE)
NO_ALREADYEXISTS: Final = no("A script with that name already exists.", ALREADYEXISTS)
NO_INVALID_NAME: Final = no("Invalid script name.")
NO_NOT_UTF8: Final = no("Script is not valid UTF-8.")
NO_LITERAL_TOO_LARGE: Final = no("Script is too large.", QUOTA_MAXSIZE)
# RFC 5804 2.12: CHECKSCRIPT checks no quota, so its refusal of an oversized literal has no code.
NO_CHECK_TOO_LARGE: Final = no("Script is too large to check.")
NO_LITERAL_TOO_LARGE_OTHER: Final = no("Literal too large.")
NO_EMPTY_SCRIPT: Final = no("Script is empty.")  # RFC 5804 2.6: zero length SHOULD be refused


def no_syntax(text: str) -> bytes:
    return no(f"Syntax error: {text}.")


def no_quota(resource: str, text: str) -> bytes:
    """resource: "MAXSCRIPTS" or "MAXSIZE" (RFC 5804 1.3 QUOTA/...)."""
    return no(text[:1].upper() + text[1:] + ".", f"{QUOTA}/{resource}")


def no_script_errors(errors: Iterable[object]) -> bytes:
    """PUTSCRIPT/CHECKSCRIPT of a script that does not compile: one line per error (a
    literal when there are several), as Pigeonhole answers: `line N: message`."""
    lines = []
    for error in errors:
        line, column = getattr(error, "line", None), getattr(error, "column", None)
        message = getattr(error, "message", str(error))
        where = f"line {line}" + (f", column {column}" if column else "") if line else ""
        lines.append(f"{where}: {message}" if where else str(message))
    return no("\r\n".join(lines) or "Invalid script.")


def ok_noop(tag: str | None) -> bytes:
    # RFC 5804 2.13: the tag comes back in a TAG response code.
    if tag is None:
        return OK_NOOP
    return ok("Done", b"TAG " + string(tag))


def ok_sasl(data: bytes) -> bytes:
    """Success with additional data (RFC 5804 2.1: SASL response code)."""
    return ok(None, b"SASL " + string(data))


def sasl_challenge(challenge: bytes) -> bytes:
    """RFC 5804 2.1: a server challenge is a string of base64 text."""
    return string(challenge) + b"\r\n"


def capabilities(
    *,
    sieve_extensions: Iterable[str],
    sasl: Iterable[str],
    starttls: bool,
    max_redirects: int,
    notify: Iterable[str],
    owner: str | None,
) -> bytes:
    """RFC 5804 1.7 capability lines, without the OK line."""
    lines = [
        b'"IMPLEMENTATION" ' + string(IMPLEMENTATION),
        b'"SIEVE" ' + string(" ".join(sieve_extensions)),
    ]
    notify = list(notify)
    if notify:
        lines.append(b'"NOTIFY" ' + string(" ".join(notify)))
    lines.append(b'"SASL" ' + string(" ".join(sasl)))
    if starttls:
        lines.append(b'"STARTTLS"')
    lines.append(b'"MAXREDIRECTS" ' + string(str(max_redirects)))  # RFC 5804 1.7: 0 is valid
    if owner is not None:
        lines.append(b'"OWNER" ' + string(owner))
    lines.append(b'"UNAUTHENTICATE"')
    lines.append(b'"VERSION" ' + string(VERSION))
    return b"".join(line + b"\r\n" for line in lines)


def script_list(entries: Iterable[tuple[str, bool]]) -> bytes:
    """LISTSCRIPTS lines (RFC 5804 2.7): the name, and ACTIVE after the active one."""
    return b"".join(
        string(name) + (b" ACTIVE" if active else b"") + b"\r\n" for name, active in entries
    )


def script_body(text: str) -> bytes:
    """GETSCRIPT's literal (RFC 5804 2.9), and the CRLF ending its line."""
    data = text.encode("utf-8")
    return b"{%d}\r\n" % len(data) + data + b"\r\n"
