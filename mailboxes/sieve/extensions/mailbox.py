"""mailbox (RFC 5490 3), mailboxid (RFC 9042) and special-use (RFC 8579) tests, answered by the
context's callbacks."""

from __future__ import annotations

from mailboxes.sieve.interpreter import Frame, Run
from mailboxes.sieve.parser import Test


def _mailboxexists(run: Run, frame: Frame, node: Test) -> bool:
    """RFC 5490 3.1 (and RFC 9042 4's mailboxidexists): true when every one exists."""
    callback = (
        run.context.mailbox_exists if node.name == "mailboxexists" else run.context.mailboxid_exists
    )
    names = run.strings(frame, node.positional[0])
    return callback is not None and all(callback(name) for name in names)


def _specialuse_exists(run: Run, frame: Frame, node: Test) -> bool:
    """RFC 8579 3: every attribute is on some folder, or on the named one."""
    mailbox = run.string(frame, node.positional[0]) if len(node.positional) == 2 else None
    attributes = run.strings(frame, node.positional[-1])
    callback = run.context.specialuse_exists
    if callback is None:
        return False
    if (
        mailbox is not None
        and run.context.mailbox_exists
        and not run.context.mailbox_exists(mailbox)
    ):
        return False
    return all(callback(mailbox, attribute) for attribute in attributes)


TESTS = {
    "mailboxexists": _mailboxexists,
    "mailboxidexists": _mailboxexists,
    "specialuse_exists": _specialuse_exists,
}
