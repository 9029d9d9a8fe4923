"""Which commands each connection state allows (RFC 9051 3, figure 1): one table."""

from __future__ import annotations

from enum import Enum


class State(Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


ANY_STATE = frozenset({"CAPABILITY", "NOOP", "LOGOUT", "ID"})
NOT_AUTHENTICATED_ONLY = frozenset({"STARTTLS", "AUTHENTICATE", "LOGIN"})
AUTHENTICATED = frozenset(
    {
        "ENABLE",
        "SELECT",
        "EXAMINE",
        "CREATE",
        "DELETE",
        "RENAME",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "LIST",
        "LSUB",
        "NAMESPACE",
        "STATUS",
        "APPEND",
        "IDLE",
        "UNAUTHENTICATE",
        "COMPRESS",
        "ESEARCH",
        "GETQUOTA",
        "GETQUOTAROOT",
        "SETQUOTA",
        "SETACL",
        "DELETEACL",
        "GETACL",
        "LISTRIGHTS",
        "MYRIGHTS",
        "GETMETADATA",
        "SETMETADATA",
        "NOTIFY",
    }
)
SELECTED_ONLY = frozenset(
    {
        "CHECK",
        "CLOSE",
        "UNSELECT",
        "EXPUNGE",
        "UID EXPUNGE",
        "SEARCH",
        "SORT",
        "THREAD",
        "FETCH",
        "STORE",
        "COPY",
        "MOVE",
        "REPLACE",
        "CANCELUPDATE",
    }
)

# RFC 9586 3: the forms that name messages by sequence number, refused (BAD [UIDREQUIRED])
# once UIDONLY is enabled; their UID forms stay.
SEQUENCE_NUMBER_FORMS = frozenset(
    {"FETCH", "STORE", "SEARCH", "COPY", "MOVE", "REPLACE", "SORT", "THREAD"}
)

ALLOWED: dict[State, frozenset[str]] = {
    State.NOT_AUTHENTICATED: ANY_STATE | NOT_AUTHENTICATED_ONLY,
    State.AUTHENTICATED: ANY_STATE | AUTHENTICATED,
    State.SELECTED: ANY_STATE | AUTHENTICATED | SELECTED_ONLY,
    State.LOGOUT: frozenset(),
}


def allowed(state: State, command: str) -> bool:
    """`command` is the command name; UID commands by their base name except UID EXPUNGE."""
    return command in ALLOWED[state]


def uid_required(command) -> bool:
    """True for a command that numbers messages by sequence (FETCH, not UID FETCH): what
    UIDONLY refuses (RFC 9586 3)."""
    return command.name in SEQUENCE_NUMBER_FORMS and not getattr(command, "uid", False)
