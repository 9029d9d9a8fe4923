"""Reads for the reports we send."""

from __future__ import annotations

import datetime

from delivery.models import DmarcEvaluation, ReportSent, TlsSessionCount


def anything_pending(*, before: datetime.date) -> bool:
    """Is there a day before `before` with counts or evaluations (the job's cheap first look)?"""
    return (
        TlsSessionCount.objects.filter(day__lt=before).exists()
        or DmarcEvaluation.objects.filter(day__lt=before).exists()
    )


def tls_pending(*, before: datetime.date) -> list[tuple[datetime.date, str]]:
    """(day, policy domain) pairs with counts of days before `before`."""
    pairs = (
        TlsSessionCount.objects.filter(day__lt=before)
        .values_list("day", "policy_domain")
        .distinct()
        .order_by("day", "policy_domain")
    )
    return list(pairs)


def tls_rows(*, day: datetime.date, domain: str):
    return TlsSessionCount.objects.filter(day=day, policy_domain=domain)


def dmarc_pending(*, before: datetime.date) -> list[tuple[datetime.date, str]]:
    """(day, From domain) pairs with evaluations of days before `before`."""
    pairs = (
        DmarcEvaluation.objects.filter(day__lt=before)
        .values_list("day", "header_from")
        .distinct()
        .order_by("day", "header_from")
    )
    return list(pairs)


def dmarc_rows(*, day: datetime.date, header_froms: list[str]):
    return DmarcEvaluation.objects.filter(day=day, header_from__in=header_froms)


def report_sent(*, kind: str, day: datetime.date, domain: str) -> bool:
    return ReportSent.objects.filter(kind=kind, day=day, domain=domain).exists()
