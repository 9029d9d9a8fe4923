"""POP3 session states and the one table of commands each allows (RFC 1939 3, 4-6).

AUTHORIZATION until a login succeeds, TRANSACTION while the maildrop is open, UPDATE after
QUIT from TRANSACTION (the marked messages are removed, then the connection closes).
"""

from __future__ import annotations

import enum

from protocols.pop3 import parser


class State(enum.Enum):
    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"


ALLOWED: dict[State, frozenset[type]] = {
    # RFC 1939 4 and 7; CAPA anywhere (RFC 2449 5); STLS before login only (RFC 2595 4);
    # AUTH before login only (RFC 5034 4).
    State.AUTHORIZATION: frozenset(
        {parser.User, parser.Pass, parser.Auth, parser.Capa, parser.Stls, parser.Quit}
    ),
    # RFC 1939 5 and 7
    State.TRANSACTION: frozenset(
        {
            parser.Stat,
            parser.List,
            parser.Retr,
            parser.Dele,
            parser.Noop,
            parser.Rset,
            parser.Top,
            parser.Uidl,
            parser.Capa,
            parser.Quit,
        }
    ),
    # RFC 1939 6: the server answers QUIT and closes; nothing more is read.
    State.UPDATE: frozenset(),
}


def allowed(state: State, command: object) -> bool:
    return type(command) in ALLOWED[state]
