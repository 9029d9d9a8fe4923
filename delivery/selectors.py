"""Reads of the outbound spool."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from delivery.models import (
    DmarcRecord,
    DmarcReport,
    MtaStsPolicy,
    OutboundMessage,
    OutboundRecipient,
    TlsReport,
    TlsReportPolicy,
)
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


# --- Aggregate reports received -------------------------------------------------------------


@dataclass
class DmarcSource:
    """What the reports say of one sending address using the domain in From."""

    source_ip: str
    header_from: str
    messages: int = 0
    dmarc_pass: int = 0  # aligned DKIM or aligned SPF passed (RFC 7489 4.2)
    spf_pass: int = 0
    dkim_pass: int = 0
    quarantined: int = 0
    rejected: int = 0
    reporters: set[str] = field(default_factory=set)

    @property
    def dmarc_fail(self) -> int:
        return self.messages - self.dmarc_pass

    @property
    def spf_fail(self) -> int:
        return self.messages - self.spf_pass

    @property
    def dkim_fail(self) -> int:
        return self.messages - self.dkim_pass


@dataclass
class DmarcSummary:
    reports: list
    sources: list[DmarcSource]
    messages: int = 0
    dmarc_pass: int = 0
    spf_pass: int = 0
    dkim_pass: int = 0

    @property
    def dmarc_fail(self) -> int:
        return self.messages - self.dmarc_pass

    @property
    def spf_fail(self) -> int:
        return self.messages - self.spf_pass

    @property
    def dkim_fail(self) -> int:
        return self.messages - self.dkim_pass


def dmarc_summary(domain, *, since: datetime) -> DmarcSummary:
    """The DMARC reports about `domain` whose period ends after `since`: who sends as the
    domain (by source address and From domain, most messages first) and the pass/fail counts
    of SPF, DKIM (both as DMARC aligns them) and DMARC."""
    reports = list(
        DmarcReport.objects.filter(domain=domain, end__gte=since).order_by("-end", "org_name")
    )
    sources: dict[tuple[str, str], DmarcSource] = {}
    summary = DmarcSummary(reports=reports, sources=[])
    records = DmarcRecord.objects.filter(report__domain=domain, report__end__gte=since).values_list(
        "source_ip", "header_from", "count", "dkim", "spf", "disposition", "report__org_name"
    )
    for ip, header_from, count, dkim, spf, disposition, org in records.iterator():
        source = sources.setdefault((ip, header_from), DmarcSource(ip, header_from))
        passed = dkim == "pass" or spf == "pass"
        source.messages += count
        source.dmarc_pass += count if passed else 0
        source.spf_pass += count if spf == "pass" else 0
        source.dkim_pass += count if dkim == "pass" else 0
        source.quarantined += count if disposition == "quarantine" else 0
        source.rejected += count if disposition == "reject" else 0
        source.reporters.add(org)
        summary.messages += count
        summary.dmarc_pass += count if passed else 0
        summary.spf_pass += count if spf == "pass" else 0
        summary.dkim_pass += count if dkim == "pass" else 0
    summary.sources = sorted(sources.values(), key=lambda s: (-s.messages, s.source_ip))
    return summary


@dataclass
class TlsSummary:
    reports: list
    successful: int = 0
    failed: int = 0
    # (reporter, policy type, policy domain) -> [successful, failed]
    by_policy: list[tuple[str, str, str, int, int]] = field(default_factory=list)
    # (result type, receiving MX, sending MTA) -> failed sessions
    failures: list[tuple[str, str, str, int]] = field(default_factory=list)


def tls_summary(domain, *, since: datetime) -> TlsSummary:
    """The SMTP TLS reports about `domain` whose period ends after `since`: sessions that
    succeeded and failed, per reporter and policy, and the failures by kind."""
    reports = list(
        TlsReport.objects.filter(domain=domain, end__gte=since).order_by("-end", "org_name")
    )
    summary = TlsSummary(reports=reports)
    by_policy: dict[tuple[str, str, str], list[int]] = {}
    failures: dict[tuple[str, str, str], int] = {}
    policies = TlsReportPolicy.objects.filter(
        report__domain=domain, report__end__gte=since
    ).values_list(
        "report__org_name",
        "policy_type",
        "policy_domain",
        "successful",
        "failed",
        "failure_details",
    )
    for org, kind, policy_domain, successful, failed, details in policies.iterator():
        counts = by_policy.setdefault((org, kind, policy_domain), [0, 0])
        counts[0] += successful
        counts[1] += failed
        summary.successful += successful
        summary.failed += failed
        for detail in details or []:
            key = (
                str(detail.get("result_type", "")),
                str(detail.get("receiving_mx_hostname", "")),
                str(detail.get("sending_mta_ip", "")),
            )
            failures[key] = failures.get(key, 0) + int(detail.get("failed_session_count", 0))
    summary.by_policy = [(*key, ok, bad) for key, (ok, bad) in sorted(by_policy.items())]
    summary.failures = sorted(
        ((*key, count) for key, count in failures.items()), key=lambda f: (-f[3], f[0])
    )
    return summary


def mta_sts_policy(domain: str, *, now: datetime):
    """The cached MTA-STS policy of a domain while its max_age lasts (RFC 8461 5.1), as a
    delivery.mtasts.Policy, or None."""
    from delivery.mtasts import Policy

    row = MtaStsPolicy.objects.filter(domain=domain).first()
    if row is None or row.fetched_at + timedelta(seconds=row.max_age) <= now:
        return None
    return Policy(row.domain, row.policy_id, row.mode, tuple(row.mx.split()), row.max_age)
