"""IMAP's flag names in the orders the wire uses them (RFC 9051 2.3.2): a leaf module."""

from __future__ import annotations

# The order of selectors.message_flag_rows' columns and of message_flag_bits' bits.
SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
# The order of the untagged FLAGS response (and PERMANENTFLAGS).
FLAGS_LINE_BASE = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
# Keywords clients commonly use; announced in FLAGS so they show up before first use.
COMMON_KEYWORDS = ("$Forwarded", "$MDNSent", "$Junk", "$NotJunk", "$Phishing")


def flags_of(row) -> list[str]:
    """Flag names from a selectors.message_flag_rows row."""
    _uid, _modseq, keywords, *columns = row
    flags = [name for name, on in zip(SYSTEM_FLAGS, columns) if on]
    if keywords:
        flags.extend(keywords.split())
    return flags


def flags_of_bits(keywords: str, bits: int) -> list[str]:
    """Flag names from a selectors.message_flag_bits row's keywords and system-flag bits."""
    names = [name for k, name in enumerate(SYSTEM_FLAGS) if bits >> k & 1]
    if keywords:
        names.extend(keywords.split())
    return names
