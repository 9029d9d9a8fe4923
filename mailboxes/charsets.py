"""Charset names mail uses that Python's codecs do not know, registered as aliases of the
codec that reads their octets (imported by mailboxes.headers, so every decoder sees them):

- ISO-8859-6-E/-I and ISO-8859-8-E/-I (RFC 1556): ISO-8859-6 and -8 octets, the suffix only
  says whether the text is in visual or logical order; Hebrew Outlook mail says
  iso-8859-8-i.
- x-mac-* (Microsoft's names for the Mac OS encodings, e.g. x-mac-cyrillic): Python's mac_*.
"""

from __future__ import annotations

import codecs

_RFC1556 = {
    "iso_8859_6_e": "iso8859_6",
    "iso_8859_6_i": "iso8859_6",
    "iso_8859_8_e": "iso8859_8",
    "iso_8859_8_i": "iso8859_8",
}


def _search(name: str) -> codecs.CodecInfo | None:
    name = name.replace("-", "_")
    target = _RFC1556.get(name)
    if target is None and name.startswith("x_mac_"):
        target = "mac_" + name.removeprefix("x_mac_")
    if target is None:
        return None
    try:
        return codecs.lookup(target)
    except LookupError:
        return None


codecs.register(_search)


def part_charset(part, default: str) -> str:  # noqa: ANN001  (an email.message.Message)
    """A MIME part's charset parameter, or `default`: the standard library's reading of the
    parameters raises on hostile ones (RFC 2231 continuations numbered and unnumbered mixed:
    TypeError in email.utils.decode_params), which must not fail the whole message."""
    try:
        return part.get_content_charset() or default
    except Exception:
        return default
