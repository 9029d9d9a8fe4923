"""TLS reporting's parts (RFC 8460): the `_smtp._tls` record, the result type of a failed
handshake (real handshakes against a local TLS server), the failures a policy decides before
any session (an MX host an enforce policy does not name, a policy that cannot be fetched),
and DMARC report destinations (RFC 7489 7.1 and the !size limit)."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from delivery import mtasts, tlspolicy
from delivery.dns import MXHost
from delivery.outreports import dmarc, tlsrpt
from tests.delivery.test_outbound_tls import ENFORCE, world  # noqa: F401 - a fixture


@pytest.fixture(autouse=True)
def _no_counts_left():
    tlsrpt.forget()
    yield
    tlsrpt.forget()


@pytest.mark.parametrize(
    "records,rua",
    [
        ([b"v=TLSRPTv1; rua=mailto:tls@example.net"], ["mailto:tls@example.net"]),
        (
            [b"v=TLSRPTv1;rua=mailto:a@example.net, https://r.example.net/v1"],
            ["mailto:a@example.net", "https://r.example.net/v1"],
        ),
        ([b"v=TLSRPTv1; rua=ftp://x.example.net"], None),  # no usable scheme
        ([b"v=TLSRPTv10; rua=mailto:a@example.net"], None),
        ([b"v=TLSRPTv1; rua=mailto:a@x.net", b"v=TLSRPTv1; rua=mailto:b@x.net"], None),
        ([b"v=spf1 -all"], None),
        ([], None),
    ],
)
def test_the_reporting_policy_record(records, rua):
    assert tlsrpt.parse_record(records) == rua


# --- handshake failures -----------------------------------------------------------------------


def self_signed(tmp_path, name: str, *, expired: bool = False):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    start, end = (now - datetime.timedelta(days=10), now - datetime.timedelta(days=1))
    if not expired:
        start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=1)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def handshake_error(cert_path, key_path, *, trusted, name: str) -> BaseException:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(str(cert_path), str(key_path))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        conn, _ = listener.accept()
        try:
            server.wrap_socket(conn, server_side=True).close()
        except (ssl.SSLError, OSError):
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = ssl.create_default_context(cafile=str(trusted))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            client.wrap_socket(sock, server_hostname=name)
    except ssl.SSLError as exc:
        return exc
    finally:
        thread.join(5)
        listener.close()
    raise AssertionError("the handshake succeeded")


def test_an_expired_certificate_is_certificate_expired(tmp_path):
    cert, key = self_signed(tmp_path, "mx.example.net", expired=True)
    error = handshake_error(cert, key, trusted=cert, name="mx.example.net")
    assert tlsrpt.handshake_failure(error) == tlsrpt.CERTIFICATE_EXPIRED


def test_an_unknown_issuer_is_certificate_not_trusted(tmp_path):
    cert, key = self_signed(tmp_path, "mx.example.net")
    other, _ = self_signed(tmp_path, "ca.example.net")
    error = handshake_error(cert, key, trusted=other, name="mx.example.net")
    assert tlsrpt.handshake_failure(error) == tlsrpt.CERTIFICATE_NOT_TRUSTED


def test_another_name_is_certificate_host_mismatch(tmp_path):
    cert, key = self_signed(tmp_path, "mx.example.net")
    error = handshake_error(cert, key, trusted=cert, name="mx1.example.net")
    assert tlsrpt.handshake_failure(error) == tlsrpt.CERTIFICATE_HOST_MISMATCH


def test_anything_else_is_validation_failure():
    assert tlsrpt.handshake_failure(ssl.SSLError(1, "wrong version")) == tlsrpt.VALIDATION_FAILURE


# --- failures decided before a session ---------------------------------------------------------


def counted() -> dict[tuple[str, str, str], int]:
    return {
        (key.policy.policy_type, key.result_type, key.mx_host): n for _, key, n, _ in tlsrpt.take()
    }


@pytest.mark.django_db(transaction=True)
def test_an_mx_the_enforce_policy_does_not_name_is_a_validation_failure(world):  # noqa: F811
    world.policy(ENFORCE)
    security = tlspolicy.destination_security("secure.test", port=25, raw=b"", require_tls=False)
    assert security(MXHost("rogue.secure.test", ["127.0.0.4"])).protection == "refused"
    assert security(MXHost("mx1.secure.test", ["127.0.0.2"])).protection == "mta-sts"
    assert counted() == {("sts", "validation-failure", "rogue.secure.test"): 1}


@pytest.mark.django_db(transaction=True)
def test_a_policy_that_cannot_be_had_is_counted_by_why(world, tmp_path):  # noqa: F811
    world.policy("version: STSv1\nmode: enforce\n")  # no mx: invalid
    assert mtasts.policy("secure.test") is None
    assert counted() == {("no-policy-found", "sts-policy-invalid", ""): 1}
    # The policy server's certificate is not one our CAs vouch for.
    untrusted, _ = self_signed(tmp_path, "elsewhere.test")
    world.settings.MAILHOST_OUTBOUND_CA_FILE = str(untrusted)
    world.zone.records["_mta-sts.secure.test"]["TXT"] = ['"v=STSv1; id=two;"']
    assert mtasts.policy("secure.test") is None
    assert counted() == {("no-policy-found", "sts-webpki-invalid", ""): 1}
    # The server is gone.
    world.https.close()
    world.zone.records["_mta-sts.secure.test"]["TXT"] = ['"v=STSv1; id=three;"']
    assert mtasts.policy("secure.test") is None
    assert counted() == {("no-policy-found", "sts-policy-fetch-error", ""): 1}


@pytest.mark.django_db(transaction=True)
def test_reporting_off_counts_nothing(world, settings):  # noqa: F811
    settings.MAILHOST_TLS_REPORTS = False
    world.policy(ENFORCE)
    security = tlspolicy.destination_security("secure.test", port=25, raw=b"", require_tls=False)
    assert security(MXHost("rogue.secure.test", ["127.0.0.4"])).tlsrpt is None
    assert security(MXHost("mx1.secure.test", ["127.0.0.2"])).tlsrpt is None
    assert tlsrpt.take() == []


# --- DMARC destinations ------------------------------------------------------------------------


def test_dmarc_destinations_inside_the_organization_or_agreed(dns_server):
    dns_server.add_txt(
        "_dmarc.example.com",
        "v=DMARC1; p=none; rua=mailto:agg@example.com!10m,mailto:a@reports.example.net,"
        "mailto:b@never.example.org,https://example.com/dmarc,mailto:c@sub.example.com!1k",
    )
    dns_server.add_txt("example.com._report._dmarc.reports.example.net", "v=DMARC1")
    policy = dmarc.policy_for("mail.example.com")
    assert policy is not None and policy.domain == "example.com"
    assert dmarc.destinations(policy) == [
        dmarc.Destination("agg@example.com", 10 * 1024 * 1024),
        dmarc.Destination("a@reports.example.net", None),
        dmarc.Destination("c@sub.example.com", 1024),
    ]


# --- the counts reach the database; a report goes once ------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_sweeper_stores_the_counts_of_its_process():
    import time

    from delivery.models import TlsSessionCount
    from delivery.worker import Sweeper

    key = tlsrpt.PolicyKey("example.net", "no-policy-found")
    key.session()
    key.session()
    key.session("starttls-not-supported", mx_host="MX.example.net.", receiving_ip="192.0.2.1")
    sweeper = Sweeper(interval=0.05)
    sweeper.start()
    try:
        deadline = time.monotonic() + 10
        while TlsSessionCount.objects.count() < 2:
            assert time.monotonic() < deadline, "the sweeper did not store the counts"
            time.sleep(0.05)
    finally:
        sweeper.stop()
        sweeper.join(5)
    rows = {
        (r.result_type, r.mx_host, r.receiving_ip, r.count) for r in TlsSessionCount.objects.all()
    }
    assert rows == {("", "", "", 2), ("starttls-not-supported", "mx.example.net", "192.0.2.1", 1)}
    # Counted again and flushed again: added to the same rows.
    key.session()
    tlsrpt.flush()
    assert TlsSessionCount.objects.get(result_type="").count == 3


@pytest.mark.django_db(transaction=True)
def test_a_report_is_queued_once_whoever_runs_the_job(make_domain):
    from delivery.models import OutboundMessage, ReportSent, TlsSessionCount
    from delivery.outreports import services

    make_domain("example.org")
    day = datetime.date(2026, 12, 2)

    def queue_it() -> bool:
        return services.report_queue(
            kind=ReportSent.Kind.TLS,
            day=day,
            domain="example.net",
            report_id="r1",
            destinations=["mailto:tls@example.net"],
            raw=b"From: noreply@example.org\r\nSubject: r\r\n\r\nreport\r\n",
            mail_from="noreply@example.org",
            recipients=["tls@example.net"],
            covered=TlsSessionCount.objects.filter(day=day, policy_domain="example.net"),
        )

    assert queue_it() is True
    assert queue_it() is False
    assert ReportSent.objects.count() == 1
    assert OutboundMessage.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("delivery_env")
def test_a_reused_session_is_counted_once(world, settings):  # noqa: F811
    # RFC 8460 counts TLS sessions, not messages: two messages over one kept session.
    from delivery import client
    from delivery.models import OutboundRecipient, RecipientStatus, TlsSessionCount
    from tests.delivery.conftest import run_queue
    from tests.delivery.test_outbound_tls import spool

    settings.MAILHOST_OUTBOUND_IDLE_TIMEOUT = 30
    world.peer("127.0.0.2", world.ca("ca-mx", "mx1.secure.test"))
    world.policy(ENFORCE)
    opened = client.connection_cache.opened  # counts since the process started
    for _ in range(2):
        message = spool()
        run_queue()
        assert OutboundRecipient.objects.get(message=message).status == RecipientStatus.DELIVERED
    assert client.connection_cache.opened - opened == 1
    tlsrpt.flush()
    [row] = TlsSessionCount.objects.all()
    assert (row.policy_domain, row.policy_type, row.result_type, row.count) == (
        "secure.test",
        "sts",
        "",
        1,
    )
