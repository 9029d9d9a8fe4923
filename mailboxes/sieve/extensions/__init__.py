"""The extensions, one module each (several small RFCs share one where they are one idea):
each has COMMANDS and/or TESTS, merged here into the interpreter's tables. What each accepts
is in grammar.py; what each checks at upload is in check.py."""

from __future__ import annotations

from mailboxes.sieve.extensions import (
    body,
    date,
    duplicate,
    editheader,
    enotify,
    environment,
    imap4flags,
    include,
    mailbox,
    spamtest,
    vacation,
    variables,
)

_MODULES = (
    body,
    date,
    duplicate,
    editheader,
    enotify,
    environment,
    imap4flags,
    include,
    mailbox,
    spamtest,
    vacation,
    variables,
)
EXTENSION_COMMANDS = {
    name: run for module in _MODULES for name, run in getattr(module, "COMMANDS", {}).items()
}
EXTENSION_TESTS = {
    name: run for module in _MODULES for name, run in getattr(module, "TESTS", {}).items()
}
