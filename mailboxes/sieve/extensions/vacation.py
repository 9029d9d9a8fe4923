"""vacation and vacation-seconds (RFC 5230, RFC 6131): the action; whether to send is the MDA's."""

from __future__ import annotations

import hashlib

from mailboxes.sieve import actions as act
from mailboxes.sieve.check import ADDRESS, _angle
from mailboxes.sieve.errors import SieveRuntimeError
from mailboxes.sieve.interpreter import Frame, Run
from mailboxes.sieve.parser import Command

DEFAULT_VACATION_DAYS = 7  # RFC 5230 4.1 leaves the default to us; Pigeonhole's


def _vacation(run: Run, frame: Frame, node: Command) -> None:
    reason = run.string(frame, node.positional[0])
    subject = run.tag_string(frame, node, ":subject")
    sender = run.tag_string(frame, node, ":from")
    handle = run.tag_string(frame, node, ":handle")
    addresses = node.tagged.get(":addresses")
    addresses = tuple(run.strings(frame, addresses[1])) if addresses else ()
    mime = ":mime" in node.tagged
    period = node.tagged.get("period")
    days = None
    if period is None:
        days = DEFAULT_VACATION_DAYS
        seconds = days * 86400
    elif period[0] == ":days":
        days = period[1].value
        seconds = days * 86400
    else:
        seconds = period[1].value
    if sender is not None and not ADDRESS.match(_angle(sender)):
        raise SieveRuntimeError(f"vacation :from is not a valid address: {sender!r}")
    if not handle:
        # RFC 5230 4.2: without :handle, the same arguments are the same vacation.
        key = "\0".join([reason, subject or "", sender or "", "mime" if mime else ""])
        handle = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    action = act.Vacation(
        reason=reason,
        subject=subject,
        from_address=sender,
        addresses=addresses,
        mime=mime,
        handle=handle,
        seconds=seconds,
        days=days,
    )
    run.add(action, cancels_keep=False)


COMMANDS = {"vacation": _vacation}
