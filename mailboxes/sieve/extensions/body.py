"""body (RFC 5173): :raw, :content and :text over the MIME parts (message.py decodes them)."""

from __future__ import annotations

from mailboxes.sieve import message as msg
from mailboxes.sieve.interpreter import Frame, Run
from mailboxes.sieve.parser import Test


def _body(run: Run, frame: Frame, node: Test) -> bool:
    """RFC 5173: :text (default) the text parts decoded, :content the given types, :raw."""
    keys = run.strings(frame, node.positional[0])
    transform, content = node.tagged.get("transform", (":text", None))
    if transform == ":raw":
        values = msg.body_raw(run.message)
    elif transform == ":content":
        values = msg.body_parts(run.message, run.strings(frame, content))
    else:
        values = msg.body_parts(run.message, None)
    before = frame.match
    found = run.match(frame, node, values, keys)
    frame.match = before  # RFC 5173 6: wildcards in body never set the match variables
    return found


TESTS = {"body": _body}
