"""The core commands (RFC 5228 3, 4) a script runs, and the table of every command with the
extensions' (if/elsif/else are walked by interpreter.py itself)."""

from __future__ import annotations

from mailboxes.sieve import actions as act
from mailboxes.sieve.check import ADDRESS, SPECIAL_USE, _angle
from mailboxes.sieve.errors import SieveRuntimeError
from mailboxes.sieve.extensions import EXTENSION_COMMANDS
from mailboxes.sieve.extensions.imap4flags import flags_argument
from mailboxes.sieve.interpreter import Frame, Run, Stop
from mailboxes.sieve.parser import Command


def _stop(run: Run, frame: Frame, node: Command) -> None:
    raise Stop


def _keep(run: Run, frame: Frame, node: Command) -> None:
    run.add(act.Keep(flags=flags_argument(run, frame, node)), cancels_keep=True)


def _discard(run: Run, frame: Frame, node: Command) -> None:
    run.add(act.Discard(), cancels_keep=True)


def _fileinto(run: Run, frame: Frame, node: Command) -> None:
    mailbox = run.string(frame, node.positional[0])
    if not mailbox:
        raise SieveRuntimeError("fileinto needs a mailbox name")
    copy = ":copy" in node.tagged
    mailboxid = run.tag_string(frame, node, ":mailboxid")
    specialuse = run.tag_string(frame, node, ":specialuse")
    if specialuse is not None and not SPECIAL_USE.match(specialuse):
        raise SieveRuntimeError(f"invalid special-use attribute {specialuse!r}")
    action = act.FileInto(
        mailbox=mailbox,
        flags=flags_argument(run, frame, node),
        copy=copy,
        create=":create" in node.tagged,
        specialuse=specialuse,
        mailboxid=mailboxid,
    )
    run.add(action, cancels_keep=not copy)


def _redirect(run: Run, frame: Frame, node: Command) -> None:
    address = _angle(run.string(frame, node.positional[0]))
    if not ADDRESS.match(address):
        raise SieveRuntimeError(f"redirect to an invalid address {address!r}")
    copy = ":copy" in node.tagged
    run.add(act.Redirect(address=address, copy=copy), cancels_keep=not copy)


def _reject(run: Run, frame: Frame, node: Command) -> None:
    reason = run.string(frame, node.positional[0])
    run.add(act.Reject(reason=reason, extended=node.name == "ereject"), cancels_keep=True)


COMMANDS = {
    "stop": _stop,
    "keep": _keep,
    "discard": _discard,
    "fileinto": _fileinto,
    "redirect": _redirect,
    "reject": _reject,
    "ereject": _reject,
    **EXTENSION_COMMANDS,
}
