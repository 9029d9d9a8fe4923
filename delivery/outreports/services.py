"""Writes for the reports we send: the counts and evaluations recorded, a report claimed and
queued once, the rows it covered removed."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from delivery.models import DmarcEvaluation, ReportSent, TlsSessionCount

# Rows of a day whose report could not be sent (the DNS failing, no reports address) are
# kept this long, then dropped.
KEEP_DAYS = 7


@dataclass(frozen=True)
class TlsCount:
    day: datetime.date
    policy_domain: str
    policy_type: str
    policy_digest: str
    policy_strings: list[str]
    mx_patterns: list[str]
    result_type: str
    mx_host: str
    receiving_ip: str
    sending_ip: str
    reason: str
    count: int


def tls_sessions_add(counts: Sequence[TlsCount]) -> None:
    """Add session counts to their rows (created on first use), in one transaction."""
    with transaction.atomic():
        for c in counts:
            row, _ = TlsSessionCount.objects.get_or_create(
                day=c.day,
                policy_domain=c.policy_domain[:253],
                policy_type=c.policy_type,
                policy_digest=c.policy_digest,
                result_type=c.result_type,
                mx_host=c.mx_host[:253],
                receiving_ip=c.receiving_ip[:45],
                sending_ip=c.sending_ip[:45],
                defaults={"policy_strings": c.policy_strings, "mx_patterns": c.mx_patterns},
            )
            changes = {"count": F("count") + c.count}
            if c.reason:
                changes["reason"] = c.reason[:255]
            TlsSessionCount.objects.filter(pk=row.pk).update(**changes)


def dmarc_evaluation_record(*, auth, mail_from: str, now: datetime.datetime | None = None) -> None:  # noqa: ANN001
    """Keep the DMARC evaluation of one message received on port 25 (inside the caller's
    transaction) when it had a DMARC record to evaluate against: a message without one has
    nobody to report to (RFC 7489 7.2)."""
    if not settings.MAILHOST_DMARC_REPORTS or auth is None:
        return
    dmarc = auth.dmarc
    if dmarc.result not in ("pass", "fail", "temperror") or not dmarc.domain:
        return
    spf = auth.spf
    scope = "mfrom"
    if not mail_from or spf.result == "none" and not spf.domain:
        spf, scope = auth.spf_helo, "helo"  # RFC 7489 appendix C: the null sender's HELO
    _, _, envelope_domain = mail_from.rpartition("@")
    day = (now or timezone.now()).astimezone(datetime.UTC).date()
    DmarcEvaluation.objects.create(
        day=day,
        header_from=dmarc.domain[:253],
        envelope_from=envelope_domain.lower()[:253],
        source_ip=auth.client_ip[:45],
        disposition=dmarc.disposition if dmarc.result == "fail" else "none",
        dkim_aligned=dmarc.dkim_aligned,
        spf_aligned=dmarc.spf_aligned,
        override=dmarc.override[:20],
        spf_domain=(spf.domain or "")[:253],
        spf_scope=scope,
        spf_result=spf.result,
        dkim=[[d.domain, d.selector, d.result] for d in auth.dkim if d.domain],
    )


def report_queue(
    *,
    kind: str,
    day: datetime.date,
    domain: str,
    report_id: str,
    destinations: Sequence[str],
    raw: bytes | None,
    mail_from: str,
    recipients: Sequence[str],
    covered,  # noqa: ANN001 - a queryset of the rows the report covers
) -> bool:
    """Record the report as sent, queue its message (when it has mail recipients) and remove
    the rows it covers, in one transaction. False when it was sent already (another process
    got there first): nothing is queued."""
    from delivery.services import SpoolRecipient, spool_create
    from mailboxes.services import blob_store

    try:
        with transaction.atomic():
            ReportSent.objects.create(
                kind=kind,
                day=day,
                domain=domain[:253],
                report_id=report_id[:255],
                destinations="\n".join(destinations),
                sent_at=timezone.now(),
            )
            if raw is not None and recipients:
                spool_create(
                    blob=blob_store(raw),
                    mail_from=mail_from,
                    recipients=[SpoolRecipient(r) for r in recipients],
                )
            covered.delete()
    except IntegrityError:
        return False
    return True


def rows_drop(queryset) -> int:  # noqa: ANN001
    """Remove rows there is no report for (no rua, already reported)."""
    return queryset.delete()[0]


def reports_prune(*, today: datetime.date) -> int:
    """Drop rows older than KEEP_DAYS that never made it into a report, and old ReportSent
    rows (a day is never reported again once its rows are gone)."""
    before = today - datetime.timedelta(days=KEEP_DAYS)
    removed = TlsSessionCount.objects.filter(day__lt=before).delete()[0]
    removed += DmarcEvaluation.objects.filter(day__lt=before).delete()[0]
    ReportSent.objects.filter(day__lt=before - datetime.timedelta(days=KEEP_DAYS)).delete()
    return removed
