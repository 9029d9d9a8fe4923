"""Aggregate reports we send, once a day: TLS reports (RFC 8460) to the recipient domains of
our outbound mail, DMARC aggregate reports (RFC 7489 7.2) to the From domains of the mail we
received on port 25.

What they count is recorded as it happens (tlsrpt.py: TLS sessions, counted in memory and
flushed; services.dmarc_evaluation_record: a row per message, in the transaction that
accepts it). `send_due()` runs with the spool's housekeeping (delivery/queue.py, every
PRUNE_INTERVAL under runmail and under each rqworker): for each UTC day that ended more than
REPORT_DELAY ago it builds one report per policy domain that publishes a destination, queues
it as a DKIM-signed message from the reports address (`reports_address()`), POSTs TLS reports
to https destinations, and removes the rows it covered. A ReportSent row per (kind, day,
domain), written in the same transaction, makes each report go once however many processes
run the job.
"""

from __future__ import annotations

import datetime
import email.utils
import gzip
import http.client
import json
import logging
import socket
import ssl
from collections import defaultdict
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import SMTP
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.utils import timezone

from delivery import dns
from delivery.models import ReportSent

logger = logging.getLogger(__name__)

# A day is reported once it has been over this long: every process's counts are flushed by
# then (the sweepers flush every MAILHOST_SWEEP_INTERVAL).
REPORT_DELAY = datetime.timedelta(minutes=5)
HTTPS_TIMEOUT = 30


def reports_address() -> str | None:
    """The address reports come from: MAILHOST_REPORTS_FROM, else noreply@ the hosted
    domain that MAILHOST_HOSTNAME is (or is under), else noreply@ the first hosted domain by
    name; None when nothing is hosted (no report is sent then: it could not be signed)."""
    if settings.MAILHOST_REPORTS_FROM:
        return settings.MAILHOST_REPORTS_FROM
    from mailboxes.selectors import domain_names_active

    names = domain_names_active()
    if not names:
        return None
    host = settings.MAILHOST_HOSTNAME.lower().rstrip(".")
    mine = [n for n in names if host == n or host.endswith("." + n)]
    return f"noreply@{max(mine, key=len) if mine else names[0]}"


def org_name(address: str) -> str:
    return settings.MAILHOST_REPORTS_ORG or address.rpartition("@")[2]


def contact(address: str) -> str:
    return f"postmaster@{address.rpartition('@')[2]}"


def _report_id(day: datetime.date, domain: str) -> str:
    return f"{day:%Y%m%d}.{domain}@{settings.MAILHOST_HOSTNAME}"


def _day_bounds(day: datetime.date) -> tuple[int, int]:
    begin = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
    return int(begin.timestamp()), int(begin.timestamp()) + 86400 - 1


