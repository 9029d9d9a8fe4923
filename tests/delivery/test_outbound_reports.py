"""Aggregate reports we send (issue 20): a day of outbound sessions becomes a TLS report
(RFC 8460) per recipient domain that asks for one, a day of mail received on port 25 becomes
a DMARC aggregate report (RFC 7489) per From domain that asks for one. End to end: the
deliveries and the SMTP sessions are real, the local DNS server publishes the policies, the
`rua` records and our DKIM key, the daily job runs with a "now" of the next day, and the
reports arrive at an SMTP peer (and an HTTPS endpoint), read back with delivery/reports.py."""

from __future__ import annotations

import datetime
import gzip
import http.server
import json
import ssl
import threading
from email import message_from_bytes
from email.policy import compat32

import dkim
import pytest

from delivery import outreports, reports
from delivery.dkim import dkim_public_key_value
from delivery.models import (
    DmarcEvaluation,
    OutboundRecipient,
    RecipientStatus,
    TlsSessionCount,
)
from delivery.outreports import tlsrpt
from mailboxes.models import Domain
from tests.delivery.conftest import run_queue
from tests.delivery.test_outbound_tls import (  # noqa: F401 - `world` is a fixture
    ENFORCE,
    der_of,
    spool,
    tlsa,
    world,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("delivery_env")]

REPORTS_PEER = "127.0.0.6"


def tomorrow(minutes: int = 30) -> datetime.datetime:
    today = datetime.datetime.now(datetime.UTC).date()
    midnight = datetime.datetime.combine(today + datetime.timedelta(days=1), datetime.time())
    return midnight.replace(tzinfo=datetime.UTC) + datetime.timedelta(minutes=minutes)


@pytest.fixture(autouse=True)
def _no_counts_left():
    tlsrpt.forget()
    yield
    tlsrpt.forget()


def publish_our_dkim_key(zone) -> None:
    domain = Domain.objects.get(name="example.org")
    zone.add_txt(f"{domain.dkim_selector}._domainkey.example.org", dkim_public_key_value(domain))


def reports_peer(world):  # noqa: F811 - the fixture's value
    """reports.test's MX: a plain SMTP peer that keeps what it is sent."""
    world.zone.add("reports.test", "MX", "10 mx.reports.test.")
    world.zone.add("mx.reports.test", "A", REPORTS_PEER)
    return world.peers.start(REPORTS_PEER)


