"""What the server announces in CAPABILITY (RFC 9051 7.2.2), from the connection's state: before
login what one may log in with (STARTTLS, AUTH=, LOGINDISABLED), after it every extension."""

from __future__ import annotations

from django.conf import settings

from protocols.imap.states import State

BASE = ("IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE")
# After login, in the order announced; COMPRESS=DEFLATE and APPENDLIMIT are added by
# `capabilities` (COMPRESS only while not compressing yet, RFC 4978 3).
AUTHENTICATED = (
    "NAMESPACE",
    "UNSELECT",
    "UIDPLUS",
    "MOVE",
    "CHILDREN",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "SPECIAL-USE",
    "CREATE-SPECIAL-USE",
    "STATUS=SIZE",
    "ESEARCH",
    "SEARCHRES",
    "SORT",
    "SORT=DISPLAY",
    "ESORT",
    "THREAD=ORDEREDSUBJECT",
    "THREAD=REFERENCES",
    "QUOTA",
    "QUOTA=RES-STORAGE",
    "QUOTA=RES-MESSAGE",
    "ACL",
    "RIGHTS=texk",
    "METADATA",
    "METADATA-SERVER",
    "LIST-METADATA",
    "NOTIFY",
    "MULTIAPPEND",
    "UNAUTHENTICATE",
    "OBJECTID",
    "PREVIEW",
    "REPLACE",
    "SAVEDATE",
    "MULTISEARCH",
    "CONTEXT=SEARCH",
    "CONTEXT=SORT",
    "INPROGRESS",
    "UIDONLY",
)
AFTER_COMPRESS = ("CONDSTORE", "QRESYNC", "UTF8=ACCEPT", "BINARY")


def plaintext_ok(*, tls: bool) -> bool:
    """Whether a password may be sent on this connection (RFC 9051 6.2.3, 11.1)."""
    return tls or settings.MAILHOST_ALLOW_PLAINTEXT_AUTH


def capabilities(
    state: State, *, tls: bool, starttls_allowed: bool, compressing: bool
) -> tuple[str, ...]:
    if state == State.NOT_AUTHENTICATED:
        before = ("STARTTLS",) if starttls_allowed and not tls else ()
        login = "AUTH=PLAIN" if plaintext_ok(tls=tls) else "LOGINDISABLED"
        return (*BASE, *before, login)
    return (
        *BASE,
        *AUTHENTICATED,
        *(() if compressing else ("COMPRESS=DEFLATE",)),
        *AFTER_COMPRESS,
        f"APPENDLIMIT={settings.MAILHOST_MAX_MESSAGE_SIZE}",
    )


def of(session) -> tuple[str, ...]:
    """The capabilities of a session (its state, TLS and compression)."""
    return capabilities(
        session.state,
        tls=session.tls,
        starttls_allowed=session.starttls_allowed,
        compressing=session.deflate is not None,
    )
