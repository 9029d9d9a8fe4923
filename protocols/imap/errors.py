"""How a command handler ends other than with its reply: a leaf module, so commands and the
session both import it and neither imports the other."""

from __future__ import annotations

from protocols.imap import responses as r


class CommandError(Exception):
    """A handler refuses the command: the reply goes out tagged."""

    def __init__(self, reply: r.Reply):
        super().__init__(reply.text)
        self.reply = reply


class ConnectionDone(Exception):
    """The connection ends (LOGOUT, BYE, peer gone)."""