class PostServer:
    """https://rua.reports.test:<port>/tlsrpt on 127.0.0.10: keeps each POST."""

    def __init__(self, ca, address: str = "127.0.0.10") -> None:
        self.posts: list[tuple[str, str, bytes]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append((self.path, self.headers["Content-Type"], body))
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((address, 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(ca.cert_path), str(ca.key_path))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def by_domain(received) -> dict[str, bytes]:
    found = {}
    for item in received:
        message = message_from_bytes(item.data, policy=compat32)
        found[message["TLS-Report-Domain"] or message["Subject"].split()[2]] = item.data
    return found


# --- TLS reports (RFC 8460) ---------------------------------------------------------------------


def test_a_day_of_sessions_becomes_a_signed_tls_report_per_domain(world, settings):  # noqa: F811
    zone = world.zone
    publish_our_dkim_key(zone)
    collector = reports_peer(world)
    # A session per message (reuse would carry both messages over one counted session).
    settings.MAILHOST_OUTBOUND_IDLE_TIMEOUT = 0
    # secure.test: MTA-STS enforce; two sessions verified, then an impostor with a
    # certificate for another name (deferred).
    world.peer("127.0.0.2", world.ca("ca-mx", "mx1.secure.test"))
    world.policy(ENFORCE)
    zone.add_txt("_smtp._tls.secure.test", "v=TLSRPTv1; rua=mailto:tlsrpt@reports.test")
    for _ in range(2):
        message = spool()
        run_queue()
        assert OutboundRecipient.objects.get(message=message).status == RecipientStatus.DELIVERED
    world.peers.controllers.pop("127.0.0.2").stop()
    world.peer("127.0.0.2", world.ca("ca-impostor", "someone-else.test"))
    impostor = spool()
    run_queue()
    assert OutboundRecipient.objects.get(message=impostor).status == RecipientStatus.DEFERRED
    # plain.test: no policy, a peer without STARTTLS; its rua is mail and https.
    zone.add("plain.test", "MX", "10 mx.plain.test.")
    zone.add("mx.plain.test", "A", "127.0.0.4")
    world.peers.start("127.0.0.4")
    https_ca = world.ca("ca-rua", "rua.reports.test")
    post_server = PostServer(https_ca)
    zone.add("rua.reports.test", "A", "127.0.0.10")
    zone.add_txt(
        "_smtp._tls.plain.test",
        "v=TLSRPTv1; rua=mailto:tlsrpt@reports.test,"
        f"https://rua.reports.test:{post_server.port}/tlsrpt",
    )
    # dane.test: signed, a TLSA record that does not match the peer's certificate.
    zone.add("dane.test", "MX", "10 mx1.dane.test.")
    zone.add("mx1.dane.test", "A", "127.0.0.5")
    dane_ca = world.ca("ca-dane", "mx1.dane.test")
    world.peer("127.0.0.5", dane_ca)
    tlsa_name = f"_{world.peers.port}._tcp.mx1.dane.test"
    wrong = tlsa(3, 1, 1, der_of(world.ca("ca-dane-other", "mx1.dane.test").cert_path))
    zone.add(tlsa_name, "TLSA", wrong)
    zone.signed.update({"dane.test", tlsa_name})
    zone.add_txt("_smtp._tls.dane.test", "v=TLSRPTv1; rua=mailto:tlsrpt@reports.test")
    # nothing.test: sessions, but no TLSRPT record: no report.
    zone.add("nothing.test", "MX", "10 mx.plain.test.")
    from delivery.services import SpoolRecipient, spool_create
    from mailboxes.services import blob_store

    def send(to: str):
        message = spool_create(
            blob=blob_store(b"From: alice@example.org\r\nSubject: hi\r\n\r\nhello\r\n"),
            mail_from="alice@example.org",
            recipients=[SpoolRecipient(to)],
        )
        run_queue()
        return OutboundRecipient.objects.get(message=message)

    assert send("bob@plain.test").protection == "plain"
    assert send("bob@dane.test").status == RecipientStatus.DEFERRED
    assert send("bob@nothing.test").status == RecipientStatus.DELIVERED

    # The day is not over: nothing is due yet.
    assert outreports.send_due() == {"tls": 0, "dmarc": 0}
    assert TlsSessionCount.objects.exists()  # counted, flushed to the database

    sent = outreports.send_due(now=tomorrow())
    assert sent["tls"] == 3
    run_queue()
    got = by_domain(collector.received)
    assert sorted(got) == ["dane.test", "plain.test", "secure.test"]
    for domain, raw in got.items():
        assert [r.rcpt_tos for r in collector.received if r.data == raw] == [
            ["tlsrpt@reports.test"]
        ]
        assert dkim.verify(raw, dnsfunc=zone.txt_lookup), domain
        message = message_from_bytes(raw, policy=compat32)
        assert message.get_content_type() == "multipart/report"
        assert message.get_param("report-type") == "tlsrpt"
        assert message["From"] == "noreply@example.org"
        assert message["TLS-Report-Submitter"] == "mx.test.example"
        assert message["Subject"].startswith(f"Report Domain: {domain} Submitter: mx.test.example")
        attachment = [
            p for p in message.walk() if p.get_content_type() == "application/tlsrpt+gzip"
        ]
        assert attachment[0].get_filename().startswith(f"mx.test.example!{domain}!")
        assert attachment[0].get_filename().endswith(".json.gz")

    day = datetime.datetime.now(datetime.UTC).date()
    [secure] = reports.from_message(got["secure.test"]).reports
    assert (secure.org_name, secure.contact) == ("example.org", "postmaster@example.org")
    assert secure.begin == datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
    [policy] = secure.policies
    assert (policy.policy_type, policy.policy_domain) == ("sts", "secure.test")
    assert policy.mx_hosts == ("mx1.secure.test", "*.backup.secure.test")
    assert (policy.successful, policy.failed) == (2, 1)
    [detail] = policy.failure_details
    assert detail["result_type"] == "certificate-host-mismatch"
    assert detail["receiving_mx_hostname"] == "mx1.secure.test"
    assert detail["receiving_ip"] == "127.0.0.2"
    assert detail["failed_session_count"] == 1
    assert detail["sending_mta_ip"] == "127.0.0.1"
    document = json.loads(
        gzip.decompress(
            [
                p.get_payload(decode=True)
                for p in message_from_bytes(got["secure.test"], policy=compat32).walk()
                if p.get_content_type() == "application/tlsrpt+gzip"
            ][0]
        )
    )
    assert document["policies"][0]["policy"]["policy-string"] == ENFORCE.strip().split("\n")

    [plain] = reports.from_message(got["plain.test"]).reports
    [policy] = plain.policies
    assert (policy.policy_type, policy.successful, policy.failed) == ("no-policy-found", 0, 1)
    assert policy.failure_details[0]["result_type"] == "starttls-not-supported"
    assert policy.failure_details[0]["receiving_mx_hostname"] == "mx.plain.test"
    # The same report went to the https rua.
    [(path, kind, body)] = post_server.posts
    post_server.close()
    assert (path, kind) == ("/tlsrpt", "application/tlsrpt+gzip")
    assert reports.parse_document(gzip.decompress(body)) == plain

    [dane_report] = reports.from_message(got["dane.test"]).reports
    [policy] = dane_report.policies
    assert (policy.policy_type, policy.mx_hosts) == ("tlsa", ("mx1.dane.test",))
    assert (policy.successful, policy.failed) == (0, 1)
    assert policy.failure_details[0]["result_type"] == "certificate-not-trusted"
    assert json.loads(
        gzip.decompress(
            [
                p.get_payload(decode=True)
                for p in message_from_bytes(got["dane.test"], policy=compat32).walk()
                if p.get_content_type() == "application/tlsrpt+gzip"
            ][0]
        )
    )["policies"][0]["policy"]["policy-string"] == [wrong]

    # The reports' own sessions (TLS-Required: No) are not counted; the rows are gone; a
    # second run sends nothing again.
    assert tlsrpt.take() == []
    assert not TlsSessionCount.objects.exclude(policy_domain="nothing.test").exists()
    assert outreports.send_due(now=tomorrow(90)) == {"tls": 0, "dmarc": 0}
    assert not TlsSessionCount.objects.exists()  # nothing.test's: nobody to report to


# --- DMARC aggregate reports (RFC 7489) ---------------------------------------------------------

RECEIVER = "mx.receiver.test"


def dkim_key(zone, domain: str, selector: str = "s1") -> bytes:
    """A fresh RSA key for `domain`, its public half published; the private PEM back."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    zone.add_txt(
        f"{selector}._domainkey.{domain}", f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"
    )
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def smtp_send(port: int, *, mail_from: str, header_from: str, source: str = "127.0.0.1", sign=None):
    import smtplib

    raw = (
        f"From: {header_from}\r\nTo: bob@example.org\r\nSubject: report me\r\n"
        f"Message-ID: <{id(object())}@{header_from.rpartition('@')[2]}>\r\n\r\nHello.\r\n"
    ).encode()
    if sign is not None:
        domain, pem = sign
        raw = dkim.sign(raw, b"s1", domain.encode(), pem) + raw
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(source, 0)) as client:
        client.ehlo("client.example.net")
        client.mail(mail_from)
        client.rcpt("bob@example.org")
        code, _ = client.data(raw)
    return code


@pytest.fixture
def receiving(live_settings, dns_server, peers, make_mailbox, settings):
    """Our port 25 (MAILHOST_HOSTNAME mx.receiver.test, example.org hosted with its DKIM key
    published), and reports.test's MX as a peer that keeps what it is sent."""
    from mailhost import runner
    from tests.support.servers import running

    make_mailbox("bob@example.org")
    live_settings.MAILHOST_HOSTNAME = RECEIVER
    publish_our_dkim_key(dns_server)
    dns_server.add("reports.test", "MX", "10 mx.reports.test.")
    dns_server.add("mx.reports.test", "A", REPORTS_PEER)
    collector = peers.start(REPORTS_PEER)
    with running(runner.SMTP) as ports:
        yield dns_server, ports["smtp"], collector


def test_a_day_of_inbound_mail_becomes_a_dmarc_report_per_domain(receiving):
    zone, port, collector = receiving
    # sender.test: p=quarantine, reports to another organization that agreed to take them.
    zone.add_txt("sender.test", "v=spf1 ip4:127.0.0.1 -all")
    zone.add_txt("_dmarc.sender.test", "v=DMARC1; p=quarantine; rua=mailto:dmarc@reports.test")
    zone.add_txt("sender.test._report._dmarc.reports.test", "v=DMARC1")
    pem = dkim_key(zone, "sender.test")
    # reject.test: p=reject, reports to the same place (also agreed).
    zone.add_txt("_dmarc.reject.test", "v=DMARC1; p=reject; rua=mailto:dmarc@reports.test")
    zone.add_txt("reject.test._report._dmarc.reports.test", "v=DMARC1")
    # other.test asks for reports at reports.test, which never agreed (RFC 7489 7.1).
    zone.add_txt("other.test", "v=spf1 ip4:127.0.0.1 -all")
    zone.add_txt("_dmarc.other.test", "v=DMARC1; p=none; rua=mailto:dmarc@reports.test")
    # quiet.test: a DMARC record without rua: nothing recorded is sent anywhere.
    zone.add_txt("quiet.test", "v=spf1 ip4:127.0.0.1 -all")
    zone.add_txt("_dmarc.quiet.test", "v=DMARC1; p=none")

    ok = dict(mail_from="alice@sender.test", header_from="alice@sender.test")
    assert smtp_send(port, **ok) == 250
    assert smtp_send(port, **ok) == 250
    assert smtp_send(port, **ok, sign=("sender.test", pem)) == 250
    # Forged: another envelope, another address: neither SPF nor DKIM aligns; quarantined.
    forged = dict(mail_from="x@spoofer.example.net", header_from="ceo@sender.test")
    assert smtp_send(port, **forged, source="127.0.0.2") == 250
    assert smtp_send(port, mail_from="x@spoofer.example.net", header_from="a@reject.test") == 550
    assert smtp_send(port, mail_from="bob@other.test", header_from="bob@other.test") == 250
    assert smtp_send(port, mail_from="bob@quiet.test", header_from="bob@quiet.test") == 250
    assert DmarcEvaluation.objects.count() == 7

    assert outreports.send_due() == {"tls": 0, "dmarc": 0}  # the day is not over
    assert outreports.send_due(now=tomorrow()) == {"tls": 0, "dmarc": 2}
    run_queue()
    got = by_domain(collector.received)
    assert sorted(got) == ["reject.test", "sender.test"]
    today = datetime.datetime.now(datetime.UTC).date()
    for domain, raw in got.items():
        assert dkim.verify(raw, dnsfunc=zone.txt_lookup), domain
        message = message_from_bytes(raw, policy=compat32)
        assert message["From"] == "noreply@example.org"
        assert " ".join(message["Subject"].split()) == (
            f"Report Domain: {domain} Submitter: {RECEIVER} Report-ID: <{today:%Y%m%d}.{domain}@{RECEIVER}>"
        )
        [part] = [p for p in message.walk() if p.get_content_type() == "application/gzip"]
        begin = int(
            datetime.datetime.combine(today, datetime.time(), tzinfo=datetime.UTC).timestamp()
        )
        assert part.get_filename() == f"{RECEIVER}!{domain}!{begin}!{begin + 86399}.xml.gz"
        check_structure(gzip.decompress(part.get_payload(decode=True)))

    [report] = reports.from_message(got["sender.test"]).reports
    assert (report.org_name, report.org_email) == ("example.org", "postmaster@example.org")
    assert (report.policy_domain, report.policy, report.pct) == ("sender.test", "quarantine", 100)
    assert (report.adkim, report.aspf) == ("r", "r")
    assert report.begin == datetime.datetime.combine(today, datetime.time(), tzinfo=datetime.UTC)
    rows = {(r.source_ip, r.disposition, r.spf, r.dkim, r.count) for r in report.rows}
    assert rows == {
        ("127.0.0.1", "none", "pass", "fail", 2),
        ("127.0.0.1", "none", "pass", "pass", 1),
        ("127.0.0.2", "quarantine", "fail", "fail", 1),
    }
    signed = next(r for r in report.rows if r.dkim == "pass")
    assert signed.dkim_results == (("sender.test", "s1", "pass"),)
    assert signed.spf_results == (("sender.test", "mfrom", "pass"),)
    assert signed.envelope_from == "sender.test" and signed.header_from == "sender.test"
    forged_row = next(r for r in report.rows if r.disposition == "quarantine")
    assert forged_row.envelope_from == "spoofer.example.net"
    assert forged_row.spf_results == (("spoofer.example.net", "mfrom", "none"),)

    [refused] = reports.from_message(got["reject.test"]).reports
    assert [(r.disposition, r.count, r.header_from) for r in refused.rows] == [
        ("reject", 1, "reject.test")
    ]
    # Everything reported or with nobody to report to is gone; a second run sends nothing.
    assert not DmarcEvaluation.objects.exists()
    assert outreports.send_due(now=tomorrow(90)) == {"tls": 0, "dmarc": 0}


def test_the_admin_lists_the_reports_sent(client, live_settings):
    from django.contrib.auth.models import User

    from delivery.models import ReportSent

    ReportSent.objects.create(
        kind="tls",
        day=datetime.date(2026, 12, 2),
        domain="secure.test",
        report_id="20261202.secure.test@mx.test.example",
        destinations="mailto:tlsrpt@reports.test",
        sent_at=tomorrow(),
    )
    client.force_login(User.objects.create_superuser("admin", "admin@example.org", "pw"))
    page = client.get("/admin/delivery/reportsent/").content.decode()
    assert "20261202.secure.test@mx.test.example" in page
    assert "mailto:tlsrpt@reports.test" in page


def check_structure(xml: bytes) -> None:
    """The element order of RFC 7489 appendix C (with DMARCbis's envelope_from)."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml)
    assert root.tag == "feedback"
    names = [child.tag for child in root]
    assert names[:3] == ["version", "report_metadata", "policy_published"]
    assert set(names[3:]) == {"record"}
    meta = root.find("report_metadata")
    assert [c.tag for c in meta] == ["org_name", "email", "report_id", "date_range"]
    assert [c.tag for c in meta.find("date_range")] == ["begin", "end"]
    assert [c.tag for c in root.find("policy_published")] == [
        "domain",
        "adkim",
        "aspf",
        "p",
        "sp",
        "pct",
    ]
    for record in root.findall("record"):
        assert [c.tag for c in record] == ["row", "identifiers", "auth_results"]
        row = record.find("row")
        assert [c.tag for c in row] == ["source_ip", "count", "policy_evaluated"]
        evaluated = [c.tag for c in row.find("policy_evaluated")]
        assert evaluated[:3] == ["disposition", "dkim", "spf"]
        assert set(evaluated[3:]) <= {"reason"}
        identifiers = [c.tag for c in record.find("identifiers")]
        assert identifiers in (["envelope_from", "header_from"], ["header_from"])
        auth = [c.tag for c in record.find("auth_results")]
        assert auth[-1] == "spf" and set(auth[:-1]) <= {"dkim"}
        for dkim_el in record.find("auth_results").findall("dkim"):
            assert [c.tag for c in dkim_el] in (
                ["domain", "selector", "result"],
                ["domain", "result"],
            )
        assert [c.tag for c in record.find("auth_results").find("spf")] == [
            "domain",
            "scope",
            "result",
        ]
