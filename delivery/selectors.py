"""Reads of the outbound spool."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from delivery.models import OutboundMessage, OutboundRecipient
from mailboxes.headers import header_block, summarize
from mailboxes.models import Mailbox
from mailboxes.selectors import blob_read

# How far apart the spool entry and the Sent copy of one submission may be in time.
SENT_MATCH_WINDOW = timedelta(hours=6)
SENT_MATCH_CANDIDATES = 50


def outbound_recipients_for_message_id(
    *, sender_mailbox: Mailbox, message_id: str, sent_at: datetime
) -> list[OutboundRecipient]:
    """The spool recipients of the message this mailbox submitted with this Message-ID.

    The spool keeps no Message-ID column, so candidates are the sender's spool entries
    created near the Sent copy's date, matched by the Message-ID in their stored header.
    """
    if not message_id:
        return []
    candidates = OutboundMessage.objects.filter(
        sender_mailbox=sender_mailbox,
        created_at__gte=sent_at - SENT_MATCH_WINDOW,
        created_at__lte=sent_at + SENT_MATCH_WINDOW,
    ).select_related("blob")[:SENT_MATCH_CANDIDATES]
    matched = []
    for outbound in candidates:
        try:
            head = header_block(blob_read(outbound.blob, limit=256 * 1024))
        except OSError:
            continue
        if summarize(head)["message_id"] == message_id:
            matched.append(outbound.pk)
    if not matched:
        return []
    return list(
        OutboundRecipient.objects.filter(message_id__in=matched)
        .select_related("message")
        .order_by("message__created_at", "id")
    )


def spool_counts() -> dict[str, int]:
    """Recipients per status, with `due` (queued or deferred, next attempt now or past) and
    `held` (a worker holds their lease now), for the embedded queue's admin page."""
    from django.db.models import Count, Q
    from django.utils import timezone

    from delivery.models import RecipientStatus

    now = timezone.now()
    waiting = Q(status__in=[RecipientStatus.QUEUED, RecipientStatus.DEFERRED])
    totals = OutboundRecipient.objects.aggregate(
        **{status.value: Count("id", filter=Q(status=status)) for status in RecipientStatus},
        due=Count(
            "id", filter=waiting & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        ),
        held=Count("id", filter=waiting & Q(lease_until__gt=now)),
    )
    return {name: count or 0 for name, count in totals.items()}


def pending_recipients(*, held: bool = False) -> list[OutboundRecipient]:
    """Recipients still to be delivered (queued or deferred, and with `held` those on hold),
    oldest message first."""
    from delivery.models import RecipientStatus

    statuses = [RecipientStatus.QUEUED, RecipientStatus.DEFERRED]
    if held:
        statuses.append(RecipientStatus.HOLD)
    return list(
        OutboundRecipient.objects.filter(status__in=statuses)
        .select_related("message")
        .order_by("message__created_at", "message_id", "id")
    )


@dataclass(frozen=True)
class QueueSummary:
    messages: int  # messages with a recipient still queued or deferred
    recipients: int  # recipients still queued or deferred
    oldest: datetime | None  # acceptance time of the oldest such message


def queue_summary() -> QueueSummary:
    """The pending part of the spool in one query (the /metrics queue gauges)."""
    from django.db.models import Count, Min

    from delivery.models import RecipientStatus

    totals = OutboundRecipient.objects.filter(
        status__in=[RecipientStatus.QUEUED, RecipientStatus.DEFERRED]
    ).aggregate(
        messages=Count("message", distinct=True),
        recipients=Count("id"),
        oldest=Min("message__created_at"),
    )
    return QueueSummary(
        messages=totals["messages"] or 0,
        recipients=totals["recipients"] or 0,
        oldest=totals["oldest"],
    )


def outbound_by_queue_id(queue_ids: Iterable[str]) -> dict[str, OutboundMessage]:
    """Spool entries by queue id (case-insensitive, as `mailq` prints them upper-case)."""
    wanted = {q.upper() for q in queue_ids}
    return {m.queue_id.upper(): m for m in OutboundMessage.objects.filter(queue_id__in=wanted)}


def recipient_ids_of(message_ids: Iterable[int]) -> list[int]:
    return list(
        OutboundRecipient.objects.filter(message_id__in=list(message_ids))
        .order_by("id")
        .values_list("id", flat=True)
    )
