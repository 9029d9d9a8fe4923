"""What became of one envelope recipient: one value for every step that decides it.

The RCPT check (delivery.accept.recipient_verdict), the delivery agent
(services.message_deliver) and the acceptance service (delivery.accept.message_accept) all
answer with an Outcome; each front end turns it into its own words with one table (SMTP:
protocols/smtp/handler.py RECIPIENT_REPLIES, webmail: webmail/sending.py
RECIPIENT_PROBLEMS). The values are the words the logs and the tests have always used.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    OK = "ok"  # the RCPT check found nothing against the recipient
    DELIVERED = "delivered"  # filed into every mailbox it resolves to (and forwarded on)
    QUEUED = "queued"  # spooled: a remote recipient, or a local one to retry
    INVALID = "invalid"  # not an address we can use
    NO_SUCH_USER = "unknown"  # our domain, nobody there
    NOT_HOSTED = "not_hosted"  # outside our domains (the caller spools it or refuses it)
    RELAY_DENIED = "relay_denied"  # outside our domains, and this client may not relay
    OVER_QUOTA = "over_quota"  # every mailbox is full for now: try again later
    TOO_BIG = "too_big"  # the message can never fit the recipient's quota
    REJECTED = "rejected"  # the recipient's Sieve script refused it (ereject, with a reason)

    @property
    def accepted(self) -> bool:
        """The message is ours for this recipient (filed or spooled)."""
        return self in _ACCEPTED


_ACCEPTED = frozenset({Outcome.DELIVERED, Outcome.QUEUED})
