"""Charset names mail uses that Python's codecs do not know, registered as aliases of the
codec that reads their octets (imported by mailboxes.headers, so every decoder sees them):

- ISO-8859-6-E/-I and ISO-8859-8-E/-I (RFC 1556): ISO-8859-6 and -8 octets, the suffix only
  says whether the text is in visual or logical order; Hebrew Outlook mail says
  iso-8859-8-i.
- x-mac-* (Microsoft's names for the Mac OS encodings, e.g. x-mac-cyrillic): Python's mac_*.
"""

from __future__ import annotations

import codecs
import functools
from email.message import Message
from email.policy import compat32

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


def part_charset(part, default: str) -> str:  # noqa: ANN001  (a Message, or webmail's MessagePart)
    """A MIME part's charset parameter, or `default`: the standard library's reading of the
    parameters raises on hostile ones (RFC 2231 continuations numbered and unnumbered mixed:
    TypeError in email.utils.decode_params), which must not fail the whole message."""
    if getattr(part, "policy", None) is compat32:  # webmail's MessagePart has none
        value = part.get("content-type")
        if type(value) is str:  # not absent, nor a Header of 8-bit octets
            return _content_type_charset(value) or default
    try:
        return part.get_content_charset() or default
    except Exception:
        return default


@functools.lru_cache(maxsize=256)
def _content_type_charset(value: str) -> str | None:
    """get_content_charset() of a compat32 part whose Content-Type is `value`, or None (no
    charset, or parameters it cannot read). Kept by the field's text: the parameters' reading
    (email.utils.decode_params and its RFC 2231 rules) cost more than the rest of a plain
    text part's reading on port 25, for the same few Content-Type fields message after
    message."""
    message = Message(policy=compat32)
    message.set_raw("Content-Type", value)
    try:
        return message.get_content_charset()
    except Exception:
        return None
