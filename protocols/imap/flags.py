"""IMAP's flag names in the orders the wire uses them (RFC 9051 2.3.2): a leaf module.

The table itself is the store's (mailboxes/flags.py): these are its names as the session
and the commands use them.
"""

from __future__ import annotations

from mailboxes.flags import ANNOUNCED, NAMES, names_of_bits, names_of_columns

# The order of selectors.message_flag_rows' columns and of message_flag_bits' bits.
SYSTEM_FLAGS = NAMES
# The order of the untagged FLAGS response (and PERMANENTFLAGS).
FLAGS_LINE_BASE = ANNOUNCED
# Keywords clients commonly use; announced in FLAGS so they show up before first use.
COMMON_KEYWORDS = ("$Forwarded", "$MDNSent", "$Junk", "$NotJunk", "$Phishing")


def flags_of(row) -> list[str]:
    """Flag names from a selectors.message_flag_rows row."""
    return names_of_columns(row[2], row[3:])


def flags_of_bits(keywords: str, bits: int) -> list[str]:
    """Flag names from a selectors.message_flag_bits row's keywords and system-flag bits."""
    return names_of_bits(bits, keywords)
