"""Delivery's side of mailboxes/outbound.py: the functions the store may ask for, connected
when the delivery app is ready (delivery/apps.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.utils import timezone

from delivery import autoreply, bounces, dkim, services
from delivery.spam import services as spam_services
from mailboxes import outbound

if TYPE_CHECKING:
    from mailboxes.models import Blob


def reject_dsn(original: bytes, *, mail_from: str, recipient: str, reply: str) -> bytes:
    """The failure DSN (5.7.1) of a Sieve ereject past the SMTP session (more than one
    recipient, a queued retry), for `recipient`, to `mail_from`."""
    return bounces.build_dsn(
        event=bounces.FAILED,
        original=original,
        mail_from=mail_from,
        queue_id=hashlib.sha256(original[:4096]).hexdigest()[:16].upper(),
        envid="",
        ret="HDRS",
        arrival=timezone.now(),
        recipients=[
            bounces.ReportedRecipient(
                address=recipient, orcpt="", status="5.7.1", reply=reply, remote_mta=""
            )
        ],
    )


def spool(
    *,
    blob: Blob,
    mail_from: str,
    recipients: Sequence[str],
    notify: str,
    smtputf8: bool,
    body_8bit: bool,
) -> None:
    services.spool_create(
        blob=blob,
        mail_from=mail_from,
        recipients=[services.SpoolRecipient(r, notify=notify) for r in recipients],
        smtputf8=smtputf8,
        body_8bit=body_8bit,
    )


def connect() -> None:
    outbound.connect(
        outbound.Outbound(
            dkim_sign=dkim.dkim_sign,
            arc_seal=dkim.arc_seal,
            vacation_refusal=autoreply.vacation_refusal,
            vacation_handle=autoreply.vacation_handle,
            vacation_reply=autoreply.vacation_reply,
            auto_submitted=autoreply.auto_submitted,
            reject_mdn=autoreply.reject_mdn,
            notify_message=autoreply.notify_message,
            reject_dsn=reject_dsn,
            spool=spool,
            known_senders_add=spam_services.known_senders_add,
            training_request=spam_services.training_request,
        )
    )
