"""DMARC (RFC 7489 appendix C) and SMTP TLS (RFC 8460) aggregate reports, receiving side:
parsed from Google- and Microsoft-style messages, delivered over SMTP to the rua addresses
`manage.py dnsrecords` prints, stored once, and shown on the domain's report page."""

from __future__ import annotations

import gzip
import io
import re
import smtplib
import zipfile
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from delivery import reports, selectors
from delivery.models import DmarcRecord, DmarcReport, TlsReport, TlsReportPolicy
from mailboxes import services
from mailboxes.models import Message
from tests.delivery.report_samples import (
    google_dmarc_message,
    google_dmarc_xml,
    google_tlsrpt_message,
    microsoft_dmarc_message,
    microsoft_dmarc_xml,
    period,
    tlsrpt_json,
)
from tests.support.smtp import smtp_ports  # noqa: F401

BEGIN, END = period()


# --- Parsing, no I/O ---------------------------------------------------------------------------


def test_parse_google_dmarc():
    report = reports.parse_dmarc(google_dmarc_xml("example.org", "1034", BEGIN, END))
    assert (report.org_name, report.org_email, report.report_id) == (
        "google.com",
        "noreply-dmarc-support@google.com",
        "1034",
    )
    assert int(report.begin.timestamp()) == BEGIN and int(report.end.timestamp()) == END
    assert (report.policy_domain, report.policy, report.subdomain_policy, report.pct) == (
        "example.org",
        "quarantine",
        "quarantine",
        100,
    )
    assert [(r.source_ip, r.count, r.disposition, r.dkim, r.spf) for r in report.rows] == [
        ("203.0.113.5", 12, "none", "pass", "pass"),
        ("198.51.100.66", 3, "quarantine", "fail", "fail"),
        ("2001:db8:45::1", 2, "none", "pass", "fail"),
    ]
    assert report.rows[0].dkim_results == (("example.org", "mailhost", "pass"),)
    assert report.rows[1].spf_results == (("bulk-mailer.example", "mfrom", "pass"),)


def test_parse_microsoft_dmarc_and_the_dmarcbis_namespace():
    report = reports.parse_dmarc(microsoft_dmarc_xml("example.org", "ms-1", BEGIN, END))
    assert report.org_name == "Enterprise Outlook"
    assert report.rows[1].envelope_from == "bulk-mailer.example"
    assert report.rows[1].spf_results == (("bulk-mailer.example", "mfrom", "softfail"),)
    namespaced = google_dmarc_xml("example.org", "bis", BEGIN, END).replace(
        b"<feedback>", b'<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0">'
    )
    assert len(reports.parse_dmarc(namespaced).rows) == 3


def test_parse_tlsrpt():
    report = reports.parse_tlsrpt(tlsrpt_json("example.org", "r-1", BEGIN, END, "mx.test.example"))
    assert (report.org_name, report.contact, report.report_id) == (
        "Google Inc.",
        "smtp-tls-reporting@google.com",
        "r-1",
    )
    [policy] = report.policies
    assert (policy.policy_type, policy.policy_domain, policy.successful, policy.failed) == (
        "sts",
        "example.org",
        41,
        3,
    )
    assert [d["result_type"] for d in policy.failure_details] == [
        "certificate-expired",
        "starttls-not-supported",
    ]


