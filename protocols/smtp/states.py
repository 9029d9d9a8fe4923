"""SMTP session states and the one table of what each refuses (RFC 5321 3.3, 4.1.4; RFC 3030).

CONNECTED until HELO or EHLO, GREETED between transactions, MAIL once a sender is accepted,
RCPT once a recipient is, BDAT while a message comes in chunks. DATA's message is read within
its command, so it is no state of its own. STARTTLS (RFC 3207 4.2) starts over at CONNECTED;
RSET and the end of a message go back to GREETED (CONNECTED before any HELO).

    refusal(State.GREETED, "RCPT", auth_required=False)  # S503_NEED_MAIL
    after(State.MAIL, "RCPT")                              # State.RCPT

The checks a command's arguments need (syntax, policy) are the session's and the handler's;
this table only says whether the command may come now, and what to answer when not.
"""

from __future__ import annotations

import enum
from typing import Final

from protocols.smtp import replies
from protocols.smtp.replies import Reply


class State(enum.Enum):
    CONNECTED = "connected"
    GREETED = "greeted"
    MAIL = "mail"
    RCPT = "rcpt"
    BDAT = "bdat"

    # A member is its one instance: hashed by identity in C, where Enum's own __hash__ is a
    # Python call (hash of the name) for each lookup in REFUSED and TRANSITIONS below, six
    # a message.
    __hash__ = object.__hash__


TRANSACTION: Final = frozenset({State.MAIL, State.RCPT, State.BDAT})

# Commands of a mail transaction: on the submission ports they need AUTH first (RFC 6409 4.3).
NEED_AUTH: Final = frozenset({"MAIL", "RCPT", "DATA", "BDAT"})

# Refusals by state; a command not listed for a state is allowed in it. HELO, EHLO, RSET,
# NOOP, QUIT, VRFY, EXPN, HELP and STARTTLS are allowed in every state.
REFUSED: Final[dict[State, dict[str, Reply]]] = {
    State.CONNECTED: {
        "MAIL": replies.S503_NEED_HELO,
        "RCPT": replies.S503_NEED_HELO,
        "DATA": replies.S503_NEED_HELO,
        "BDAT": replies.S503_NEED_HELO,
        "AUTH": replies.S503_NEED_HELO,
    },
    State.GREETED: {
        "RCPT": replies.S503_NEED_MAIL,
        "DATA": replies.S503_NEED_MAIL,
        "BDAT": replies.S503_NEED_MAIL,
    },
    State.MAIL: {
        "MAIL": replies.S503_NESTED_MAIL,
        # RFC 5321 3.3 / RFC 2920 3.1: MAIL was accepted but no recipient was.
        "DATA": replies.S554_NO_VALID_RECIPIENTS,
        "BDAT": replies.S554_NO_VALID_RECIPIENTS,
        "AUTH": replies.S503_AUTH_IN_TRANSACTION,
    },
    State.RCPT: {
        "MAIL": replies.S503_NESTED_MAIL,
        "AUTH": replies.S503_AUTH_IN_TRANSACTION,
    },
    State.BDAT: {
        "MAIL": replies.S503_NESTED_MAIL,
        "DATA": replies.S503_DATA_AFTER_BDAT,  # RFC 3030 3
        "AUTH": replies.S503_AUTH_IN_TRANSACTION,
    },
}


def refusal(state: State, verb: str, *, auth_required: bool) -> Reply | None:
    """The reply refusing `verb` in `state`, or None when it may come now. `auth_required`:
    a submission port whose client has not authenticated."""
    if state is not State.CONNECTED and auth_required and verb in NEED_AUTH:
        return replies.S530_AUTH_REQUIRED
    return REFUSED[state].get(verb)


# Where a command that succeeded leads; a pair not listed leaves the state as it is. "BDAT
# LAST" stands for the chunk that ends the transaction (the last one, or one that failed), as
# DATA's message does whatever its reply.
TRANSITIONS: Final[dict[tuple[State, str], State]] = {
    **{(state, verb): State.GREETED for state in State for verb in ("HELO", "EHLO")},
    **{(state, "STARTTLS"): State.CONNECTED for state in State},  # RFC 3207 4.2
    **{(state, "RSET"): State.GREETED for state in State if state is not State.CONNECTED},
    (State.GREETED, "MAIL"): State.MAIL,
    (State.MAIL, "RCPT"): State.RCPT,
    (State.RCPT, "BDAT"): State.BDAT,
    (State.RCPT, "BDAT LAST"): State.GREETED,
    (State.BDAT, "BDAT LAST"): State.GREETED,
    (State.RCPT, "DATA"): State.GREETED,
}


def after(state: State, verb: str) -> State:
    """The state after `verb` succeeded in `state`."""
    return TRANSITIONS.get((state, verb), state)
