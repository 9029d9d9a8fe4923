"""Inbound trust for mail received on port 25: SPF (RFC 7208), DKIM (RFC 6376), ARC
(RFC 8617), DMARC (RFC 7489) and the Authentication-Results header (RFC 8601).

    results = authenticate(raw=raw, client_ip=ip, helo=helo, mail_from=mail_from)
    raw = results.header() + strip_untrusted(raw, authserv_id=settings.MAILHOST_HOSTNAME)

delivery.accept.message_accept calls both for every unauthenticated message; the spam
scorer and the webmail read the results (`AuthResults.from_header` reads them back from the
stored bytes).
"""

from __future__ import annotations

import re

from delivery.inbound.checks import authenticate
from delivery.inbound.results import (
    ARCResult,
    AuthResults,
    DKIMResult,
    DMARCResult,
    SPFResult,
)
from mailboxes.headers import blank_line

_LINE = re.compile(rb"[^\n]*\n|[^\n]+")
_AUTHSERV = re.compile(rb"^\s*(?:\([^)]*\)\s*)*([^\s;(]+)")


def strip_untrusted(raw: bytes, *, authserv_id: str) -> bytes:
    """`raw` without the header fields the world may not give us: Authentication-Results
    that claim our authserv-id (RFC 8601 5) and every X-Spam* field (our spam verdict is
    the only one believed). Only the header section changes; the body keeps its bytes."""
    end = _header_end(raw)
    head = raw[:end].lower()
    # find(), not `in` (bytes `in` raises and clears a TypeError first). A header naming
    # neither field (nearly every one) is returned as it is, without a pass over its lines.
    if head.find(b"x-spam") < 0 and head.find(b"authentication-results") < 0:
        return raw
    ours = authserv_id.lower().rstrip(".").encode("utf-8", "surrogateescape")
    fields: list[bytes] = []
    for line in _LINE.findall(raw[:end]):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line  # a folded continuation belongs to the field above
        else:
            fields.append(line)
    kept = [f for f in fields if not _untrusted(f, ours)]
    return b"".join(kept) + raw[end:]


def _untrusted(field: bytes, ours: bytes) -> bool:
    name, sep, value = field.partition(b":")
    if not sep:
        return False
    name = name.strip().lower()
    if name.startswith(b"x-spam"):
        return True
    if name != b"authentication-results":
        return False
    match = _AUTHSERV.match(value)
    return bool(match) and match.group(1).lower().rstrip(b".") == ours


def _header_end(raw: bytes) -> int:
    """Offset just past the header section's last line (the blank line not included)."""
    found = blank_line(raw)
    if not found:
        return len(raw)
    return found[0] + (2 if raw.startswith(b"\r\n", found[0]) else 1)


__all__ = [
    "ARCResult",
    "AuthResults",
    "DKIMResult",
    "DMARCResult",
    "SPFResult",
    "authenticate",
    "strip_untrusted",
]