def send_due(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Send every report that is due; returns how many of each kind went."""
    from delivery.outreports import selectors, services, tlsrpt

    now = now or timezone.now()
    tlsrpt.flush()
    before = (now - REPORT_DELAY).astimezone(datetime.UTC).date()
    sent = {"tls": 0, "dmarc": 0}
    if selectors.anything_pending(before=before):
        address = reports_address()
        if address is None:
            logger.warning("reports not sent: no hosted domain to send them from")
        else:
            sent["tls"] = _send_tls_reports(before, address)
            sent["dmarc"] = _send_dmarc_reports(before, address)
    services.reports_prune(today=now.astimezone(datetime.UTC).date())
    return sent


# --- TLS reports (RFC 8460) ---------------------------------------------------------------------


def _send_tls_reports(before: datetime.date, address: str) -> int:
    from delivery.inbound import dnsquery
    from delivery.outreports import selectors, services, tlsrpt

    count = 0
    for day, domain in selectors.tls_pending(before=before):
        rows = selectors.tls_rows(day=day, domain=domain)
        if selectors.report_sent(kind=ReportSent.Kind.TLS, day=day, domain=domain):
            services.rows_drop(rows)  # counted after the report went: too late for it
            continue
        try:
            rua = tlsrpt.parse_record(dnsquery.txt(f"_smtp._tls.{domain}"))
        except dns.DNSError as exc:
            logger.info("tls report deferred domain=%s day=%s error=%s", domain, day, exc.text)
            continue
        if not rua:
            services.rows_drop(rows)
            continue
        report_id = _report_id(day, domain)
        report = tlsrpt.build_report(
            day=day,
            domain=domain,
            rows=list(rows),
            org_name=org_name(address),
            contact=contact(address),
            report_id=report_id,
        )
        body = gzip.compress(json.dumps(report, indent=1).encode(), mtime=0)
        mailto = [unquote(u[len("mailto:") :]) for u in rua if u.lower().startswith("mailto:")]
        https = [u for u in rua if u.lower().startswith("https:")]
        raw = tls_message(
            address=address, domain=domain, day=day, report_id=report_id, body=body, to=mailto
        )
        if not services.report_queue(
            kind=ReportSent.Kind.TLS,
            day=day,
            domain=domain,
            report_id=report_id,
            destinations=rua,
            raw=raw,
            mail_from=address,
            recipients=mailto,
            covered=rows,
        ):
            continue
        for uri in https:
            https_post(uri, body)
        count += 1
        logger.info(
            "tls report sent domain=%s day=%s id=%s policies=%d to=%s",
            domain,
            day,
            report_id,
            len(report["policies"]),
            ",".join(rua),
        )
    return count


def tls_message(
    *,
    address: str,
    domain: str,
    day: datetime.date,
    report_id: str,
    body: bytes,
    to: list[str],
) -> bytes:
    """The report as RFC 8460 5.3 mails it: multipart/report; report-type="tlsrpt", a line
    for people and the gzip JSON (application/tlsrpt+gzip), DKIM-signed. `TLS-Required: No`
    (RFC 8689 5): a report about TLS failures must get through them (RFC 8460 5.3)."""
    submitter = settings.MAILHOST_HOSTNAME
    begin, end = _day_bounds(day)
    message = MIMEMultipart("report", report_type="tlsrpt")
    _common_headers(message, address, to, domain, report_id)
    message["TLS-Report-Domain"] = domain
    message["TLS-Report-Submitter"] = submitter
    message["TLS-Required"] = "No"
    text = (
        f"This is an aggregate TLS report (RFC 8460) from {submitter} about the SMTP\r\n"
        f"sessions to the mail servers of {domain} on {day:%Y-%m-%d} (UTC).\r\n"
    )
    message.attach(MIMEText(text, "plain", "us-ascii"))
    part = MIMEApplication(body, "tlsrpt+gzip")
    filename = f"{submitter}!{domain}!{begin}!{end}.json.gz"
    part.add_header("Content-Disposition", "attachment", filename=filename)
    message.attach(part)
    return _signed(message, address)


def _common_headers(
    message: MIMEMultipart, address: str, to: list[str], domain: str, report_id: str
) -> None:
    message["From"] = address
    message["To"] = ", ".join(to) if to else "undisclosed-recipients:;"
    message["Date"] = email.utils.formatdate(usegmt=True)
    message["Message-ID"] = email.utils.make_msgid(domain=settings.MAILHOST_HOSTNAME)
    # RFC 7489 7.2.1.1 and RFC 8460 5.3 ask for the same Subject.
    message["Subject"] = (
        f"Report Domain: {domain} Submitter: {settings.MAILHOST_HOSTNAME} Report-ID: <{report_id}>"
    )
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to it


def _signed(message: MIMEMultipart, address: str) -> bytes:
    from delivery.dkim import dkim_sign

    raw = message.as_bytes(policy=SMTP)
    return dkim_sign(raw, mail_from=address)


def https_post(uri: str, body: bytes) -> bool:
    """POST a gzip report to an https rua (RFC 8460 5.2), the host resolved through our
    resolver and its certificate verified; True on a 2xx answer."""
    from delivery.mtasts import verifying_context

    parts = urlsplit(uri)
    host, port = parts.hostname or "", parts.port or 443
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        addresses = dns.get_resolver().addresses(host)
    except dns.DNSError as exc:
        logger.warning('tls report post failed uri=%s error="%s"', uri, exc.text)
        return False
    for address in addresses:
        connection = _ResolvedHTTPS(host, address, port, context=verifying_context())
        try:
            connection.request(
                "POST",
                path,
                body=body,
                headers={"Host": host, "Content-Type": "application/tlsrpt+gzip"},
            )
            response = connection.getresponse()
            response.read(4096)
            if 200 <= response.status < 300:
                logger.info("tls report posted uri=%s status=%d", uri, response.status)
                return True
            logger.warning("tls report post refused uri=%s status=%d", uri, response.status)
            return False
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            logger.warning('tls report post failed uri=%s address=%s error="%s"', uri, address, exc)
        finally:
            connection.close()
    return False


class _ResolvedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, address: str, port: int, *, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=HTTPS_TIMEOUT, context=context)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


# --- DMARC aggregate reports (RFC 7489 7.2) -------------------------------------------------


def _send_dmarc_reports(before: datetime.date, address: str) -> int:
    from delivery.outreports import dmarc, selectors, services

    policies: dict[str, dmarc.Policy | None] = {}
    groups: dict[tuple[datetime.date, str], list[str]] = defaultdict(list)
    for day, header_from in selectors.dmarc_pending(before=before):
        if header_from not in policies:
            try:
                policies[header_from] = dmarc.policy_for(header_from)
            except dns.DNSError as exc:
                logger.info("dmarc report deferred domain=%s error=%s", header_from, exc.text)
                continue
        policy = policies[header_from]
        if policy is None:
            services.rows_drop(selectors.dmarc_rows(day=day, header_froms=[header_from]))
            continue
        groups[(day, policy.domain)].append(header_from)
    by_domain = {p.domain: p for p in policies.values() if p is not None}
    count = 0
    for (day, domain), header_froms in groups.items():
        policy = by_domain[domain]
        rows = selectors.dmarc_rows(day=day, header_froms=header_froms)
        if selectors.report_sent(kind=ReportSent.Kind.DMARC, day=day, domain=domain):
            services.rows_drop(rows)
            continue
        try:
            destinations = dmarc.destinations(policy)
        except dns.DNSError as exc:
            logger.info("dmarc report deferred domain=%s error=%s", domain, exc.text)
            continue
        if not destinations:
            services.rows_drop(rows)
            continue
        report_id = _report_id(day, domain)
        xml = dmarc.build_report(
            policy=policy,
            day=day,
            rows=list(rows),
            org_name=org_name(address),
            email=contact(address),
            report_id=report_id,
        )
        body = gzip.compress(xml, mtime=0)
        to = [d.address for d in destinations]
        raw = dmarc_message(
            address=address, domain=domain, day=day, report_id=report_id, body=body, to=to
        )
        # RFC 7489 7.2.1.1: a destination's size limit is not exceeded (no report for it).
        to = [d.address for d in destinations if d.max_size is None or len(raw) <= d.max_size]
        if len(to) != len(destinations):
            logger.info("dmarc report too large for some destinations domain=%s", domain)
        if not services.report_queue(
            kind=ReportSent.Kind.DMARC,
            day=day,
            domain=domain,
            report_id=report_id,
            destinations=to,
            raw=raw,
            mail_from=address,
            recipients=to,
            covered=rows,
        ):
            continue
        count += 1
        logger.info(
            "dmarc report sent domain=%s day=%s id=%s to=%s", domain, day, report_id, ",".join(to)
        )
    return count


def dmarc_message(
    *,
    address: str,
    domain: str,
    day: datetime.date,
    report_id: str,
    body: bytes,
    to: list[str],
) -> bytes:
    """The report as RFC 7489 7.2.1.1 mails it: the gzip XML attached (application/gzip,
    `receiver!policy-domain!begin!end.xml.gz`), the Subject it asks for, DKIM-signed."""
    receiver = settings.MAILHOST_HOSTNAME
    begin, end = _day_bounds(day)
    message = MIMEMultipart("mixed")
    _common_headers(message, address, to, domain, report_id)
    text = (
        f"This is a DMARC aggregate report (RFC 7489) from {receiver} for {domain},\r\n"
        f"about the mail received on {day:%Y-%m-%d} (UTC).\r\n"
    )
    message.attach(MIMEText(text, "plain", "us-ascii"))
    part = MIMEApplication(body, "gzip")
    part.add_header(
        "Content-Disposition", "attachment", filename=f"{receiver}!{domain}!{begin}!{end}.xml.gz"
    )
    message.attach(part)
    return _signed(message, address)
