"""enotify (RFC 5435) with its one method, mailto (RFC 5436, URIs per RFC 6068): notify,
valid_notify_method and notify_method_capability."""

from __future__ import annotations

import re
from urllib.parse import unquote

from mailboxes.sieve import actions as act
from mailboxes.sieve.errors import SieveRuntimeError
from mailboxes.sieve.interpreter import Frame, Run
from mailboxes.sieve.parser import Command, Test

_MAILTO = re.compile(r"mailto:([^?]*)(?:\?(.*))?\Z", re.IGNORECASE | re.DOTALL)
_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"]+@[^\s@<>()\[\],;:\"]+\Z")
# RFC 5436 2.2: headers a mailto URI may not set.
_UNSAFE_HEADERS = frozenset({"received", "return-path", "auto-submitted", "from", "sender"})


def method_problem(uri: str) -> str | None:
    """Why `uri` is not a notification method we can use, or None."""
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    if scheme != "mailto":
        return f"unsupported notification method {uri!r} (only mailto)"
    match = _MAILTO.match(uri)
    recipients = [unquote(a) for a in match.group(1).split(",") if a]
    for header in (match.group(2) or "").split("&"):
        name, _, value = header.partition("=")
        if name.lower() == "to":
            recipients += [unquote(a) for a in value.split(",") if a]
    # "mailto:" with no recipient is valid (RFC 6068 2); there is nobody to notify.
    for address in recipients:
        if not _ADDRESS.match(address.strip()):
            return f"mailto URI {uri!r} has an invalid recipient {address!r}"
    return None


def capability(uri: str, name: str) -> str | None:
    """RFC 5435 5: notify_method_capability's answer; "online" is "maybe" for mail."""
    if method_problem(uri):
        return None
    return "maybe" if name.lower() == "online" else None


def _notify(run: Run, frame: Frame, node: Command) -> None:
    method = run.string(frame, node.positional[0])
    problem = method_problem(method)
    if problem:
        raise SieveRuntimeError(problem)
    method = "mailto:" + method[len("mailto:") :]  # the scheme ignores case (RFC 3986 3.1)
    importance = run.tag_string(frame, node, ":importance", "2")
    if importance not in ("1", "2", "3"):
        raise SieveRuntimeError(':importance must be "1", "2" or "3"')
    options = node.tagged.get(":options")
    action = act.Notify(
        method=method,
        from_address=run.tag_string(frame, node, ":from"),
        importance=importance,
        options=tuple(run.strings(frame, options[1])) if options else (),
        message=run.tag_string(frame, node, ":message"),
    )
    run.add(action, cancels_keep=False)


def _valid_notify_method(run: Run, frame: Frame, node: Test) -> bool:
    return all(method_problem(uri) is None for uri in run.strings(frame, node.positional[0]))


def _notify_method_capability(run: Run, frame: Frame, node: Test) -> bool:
    uri, name = (run.string(frame, arg) for arg in node.positional[:2])
    keys = run.strings(frame, node.positional[2])
    answer = capability(uri, name)
    return answer is not None and run.match(frame, node, [answer], keys)


COMMANDS = {"notify": _notify}


TESTS = {
    "valid_notify_method": _valid_notify_method,
    "notify_method_capability": _notify_method_capability,
}
