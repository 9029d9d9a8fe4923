"""The Sieve mail filtering language (RFC 5228) and its extensions, without I/O: the MDA
(mailboxes/mda.py) runs scripts, ManageSieve checks them at upload.

    errors = sieve.check(text)            # never raises; [] when the script is valid
    script = sieve.compile(text)          # raises SieveSyntaxError(errors)
    result = sieve.run(script, SieveContext(raw=..., envelope_from=..., ...))
    result.actions, result.implicit_keep, result.errors, result.header_edits
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from mailboxes.sieve.actions import (
    AddHeader,
    DeleteHeader,
    Discard,
    FileInto,
    HeaderEdits,
    Keep,
    Limits,
    Notify,
    Redirect,
    Reject,
    SieveContext,
    SieveResult,
    Vacation,
)
from mailboxes.sieve.check import check_script
from mailboxes.sieve.errors import SieveError, SieveRuntimeError, SieveSyntaxError
from mailboxes.sieve.grammar import CAPABILITIES
from mailboxes.sieve.includes import check_includes
from mailboxes.sieve.interpreter import Script
from mailboxes.sieve.interpreter import run as _run
from mailboxes.sieve.parser import parse

__all__ = [
    "CAPABILITIES",
    "AddHeader",
    "DeleteHeader",
    "Discard",
    "FileInto",
    "HeaderEdits",
    "Keep",
    "Limits",
    "Notify",
    "Redirect",
    "Reject",
    "Script",
    "SieveContext",
    "SieveError",
    "SieveResult",
    "SieveRuntimeError",
    "SieveSyntaxError",
    "Vacation",
    "check",
    "compile",
    "run",
]


def _decode(source: str | bytes) -> tuple[str, list[SieveError]]:
    """Scripts are UTF-8 (RFC 5228 2.2); bytes that are not are an error at their place."""
    if isinstance(source, str):
        return source, []
    try:
        return source.decode("utf-8"), []
    except UnicodeDecodeError as error:
        line_start = source.rfind(b"\n", 0, error.start) + 1
        line = source.count(b"\n", 0, error.start) + 1
        column = len(source[line_start : error.start].decode("utf-8", "replace")) + 1
        message = f"invalid UTF-8 at byte {error.start}"
        return source.decode("utf-8", "replace"), [SieveError(line, column, message)]


def _analyse(source: str | bytes) -> tuple[Script, list[SieveError]]:
    text, encoding_errors = _decode(source)
    commands, errors = parse(text)
    errors = encoding_errors + errors
    requires, check_errors = check_script(commands)
    errors = sorted(errors + check_errors, key=lambda e: (e.line, e.column))
    return Script(commands, frozenset(requires), text), errors


def check(
    text: str | bytes, include: Callable[[str, str], str | None] | None = None
) -> list[SieveError]:
    """Every error in the script, with line and column; [] when it is valid. Never raises.
    With `include` (the loader SieveContext.include takes), constant includes are loaded
    and checked too (RFC 6609: missing, broken, looping)."""
    try:
        script, errors = _analyse(text)
        if include is not None and not errors:
            errors = check_includes(script.commands, script.requires, include, _analyse)
        return errors
    except RecursionError:
        return [SieveError(1, 1, "the script nests too deeply")]


@lru_cache(maxsize=32)
def compile(text: str | bytes) -> Script:  # noqa: A001 - the name the interface agreed on
    """The script ready to run; SieveSyntaxError(errors) when check() finds any."""
    try:
        script, errors = _analyse(text)
    except RecursionError:
        raise SieveSyntaxError([SieveError(1, 1, "the script nests too deeply")]) from None
    if errors:
        raise SieveSyntaxError(errors)
    return script


def run(script: Script, context: SieveContext) -> SieveResult:
    """The actions for one message. Run-time errors come back in .errors with no actions
    and the implicit keep (RFC 5228 2.10.6): no mail is lost to a script."""
    return _run(script, context)
