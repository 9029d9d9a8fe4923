"""Writes to the outbound spool."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from delivery.models import OutboundMessage, OutboundRecipient, RecipientStatus
from mailboxes.models import Blob, Mailbox


@dataclass(frozen=True)
class SpoolRecipient:
    address: str
    notify: str = ""  # RFC 3461 NOTIFY, comma-separated; "" means the default (FAILURE)
    orcpt: str = ""


def new_queue_id() -> str:
    return secrets.token_hex(8).upper()


@transaction.atomic
def spool_create(
    *,
    blob: Blob,
    mail_from: str,
    recipients: Sequence[SpoolRecipient],
    queue_id: str | None = None,
    sender_mailbox: Mailbox | None = None,
    envid: str = "",
    ret: str = "",
    smtputf8: bool = False,
    body_8bit: bool = False,
) -> OutboundMessage:
    """Queue a stored message for remote recipients (inside the caller's transaction)."""
    message = OutboundMessage.objects.create(
        queue_id=queue_id or new_queue_id(),
        blob=blob,
        mail_from=mail_from,
        sender_mailbox=sender_mailbox,
        envid=envid,
        ret=ret,
        smtputf8=smtputf8,
        body_8bit=body_8bit,
        size=blob.size,
    )
    now = timezone.now()
    OutboundRecipient.objects.bulk_create(
        [
            OutboundRecipient(
                message=message,
                address=r.address,
                notify=r.notify,
                orcpt=r.orcpt,
                status=RecipientStatus.QUEUED,
                next_attempt_at=now,
            )
            for r in recipients
        ]
    )
    return message