def test_messages_of_each_shape_are_found():
    for raw, kind in (
        (google_dmarc_message("d@example.org", "example.org", "g", BEGIN, END), "dmarc"),
        (microsoft_dmarc_message("d@example.org", "example.org", "m", BEGIN, END), "dmarc"),
        (google_tlsrpt_message("t@example.org", "example.org", "t", BEGIN, END, "mx"), "tls"),
    ):
        found = reports.from_message(raw)
        assert found.problems == [] and len(found.reports) == 1
        expected = reports.DmarcAggregate if kind == "dmarc" else reports.TlsAggregate
        assert isinstance(found.reports[0], expected)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<feedback><report_metadata><org_name>&lol3;</org_name></report_metadata></feedback>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE feedback [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<feedback><report_metadata><org_name>&secret;</org_name></report_metadata></feedback>"""


@pytest.mark.parametrize(
    "document, problem",
    [
        (BILLION_LAUGHS, "bad XML"),
        (EXTERNAL_ENTITY, "bad XML"),
        (b"<feedback><report_metadata/></feedback>", "missing"),
        (b"<html></html>", "not feedback"),
        (b"<feedback", "bad XML"),
        (b'{"organization-name": "x"}', "missing"),
        (b"[1, 2]", "neither XML nor JSON"),
        (b"hello", "neither XML nor JSON"),
    ],
)
def test_hostile_or_broken_documents_are_refused(document, problem):
    with pytest.raises(reports.ReportError, match=problem):
        reports.parse_document(document)


def test_bad_source_ip_and_counts_are_refused():
    xml = google_dmarc_xml("example.org", "x", BEGIN, END)
    with pytest.raises(reports.ReportError, match="source_ip"):
        reports.parse_dmarc(xml.replace(b"203.0.113.5", b"203.0.113.500"))
    with pytest.raises(reports.ReportError, match="count"):
        reports.parse_dmarc(xml.replace(b"<count>12</count>", b"<count>-12</count>"))


def test_compression_bombs_cost_nothing(monkeypatch):
    monkeypatch.setattr(reports, "MAX_REPORT_BYTES", 1024 * 1024)
    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024))  # 8 MiB of zeros in ~8 KiB
    with pytest.raises(reports.ReportError, match="larger than the limit"):
        reports._documents("gzip", bomb)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("r.xml", b"\0" * (8 * 1024 * 1024))
    with pytest.raises(reports.ReportError, match="larger than the limit"):
        reports._documents("zip", buffer.getvalue())


# --- Received over SMTP, stored, shown ---------------------------------------------------------


def rua_addresses(domain: str) -> tuple[str, str]:
    """The DMARC and TLS-RPT report addresses, as `manage.py dnsrecords` prints them."""
    out = StringIO()
    call_command("dnsrecords", domain, stdout=out)
    text = out.getvalue()
    dmarc = re.search(rf'_dmarc\.{re.escape(domain)}\. IN TXT ".*rua=mailto:([^;" ]+)', text)
    tls = re.search(rf'_smtp\._tls\.{re.escape(domain)}\. IN TXT ".*rua=mailto:([^;" ]+)', text)
    return dmarc.group(1), tls.group(1)


def send(port: int, mail_from: str, to: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=15) as client:
        client.ehlo("mail-sor-f41.google.com")
        assert client.sendmail(mail_from, [to], raw) == {}


@pytest.fixture
def example(make_mailbox):
    return make_mailbox("alice@example.org").domain


def test_reports_sent_to_the_rua_addresses_over_smtp(smtp_ports, example, caplog):  # noqa: F811
    dmarc_rua, tls_rua = rua_addresses("example.org")
    assert (dmarc_rua, tls_rua) == ("dmarc-reports@example.org", "tls-reports@example.org")
    port = smtp_ports["smtp"]
    google = google_dmarc_message(dmarc_rua, "example.org", "10342937648716291736", BEGIN, END)
    send(port, "noreply-dmarc-support@google.com", dmarc_rua, google)
    send(
        port,
        "dmarcreport@microsoft.com",
        dmarc_rua,
        microsoft_dmarc_message(dmarc_rua, "example.org", "d5a1c9e0e2c04f", BEGIN, END),
    )
    send(
        port,
        "noreply-smtp-tls-reporting@google.com",
        tls_rua,
        google_tlsrpt_message(
            tls_rua,
            "example.org",
            "2026-12-02Z+example.org@google.com",
            BEGIN,
            END,
            "mx.test.example",
        ),
    )
    send(port, "noreply-dmarc-support@google.com", dmarc_rua, google)  # resent: counted once
    assert sorted(DmarcReport.objects.values_list("org_name", "report_id")) == [
        ("Enterprise Outlook", "d5a1c9e0e2c04f"),
        ("google.com", "10342937648716291736"),
    ]
    assert DmarcRecord.objects.count() == 5
    [tls] = TlsReport.objects.all()
    assert tls.domain == example and tls.org_name == "Google Inc."
    assert list(TlsReportPolicy.objects.values_list("successful", "failed")) == [(41, 3)]
    assert not Message.objects.exists()  # no mailbox there: read, not filed
    assert "report_received kind=dmarc domain=example.org org=google.com" in caplog.text
    assert "report_duplicate" in caplog.text

    summary = selectors.dmarc_summary(example, since=timezone.now() - timedelta(days=30))
    assert (summary.messages, summary.dmarc_pass, summary.spf_pass, summary.dkim_pass) == (
        22,
        18,
        16,
        18,
    )
    top = summary.sources[0]
    assert (top.source_ip, top.messages, top.dmarc_pass, top.reporters) == (
        "203.0.113.5",
        16,
        16,
        {"google.com", "Enterprise Outlook"},
    )
    forger = next(s for s in summary.sources if s.source_ip == "198.51.100.66")
    assert (forger.messages, forger.dmarc_fail, forger.quarantined) == (4, 4, 4)
    tls_summary = selectors.tls_summary(example, since=timezone.now() - timedelta(days=30))
    assert (tls_summary.successful, tls_summary.failed) == (41, 3)
    assert tls_summary.failures[0][0] == "certificate-expired" and tls_summary.failures[0][3] == 2


def test_report_address_is_refused_for_a_domain_not_ours(smtp_ports, example):  # noqa: F811
    with smtplib.SMTP("127.0.0.1", smtp_ports["smtp"], timeout=15) as client:
        client.ehlo("mail.example.net")
        client.mail("x@example.net")
        code, _ = client.rcpt("dmarc-reports@not-ours.example")
        assert code == 550 or code == 554
        code, _ = client.rcpt("dmarc-reports@example.org")
        assert code == 250


@pytest.mark.django_db
def test_a_mailbox_at_the_report_address_gets_the_message_too(example):
    from delivery.accept import message_accept

    services.mailbox_create(address="dmarc-reports@example.org", password="a long secret")
    raw = google_dmarc_message("dmarc-reports@example.org", "example.org", "both", BEGIN, END)
    result = message_accept(
        raw=raw, mail_from="x@google.com", recipients=["dmarc-reports@example.org"]
    )
    assert [r.status for r in result.recipients] == ["delivered"]
    assert DmarcReport.objects.get().report_id == "both"
    assert Message.objects.get().folder.mailbox.local_part == "dmarc-reports"


@pytest.mark.django_db
def test_junk_to_the_report_address_is_accepted_and_dropped(example, caplog):
    from delivery.accept import message_accept

    raw = b"From: spam@spam.example\r\nSubject: buy\r\n\r\nbuy now\r\n"
    result = message_accept(
        raw=raw, mail_from="spam@spam.example", recipients=["dmarc-reports@example.org"]
    )
    assert result.accepted and not DmarcReport.objects.exists() and not Message.objects.exists()
    assert "report_unreadable" in caplog.text


@pytest.fixture
def staff(admin_client, blob_dir):
    return admin_client


@pytest.mark.django_db
def test_admin_report_page(staff, example):
    from delivery.accept import message_accept

    for raw in (
        google_dmarc_message("dmarc-reports@example.org", "example.org", "g1", BEGIN, END),
        microsoft_dmarc_message("dmarc-reports@example.org", "example.org", "m1", BEGIN, END),
        google_tlsrpt_message(
            "tls-reports@example.org", "example.org", "t1", BEGIN, END, "mx.test.example"
        ),
    ):
        message_accept(raw=raw, mail_from="r@google.com", recipients=["dmarc-reports@example.org"])
    old_begin, old_end = period(days_ago=60)
    message_accept(
        raw=google_dmarc_message(
            "dmarc-reports@example.org", "example.org", "old", old_begin, old_end
        ),
        mail_from="r@google.com",
        recipients=["dmarc-reports@example.org"],
    )
    change = staff.get(reverse("admin:mailboxes_domain_change", args=[example.pk])).content.decode()
    url = reverse("admin:mailboxes_domain_reports", args=[example.pk])
    assert url in change
    page = staff.get(url).content.decode()
    compact = re.sub(r"\s+", " ", page)
    assert '<tr data-row="dmarc"><th>DMARC</th><td>22</td><td>18</td><td>4</td></tr>' in compact
    assert (
        '<tr data-row="spf"><th>SPF (aligned)</th><td>22</td><td>16</td><td>6</td></tr>' in compact
    )
    assert (
        '<tr data-row="dkim"><th>DKIM (aligned)</th><td>22</td><td>18</td><td>4</td></tr>'
        in compact
    )
    assert 'data-source="198.51.100.66" class="report-failing"' in compact
    assert '<tr data-row="tls-total"><th>all reporters</th><td>41</td><td>3</td></tr>' in compact
    assert 'data-failure="certificate-expired"' in compact
    assert ">old<" not in compact  # 60 days ago: outside the default 30
    year = staff.get(url + "?days=365").content.decode()
    assert "<td>old</td>" in year
    assert '<tr data-row="dmarc"><th>DMARC</th><td>39</td><td>32</td><td>7</td></tr>' in re.sub(
        r"\s+", " ", year
    )
