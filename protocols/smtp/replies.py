"""Every SMTP reply Mailhost sends, by name: reply code, RFC 3463 enhanced status, text.

Tests compare what the server sends against these constants. Replies with a `{}` field are
filled in with `reply.format(...)`. The greeting, the HELO/EHLO replies and the 3xx
intermediate replies carry no enhanced status (RFC 2034 3).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Reply:
    code: int
    status: str  # RFC 3463 enhanced status code, "" where none is sent
    text: str
    # The reply as sent on the wire (UTF-8: addresses may be SMTPUTF8), made with the reply:
    # the named constants are sent over and over, four of them a message, and a formatted
    # reply is made to be sent.
    line: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        wire = str(self).encode("utf-8", "surrogateescape") + b"\r\n"
        object.__setattr__(self, "line", wire)  # frozen: set once, here

    def __str__(self) -> str:
        if self.status:
            return f"{self.code} {self.status} {self.text}"
        return f"{self.code} {self.text}"

    def format(self, *args: object, **kwargs: object) -> Reply:
        return Reply(self.code, self.status, self.text.format(*args, **kwargs))

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return self.code >= 500


# --- Connection ------------------------------------------------------------------------------

S220_GREETING = Reply(220, "", "{} ESMTP Mailhost")
S221_BYE = Reply(221, "2.0.0", "Bye")
S421_TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "{} Too many connections, try again later")
S421_TOO_MANY_FROM_ADDRESS = Reply(
    421, "4.7.0", "{} Too many connections from your address, try again later"
)
S421_SHUTTING_DOWN = Reply(421, "4.3.2", "{} Service shutting down, try again later")
S421_TIMEOUT = Reply(421, "4.4.2", "{} Timeout, closing connection")
# RFC 5321 3.8: a server that closes the connection says 421 first (4.4.2: connection dropped).
S421_DATA_TOO_SLOW = Reply(421, "4.4.2", "{} Message transfer took too long, closing connection")
S421_TOO_MANY_ERRORS = Reply(421, "4.7.0", "{} Too many errors, closing connection")

# --- Generic ---------------------------------------------------------------------------------

S250_OK = Reply(250, "2.0.0", "OK")
S250_RESET = Reply(250, "2.0.0", "Reset state")
S250_NOOP = Reply(250, "2.0.0", "OK")
S252_VRFY = Reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
S214_HELP = Reply(214, "2.0.0", "See https://www.rfc-editor.org/rfc/rfc5321")
S500_UNRECOGNIZED = Reply(500, "5.5.1", "Command not recognized")
S500_LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long")
S500_BAD_SYNTAX = Reply(500, "5.5.2", "Syntax error")
S500_BARE_LINE_ENDING = Reply(500, "5.5.2", "Bare CR or LF in command line not allowed")
S500_NON_ASCII = Reply(500, "5.5.2", "Non-ASCII command not allowed")
S501_SYNTAX = Reply(501, "5.5.4", "Syntax: {}")
S502_NOT_IMPLEMENTED = Reply(502, "5.5.1", "Command not implemented")
S503_BAD_SEQUENCE = Reply(503, "5.5.1", "Bad sequence of commands: {}")
S504_PARAMETER = Reply(504, "5.5.4", "Parameter not implemented: {}")
S555_PARAMETER = Reply(555, "5.5.4", "Parameter not recognized: {}")
S501_REQUIRETLS_VALUE = Reply(501, "5.5.4", "REQUIRETLS takes no value")
S451_LOCAL_ERROR = Reply(451, "4.3.0", "Local error, try again later")

# --- EHLO ------------------------------------------------------------------------------------

S250_HELO = Reply(250, "", "{}")  # "250 <hostname>"
S501_HELO_SYNTAX = Reply(501, "5.5.4", "Syntax: {} hostname")

# --- STARTTLS (RFC 3207) ---------------------------------------------------------------------

S220_READY_TLS = Reply(220, "2.0.0", "Ready to start TLS")
S454_TLS_UNAVAILABLE = Reply(454, "4.7.0", "TLS not available")
S503_TLS_ALREADY = Reply(503, "5.5.1", "TLS already active")
S530_STARTTLS_FIRST = Reply(530, "5.7.0", "Must issue a STARTTLS command first")
# RFC 8689 4.1: REQUIRETLS is offered, and taken, only on a session protected by TLS.
# RFC 5321 6.3, RFC 5248: a loop, seen by counting Received fields.
S554_TOO_MANY_HOPS = Reply(554, "5.4.14", "Hop count exceeded - possible mail loop")
S530_REQUIRETLS_NEEDS_TLS = Reply(530, "5.7.10", "REQUIRETLS needs a TLS session")

# --- AUTH (RFC 4954) -------------------------------------------------------------------------

S235_AUTH_OK = Reply(235, "2.7.0", "Authentication successful")
S334_CHALLENGE = Reply(334, "", "{}")
S501_AUTH_CANCELLED = Reply(501, "5.7.0", "Authentication cancelled")
S501_AUTH_BASE64 = Reply(501, "5.5.2", "Cannot decode base64")
S501_AUTH_SYNTAX = Reply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]")
S503_AUTH_ALREADY = Reply(503, "5.5.1", "Already authenticated")
S503_AUTH_IN_TRANSACTION = Reply(503, "5.5.1", "AUTH not allowed during a mail transaction")
S503_AUTH_NOT_OFFERED = Reply(503, "5.5.1", "AUTH not available on this port")
S504_AUTH_MECHANISM = Reply(504, "5.5.4", "Unrecognized authentication mechanism")
S530_AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")
S535_AUTH_FAILED = Reply(535, "5.7.8", "Authentication credentials invalid")
# Two-factor sign-in is on: the main password is for the web; mail clients use app passwords.
S535_AUTH_APP_PASSWORD = Reply(
    535, "5.7.8", "Two-factor sign-in is on for this account: use an app password"
)
S538_ENCRYPTION_REQUIRED = Reply(
    538, "5.7.11", "Encryption required for requested authentication mechanism"
)
S454_AUTH_TEMPORARY = Reply(454, "4.7.0", "Temporary authentication failure")

# --- MAIL FROM -------------------------------------------------------------------------------

S250_SENDER_OK = Reply(250, "2.1.0", "Sender OK")
S501_MAIL_SYNTAX = Reply(501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]")
S503_NESTED_MAIL = Reply(503, "5.5.1", "Sender already specified")
S553_BAD_SENDER_SYNTAX = Reply(553, "5.1.7", "Malformed sender address")
S553_SENDER_NOT_OWNED = Reply(553, "5.7.1", "Sender address not owned by authenticated user")
S550_HOSTED_SENDER_UNAUTHENTICATED = Reply(
    550, "5.7.1", "Sender address in a domain hosted here requires authentication"
)
S501_SIZE = Reply(501, "5.5.4", "Invalid SIZE parameter")
S501_BODY = Reply(501, "5.5.4", "BODY must be 7BIT or 8BITMIME")
S501_RET = Reply(501, "5.5.4", "RET must be FULL or HDRS")
S501_ENVID = Reply(501, "5.5.4", "Invalid ENVID parameter")
S501_SMTPUTF8_VALUE = Reply(501, "5.5.4", "SMTPUTF8 takes no value")
S552_SIZE_EXCEEDED = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
S553_SMTPUTF8_REQUIRED = Reply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8")

# --- RCPT TO ---------------------------------------------------------------------------------

S250_RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
S501_RCPT_SYNTAX = Reply(501, "5.5.4", "Syntax: RCPT TO:<address> [parameters]")
S503_NEED_MAIL = Reply(503, "5.5.1", "Need MAIL command first")
S553_BAD_RECIPIENT_SYNTAX = Reply(553, "5.1.3", "Malformed recipient address")
S550_NO_SUCH_USER = Reply(550, "5.1.1", "No such user here")
# RFC 7489 6.7 / 15.4: the From domain's DMARC policy is reject and the message failed it.
S550_DMARC_REJECT = Reply(550, "5.7.1", "Email rejected per DMARC policy for {}")
S554_RELAY_DENIED = Reply(554, "5.7.1", "Relay access denied")
# RFC 5429 2.2: the recipient's Sieve script refused the message (ereject), its reason.
S550_SIEVE_REJECTED = Reply(550, "5.7.1", "{}")
S452_MAILBOX_FULL = Reply(452, "4.2.2", "Mailbox full, try again later")
S552_MAILBOX_FULL = Reply(552, "5.2.2", "Mailbox full: message exceeds the quota")
S452_TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")
S452_NO_SPACE = Reply(452, "4.3.1", "Insufficient system storage, try again later")
S553_SMTPUTF8_RECIPIENT = Reply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8")
S501_NOTIFY = Reply(501, "5.5.4", "Invalid NOTIFY parameter")
S501_ORCPT = Reply(501, "5.5.4", "Invalid ORCPT parameter")
# RFC 6647 2.1: greylisting answers a new (client, sender, recipient) triple with a 4xx.
S451_GREYLISTED = Reply(451, "4.7.1", "Greylisted, please try again later")

# --- DATA and BDAT (RFC 5321 4.1.1.4, RFC 3030) -----------------------------------------------

S354_START_DATA = Reply(354, "", "End data with <CR><LF>.<CR><LF>")
S503_NEED_RCPT = Reply(503, "5.5.1", "Need RCPT command first")
S503_NEED_HELO = Reply(503, "5.5.1", "Send HELO or EHLO first")
S503_DATA_AFTER_BDAT = Reply(503, "5.5.1", "DATA not allowed after BDAT")
S250_QUEUED = Reply(250, "2.0.0", "OK queued as {}")
S250_BDAT_CHUNK = Reply(250, "2.0.0", "{} octets received")
S550_BARE_LINE_ENDING = Reply(550, "5.6.0", "Bare CR or LF in message not allowed")
S550_NUL_IN_MESSAGE = Reply(550, "5.6.0", "NUL characters in message not allowed")
# RFC 5322 2.2.3: a folded line continues the field before it; a header section cannot
# start with one (a submission only: delivery.accept.header_start_check).
S550_HEADER_STARTS_FOLDED = Reply(550, "5.6.0", "Message header starts with a continuation line")
# RFC 5321 4.3.2: 500 is no reply to the end of data; 552 is, and 4.5.3.1 names it for data
# beyond a limit ("552 Too much mail data"); RFC 3463 X.3.4: too big for the system.
S552_DATA_LINE_TOO_LONG = Reply(552, "5.3.4", "Message line longer than {} octets")
S552_MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
S553_FROM_NOT_OWNED = Reply(553, "5.7.1", "From header address not owned by authenticated user")
S550_SPAM_REJECTED = Reply(550, "5.7.1", "Message refused as spam")
S554_NO_VALID_RECIPIENTS = Reply(554, "5.5.1", "No valid recipients")
S501_BDAT_SYNTAX = Reply(501, "5.5.4", "Syntax: BDAT chunk-size [LAST]")


@functools.lru_cache(maxsize=64)
def for_host(reply: Reply, hostname: str) -> Reply:
    """`reply.format(hostname)`, made once for each name: the greeting and HELO's reply name
    this server in every session (and their wire lines are then made once too)."""
    return reply.format(hostname)


# --- Names (the /metrics rejection reason) ------------------------------------------------------


@functools.cache
def _templates() -> tuple[tuple[int, str, re.Pattern[str], str], ...]:
    table = []
    for name, value in globals().items():
        if isinstance(value, Reply) and value.code >= 400:
            text = re.sub(r"\\\{[^}]*\\\}", ".*", re.escape(value.text))  # "{}" fields
            table.append((value.code, value.status, re.compile(text, re.S), name[5:].lower()))
    return tuple(table)


def reason(reply: Reply) -> str:
    """The name of the constant a (formatted) reply comes from, `S550_NO_SUCH_USER` ->
    `no_such_user`; `other` for a reply built elsewhere."""
    for code, status, text, name in _templates():
        if reply.code == code and reply.status == status and text.fullmatch(reply.text):
            return name
    return "other"
