"""What became of a sent message, per recipient, read from the spool."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy as _

from delivery.models import Protection, RecipientStatus
from delivery.selectors import outbound_recipients_for_message_id
from mailboxes import selectors
from webmail import mime

if TYPE_CHECKING:
    from mailboxes.models import Mailbox, Message


@dataclass
class RecipientState:
    address: str
    state: str  # queued, deferred, delivered, bounced, local, unknown
    label: str
    detail: str = ""
    next_attempt: datetime | None = None
    attempts: int = 0
    mx: str = ""
    updated: datetime | None = None
    protection: str = ""  # how the session was protected, in words ("" before any)


LABELS = {
    RecipientStatus.QUEUED: ("queued", _("Queued")),
    RecipientStatus.DEFERRED: ("deferred", _("Deferred, will retry")),
    RecipientStatus.HOLD: ("deferred", _("On hold by the administrator")),
    RecipientStatus.DELIVERED: ("delivered", _("Delivered")),
    RecipientStatus.FAILED: ("bounced", _("Bounced")),
}


# Protection's labels, in the reader's language.
PROTECTION_LABELS = {
    Protection.DANE: _("DANE (TLSA verified)"),
    Protection.MTA_STS: _("MTA-STS (certificate verified)"),
    Protection.TLS: _("TLS (not verified)"),
    Protection.PLAIN: _("none (plain text)"),
}


REFUSED_HEADER = b"X-Mailhost-Refused"


def mark_refused(raw: bytes, refused) -> bytes:  # noqa: ANN001 - RecipientOutcome list
    """The Sent copy remembers which recipients the server refused at sending time, so its
    delivery block never claims a local delivery that did not happen."""
    lines = b"".join(REFUSED_HEADER + f": {r.address} {r.status}\r\n".encode() for r in refused)
    return lines + raw


def _refused(raw: bytes) -> dict[str, str]:
    from email.parser import BytesHeaderParser

    from mailboxes.headers import header_block

    head = BytesHeaderParser().parsebytes(header_block(raw))
    result = {}
    for value in head.get_all(REFUSED_HEADER.decode()) or []:
        address, _, status = str(value).strip().partition(" ")
        result[address.lower()] = status
    return result


def recipients_status(
    mailbox: Mailbox, message: Message, parsed: mime.ParsedMessage, *, raw: bytes = b""
) -> list[RecipientState]:
    addresses: list[str] = []
    seen: set[str] = set()
    for name in ("To", "Cc", "Bcc"):
        for _display, address in parsed.addresses(name):
            if address.lower() not in seen:
                seen.add(address.lower())
                addresses.append(address)
    spooled = outbound_recipients_for_message_id(
        sender_mailbox=mailbox, message_id=message.message_id, sent_at=message.internal_date
    )
    by_address = {r.address.lower(): r for r in spooled}
    refused = _refused(raw) if raw else {}
    result = []
    for address in addresses:
        row = by_address.pop(address.lower(), None)
        if address.lower() in refused:
            from webmail.sending import RECIPIENT_PROBLEMS

            status = refused[address.lower()]
            reason = RECIPIENT_PROBLEMS.get(status, status)
            result.append(RecipientState(address, "bounced", _("Refused"), detail=reason))
        elif row is not None:
            result.append(_from_row(address, row))
        elif selectors.domain_is_hosted(address.rpartition("@")[2]):
            result.append(RecipientState(address, "local", _("Delivered to a mailbox here")))
        else:
            result.append(RecipientState(address, "unknown", _("No spool record")))
    # Spooled recipients the headers do not name (alias expansions, redirects).
    for row in by_address.values():
        result.append(_from_row(row.address, row))
    return result


def _from_row(address: str, row) -> RecipientState:
    state, label = LABELS.get(row.status, ("unknown", row.status))
    return RecipientState(
        address=address,
        state=state,
        label=label,
        detail=row.last_reply,
        next_attempt=row.next_attempt_at if row.status in {"queued", "deferred"} else None,
        attempts=row.attempts,
        mx=row.mx_used,
        updated=row.updated_at,
        protection=PROTECTION_LABELS[Protection(row.protection)] if row.protection else "",
    )
