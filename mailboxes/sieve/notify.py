"""enotify (RFC 5435) with its one method, mailto (RFC 5436, URIs per RFC 6068)."""

from __future__ import annotations

import re
from urllib.parse import unquote

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
