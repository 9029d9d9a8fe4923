"""A mailbox's two quotas and what holds against them, and the one rule that checks both.

Octets (Mailbox.quota against used_bytes, RFC 9208 5.1 STORAGE) and messages
(Mailbox.quota_messages against used_messages, RFC 9208 5.2 MESSAGE), each counted over all
of the mailbox's folders (the quota root "", \\Deleted messages included until expunged);
a limit of 0 is none. Every refusal for quota (SMTP RCPT and DATA, the delivery agent and its
Sieve plans, IMAP APPEND, COPY and MOVE between mailboxes, the webmail's Sent copy) asks
`fits`, so the two limits cannot drift apart.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol


class Holder(Protocol):
    """Anything carrying the four numbers: a Mailbox row, a locked target, a Usage."""

    quota: int | None
    used_bytes: int
    quota_messages: int | None
    used_messages: int


def fits(holder: Holder, size: int, count: int = 1) -> bool:
    """Whether `count` more messages of `size` octets in all stay within both limits."""
    if holder.quota and holder.used_bytes + size > holder.quota:
        return False
    return not holder.quota_messages or holder.used_messages + count <= holder.quota_messages


def never_fits(holder: Holder, size: int) -> bool:
    """Whether a message of `size` octets is beyond the byte limit itself (a 552, not a
    452: no expunge makes room). A message-count limit of at least one always can."""
    return bool(holder.quota) and size > holder.quota


USAGE_FIELDS = ("quota", "used_bytes", "quota_messages", "used_messages")  # Usage's, in order


class Usage(NamedTuple):
    quota: int  # octets; 0: no limit
    used_bytes: int
    quota_messages: int  # messages; 0: no limit
    used_messages: int

    @property
    def limited(self) -> bool:
        """Whether the mailbox has a quota root at all (RFC 9208 4.3: one limit is enough)."""
        return bool(self.quota or self.quota_messages)

    def fits(self, size: int, count: int = 1) -> bool:
        return fits(self, size, count)

    def never_fits(self, size: int) -> bool:
        return never_fits(self, size)
