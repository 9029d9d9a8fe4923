"""editheader (RFC 5293): addheader and deleteheader, seen by the later tests."""

from __future__ import annotations

import re

from mailboxes.sieve import actions as act
from mailboxes.sieve.check import FIELD_NAME
from mailboxes.sieve.errors import SieveRuntimeError
from mailboxes.sieve.interpreter import Frame, Run
from mailboxes.sieve.parser import Command

# RFC 5293 6: what editheader may not touch (Pigeonhole protects the same two).
PROTECTED_HEADERS = frozenset({"received", "auto-submitted"})


def _addheader(run: Run, frame: Frame, node: Command) -> None:
    name = run.string(frame, node.positional[0])
    value = run.string(frame, node.positional[1])
    if not FIELD_NAME.match(name):
        raise SieveRuntimeError(f"invalid header field name {name!r}")
    if name.lower() in PROTECTED_HEADERS:
        return  # RFC 5293 6: silently left alone
    last = ":last" in node.tagged
    # RFC 5293 4: a folded value is unfolded (RFC 5322 2.2.3); a line end not followed by
    # white space cannot be in a field and becomes a space.
    value = re.sub(r"\r?\n(?=[ \t])", "", value).replace("\r\n", " ").replace("\n", " ")
    run.message.add(name, value, last)
    run.edits.append(act.AddHeader(name=name, value=value, last=last))


def _deleteheader(run: Run, frame: Frame, node: Command) -> None:
    name = run.string(frame, node.positional[0])
    if not FIELD_NAME.match(name) or name.lower() in PROTECTED_HEADERS:
        return
    values = run.message.decoded(name)
    positions = list(range(1, len(values) + 1))
    index = node.tagged.get(":index")
    if index:
        n = index[1].value
        if ":last" in node.tagged:
            n = len(values) + 1 - n
        positions = [n] if 1 <= n <= len(values) else []
    if len(node.positional) == 2:
        keys = run.strings(frame, node.positional[1])
        positions = [p for p in positions if run.match(frame, node, [values[p - 1]], keys)]
    if positions:
        run.message.delete(name, set(positions))
        run.edits.append(act.DeleteHeader(name=name, occurrences=tuple(positions)))


COMMANDS = {"addheader": _addheader, "deleteheader": _deleteheader}
