"""variables (RFC 5229): set with its modifiers, and the string test. Expansion itself is in
interpreter.py and strings.py."""

from __future__ import annotations

from mailboxes.sieve import strings
from mailboxes.sieve.interpreter import Frame, Run
from mailboxes.sieve.parser import Command, Test


def _set(run: Run, frame: Frame, node: Command) -> None:
    value = run.string(frame, node.positional[1])
    # RFC 5229 4.1: modifiers apply from the highest precedence down.
    for group in ("modifier-40", "modifier-30", "modifier-20", "modifier-15", "modifier-10"):
        found = node.tagged.get(group)
        if found:
            value = _MODIFIERS[found[0]](value)
    run.assign(frame, node.positional[0].values[0], value)


def _quote_regex(value: str) -> str:
    return "".join("\\" + c if c in "\\^$.[]|()?*+{}" else c for c in value)


def _encode_url(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="-._~")  # RFC 5435 6: RFC 3986 unreserved stay


_MODIFIERS = {
    ":lower": str.lower,
    ":upper": str.upper,
    ":lowerfirst": lambda v: v[:1].lower() + v[1:],
    ":upperfirst": lambda v: v[:1].upper() + v[1:],
    ":quotewildcard": strings.quote_wildcards,
    ":quoteregex": _quote_regex,
    ":encodeurl": _encode_url,
    ":length": lambda v: str(len(v)),
}


def _string(run: Run, frame: Frame, node: Test) -> bool:
    sources, keys = (run.strings(frame, arg) for arg in node.positional)
    # RFC 5229 5: :count counts the sources that are not empty
    return run.match(frame, node, sources, keys, count=sum(1 for s in sources if s))


COMMANDS = {"set": _set}


TESTS = {"string": _string}
