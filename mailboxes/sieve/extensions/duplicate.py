"""duplicate (RFC 7352): the test, answered by the context's callback."""

from __future__ import annotations

import hashlib

from mailboxes.sieve.interpreter import Frame, Run
from mailboxes.sieve.parser import Test


def _duplicate(run: Run, frame: Frame, node: Test) -> bool:
    """RFC 7352 3: the message's Message-ID (or :header, or :uniqueid) seen before under
    this :handle. A message without that header is never a duplicate."""
    source = node.tagged.get("id")
    if source and source[0] == ":uniqueid":
        unique = run.string(frame, source[1])
    else:
        header = run.string(frame, source[1]) if source else "message-id"
        values = run.message.values(header)
        if not values:
            return False
        unique = values[0].strip()
    handle = run.tag_string(frame, node, ":handle", "")
    seconds = node.tagged[":seconds"][1].value if ":seconds" in node.tagged else 7 * 86400
    key = hashlib.sha256(f"{handle}\0{unique}".encode("utf-8", "surrogateescape")).hexdigest()
    callback = run.context.duplicate
    return bool(callback(key, seconds)) if callback else False


TESTS = {"duplicate": _duplicate}
