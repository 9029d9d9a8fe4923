"""Checking a script's includes at upload (RFC 6609), when the caller can load them.

At delivery the interpreter loads includes itself (commands.py); this lets ManageSieve or the
webmail refuse a script whose includes are missing, broken or loop, as Pigeonhole does.
"""

from __future__ import annotations

from collections.abc import Callable

from mailboxes.sieve import strings
from mailboxes.sieve.check import _walk
from mailboxes.sieve.errors import SieveError
from mailboxes.sieve.parser import Command

Loader = Callable[[str, str], "str | None"]


def check_includes(
    commands: list[Command],
    requires: frozenset[str],
    include: Loader,
    analyse: Callable,
    stack: tuple[tuple[str, str], ...] = (),
    max_depth: int = 10,
) -> list[SieveError]:
    """Errors for every include of `commands` that is missing (without :optional), does
    not compile, loops back or nests deeper than `max_depth`; reported at the include."""
    errors: list[SieveError] = []
    for node in _walk(commands):
        if node.name != "include" or not node.positional:
            continue
        name = node.positional[0].values[0]
        if "variables" in requires and strings.has_references(name):
            continue  # known only at run time
        location = "global" if node.tagged.get("location", ("",))[0] == ":global" else "personal"
        key = (location, name)

        def error(message: str, node: Command = node) -> None:
            errors.append(SieveError(node.line, node.column, message))

        if key in stack:
            error(f"include loop: {location} script {name!r} includes itself")
            continue
        if len(stack) >= max_depth:
            error(f"includes nested deeper than {max_depth}")
            continue
        text = include(name, location)
        if text is None:
            if ":optional" not in node.tagged:
                error(f"included {location} script {name!r} does not exist")
            continue
        script, found = analyse(text)
        if found:
            error(f"included {location} script {name!r}: {found[0]}")
            continue
        nested = check_includes(
            script.commands, script.requires, include, analyse, (*stack, key), max_depth
        )
        if nested:
            error(f"included {location} script {name!r}: {nested[0].message}")
    return errors
