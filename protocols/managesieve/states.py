"""ManageSieve session states and the one table of commands each allows (RFC 5804 2).

NON_AUTHENTICATED until AUTHENTICATE succeeds; AUTHENTICATED until LOGOUT or
UNAUTHENTICATE (which goes back, RFC 5804 2.14). CAPABILITY, NOOP and LOGOUT work in both.
"""

from __future__ import annotations

import enum

from protocols.managesieve import parser


class State(enum.Enum):
    NON_AUTHENTICATED = "NON_AUTHENTICATED"
    AUTHENTICATED = "AUTHENTICATED"


_ANY = {parser.Capability, parser.Noop, parser.Logout}

ALLOWED: dict[State, frozenset[type]] = {
    # RFC 5804 2.1 (AUTHENTICATE), 2.2 (STARTTLS: before login only).
    State.NON_AUTHENTICATED: frozenset({parser.Authenticate, parser.StartTls, *_ANY}),
    State.AUTHENTICATED: frozenset(
        {
            parser.HaveSpace,
            parser.PutScript,
            parser.ListScripts,
            parser.SetActive,
            parser.GetScript,
            parser.DeleteScript,
            parser.RenameScript,
            parser.CheckScript,
            parser.Unauthenticate,
            *_ANY,
        }
    ),
}


def allowed(state: State, command: object) -> bool:
    return type(command) in ALLOWED[state]
