"""ACME (issue 18): `manage.py runmail` with MAILHOST_ACME_DIRECTORY pointing to a Pebble (Let's
Encrypt's test CA, Debian package `pebble`) started here, which validates http-01 against our
web port, resolving MAILHOST_HOSTNAME through the test DNS server. The certificate it issues is
then served on 993, 465 and the HTTPS web port, an IMAP session opened before carries on, and a
second start with that certificate still valid does not ask for another. The one
hosted domain, the one of whose mail names (autoconfig.) resolves to us, gets a certificate of
its own, served to clients asking for that name (SNI). The same with tls-alpn-01 (RFC 8737),
validated on our HTTPS port, http-01's port closed."""

from __future__ import annotations

import imaplib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
import uuid

import pytest
from cryptography import x509

from bench.mailhost_process import Mailhost, PostgresDatabase, free_port
from tests.delivery import conftest as delivery
from tests.protocols.test_https_reload import PASSWORD, served_certificate
from tests.support.tlsca import make_ca

PEBBLE = shutil.which("pebble") or "/usr/bin/pebble"
pytestmark = pytest.mark.skipif(
    not os.access(PEBBLE, os.X_OK), reason="pebble (Debian package pebble) is not installed"
)
HOSTNAME = "mx.bench.test"


def wait_listening(port: int, what: str, log=lambda: "") -> None:  # noqa: ANN001
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, f"{what} not listening\n{log()}"
            time.sleep(0.1)


@pytest.fixture
def setup(tmp_path):
    yield from make_setup(tmp_path, "http-01")


@pytest.fixture
def setup_alpn(tmp_path):
    yield from make_setup(tmp_path, "tls-alpn-01")


def make_setup(tmp_path, challenge: str):
    dns = delivery.TestDNSServer()
    dns.add(HOSTNAME, "A", "127.0.0.1")
    # Of example.org's mail names only autoconfig. resolves to us: it joins the certificate.
    dns.add("autoconfig.example.org", "A", "127.0.0.1")
    dns.add("mta-sts.example.org", "A", "192.0.2.1")
    database = None
    url = os.environ.get("DATABASE_URL")
    if url and url.startswith("postgres"):
        database = PostgresDatabase(url, f"mh_acme_{os.getpid()}_{uuid.uuid4().hex[:6]}")
        database.create()
    pebble_ca = make_ca(tmp_path / "pebble-tls", names=("127.0.0.1", "localhost"))
    pebble_port, management_port = free_port(), free_port()
    webs_port = free_port()
    server = Mailhost(
        tmp_path / "data",
        database_url=database.url if database else None,
        redis_url=os.environ.get("REDIS_URL"),
        extra_env={
            "MAILHOST_HOSTNAME": HOSTNAME,
            "MAILHOST_WEBS_PORT": str(webs_port),
            "MAILHOST_ACME_DIRECTORY": f"https://127.0.0.1:{pebble_port}/dir",
            "MAILHOST_ACME_EMAIL": "postmaster@example.org",
            "MAILHOST_ACME_CA_FILE": str(pebble_ca.ca_path),
            "MAILHOST_ACME_CHECK_INTERVAL": "1",
            "MAILHOST_ACME_CHALLENGE": challenge,
            "MAILHOST_DNS_SERVERS": f"127.0.0.1:{dns.port}",
        },
    )
    server.ports["webs"] = webs_port
    config = tmp_path / "pebble.json"
    config.write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": f"127.0.0.1:{pebble_port}",
                    "managementListenAddress": f"127.0.0.1:{management_port}",
                    "certificate": str(pebble_ca.cert_path),
                    "privateKey": str(pebble_ca.key_path),
                    # Each challenge validated on our port for it, the other on a closed one.
                    "httpPort": server.ports["web"] if challenge == "http-01" else free_port(),
                    "tlsPort": webs_port if challenge == "tls-alpn-01" else free_port(),
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                }
            }
        )
    )
    pebble_log = tmp_path / "pebble.log"
    pebble = None

    def start_pebble():
        nonlocal pebble
        pebble = subprocess.Popen(
            [PEBBLE, "-config", str(config), "-dnsserver", f"127.0.0.1:{dns.port}"],
            env={**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
            stdout=pebble_log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_listening(pebble_port, "pebble", pebble_log.read_text)

    def intermediate() -> x509.Certificate:
        context = pebble_ca.client_context()
        url = f"https://127.0.0.1:{management_port}/intermediates/0"
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            return x509.load_pem_x509_certificate(response.read())

    server.start_pebble, server.intermediate, server.pebble_log = (
        start_pebble,
        intermediate,
        pebble_log,
    )
    try:
        server.manage("migrate", "-v0")
        server.manage("adddomain", "example.org")
        server.manage("addmailbox", "alice@example.org", "--password-stdin", stdin=PASSWORD + "\n")
        yield server
    finally:
        server.stop()
        if pebble is not None:
            pebble.terminate()
            pebble.wait(10)
        dns.close()
        if database is not None:
            database.drop()


def certificate(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


def dns_names(cert: x509.Certificate) -> list[str]:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(names.get_values_for_type(x509.DNSName))


def certificate_for(port: int, name: str) -> x509.Certificate:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=name) as sock:
            return certificate(sock.getpeercert(binary_form=True))


def wait_for_domain_certificate(server, name: str) -> x509.Certificate:  # noqa: ANN001
    """The certificate served for `name` once it is the CA's (the hostname's comes first)."""
    issuer = server.intermediate().subject
    deadline = time.monotonic() + 60
    while (cert := certificate_for(server.ports["imaps"], name)).issuer != issuer:
        assert time.monotonic() < deadline, server.log_tail() + server.pebble_log.read_text()
        time.sleep(0.2)
    return cert


def test_certificate_from_pebble_used_everywhere_and_not_issued_twice(setup):
    server = setup
    server.start()
    wait_listening(server.ports["webs"], "webs", server.log_tail)
    # Before the CA answers: the self-signed certificate, and an IMAP session on it.
    unverified = ssl.create_default_context()
    unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
    session = imaplib.IMAP4_SSL(
        "127.0.0.1", server.ports["imaps"], ssl_context=unverified, timeout=10
    )
    session.login("alice@example.org", PASSWORD)
    session.select("INBOX")
    before = session.sock.getpeercert(binary_form=True)
    assert certificate(before).issuer == certificate(before).subject  # self-signed

    server.start_pebble()  # the next check (MAILHOST_ACME_CHECK_INTERVAL=1) issues
    deadline = time.monotonic() + 60
    while served_certificate(server.ports["imaps"]) == before:
        assert time.monotonic() < deadline, server.log_tail() + server.pebble_log.read_text()
        time.sleep(0.2)
    issuer = server.intermediate().subject
    issued = served_certificate(server.ports["imaps"])
    cert = certificate(issued)
    assert cert.issuer == issuer
    assert dns_names(cert) == [HOSTNAME]
    for port in ("submissions", "webs"):
        assert served_certificate(server.ports[port]) == issued, port
    # example.org's certificate, its own, to a client asking for its name (SNI).
    domain = wait_for_domain_certificate(server, "autoconfig.example.org")
    assert domain.issuer == issuer
    assert dns_names(domain) == ["autoconfig.example.org"]
    # The session opened before the switch carries on.
    assert session.noop()[0] == "OK"
    session.logout()
    files = server.data_dir / "tls" / "acme"
    assert oct((files).stat().st_mode & 0o777) == "0o700"
    assert oct((files / "key.pem").stat().st_mode & 0o777) == "0o600"
    mtime = (files / "cert.pem").stat().st_mtime_ns

    # A second start with the certificate still valid: served at once, not asked for again.
    server.stop()
    server.start()
    assert served_certificate(server.ports["imaps"]) == issued
    time.sleep(3)  # several checks at MAILHOST_ACME_CHECK_INTERVAL=1
    assert served_certificate(server.ports["imaps"]) == issued
    assert (files / "cert.pem").stat().st_mtime_ns == mtime


def test_acmecert_issues_while_runmail_runs(setup):
    """`manage.py acmecert` with runmail up (its web port answers the challenge), then SIGHUP."""
    server = setup
    server.env["MAILHOST_ACME_CHECK_INTERVAL"] = "1d"
    # runmail's own checks fail (nothing listens there), so only acmecert issues.
    directory = server.env["MAILHOST_ACME_DIRECTORY"]
    server.env["MAILHOST_ACME_DIRECTORY"] = f"https://127.0.0.1:{free_port()}/dir"
    server.start()
    server.env["MAILHOST_ACME_DIRECTORY"] = directory
    wait_listening(server.ports["webs"], "webs", server.log_tail)
    before = served_certificate(server.ports["imaps"])
    server.start_pebble()
    assert "issued" in server.manage("acmecert")
    assert "still valid" in server.manage("acmecert")
    assert served_certificate(server.ports["imaps"]) == before  # until told
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while served_certificate(server.ports["imaps"]) == before:
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.1)
    issued = certificate(served_certificate(server.ports["webs"]))
    assert issued.issuer == server.intermediate().subject


def test_tls_alpn_01_answered_on_the_https_port(setup_alpn):
    server = setup_alpn
    server.start()
    wait_listening(server.ports["webs"], "webs", server.log_tail)
    before = served_certificate(server.ports["imaps"])
    server.start_pebble()
    deadline = time.monotonic() + 60
    while served_certificate(server.ports["imaps"]) == before:
        assert time.monotonic() < deadline, server.log_tail() + server.pebble_log.read_text()
        time.sleep(0.2)
    issued = certificate(served_certificate(server.ports["webs"]))
    assert issued.issuer == server.intermediate().subject
    assert dns_names(issued) == [HOSTNAME]
    domain = wait_for_domain_certificate(server, "autoconfig.example.org")
    assert dns_names(domain) == ["autoconfig.example.org"]
    # Pebble's httpPort is a closed one and dns-01 has no record to find: the handshakes on
    # our HTTPS port were the only answers it could accept.
    assert not (server.data_dir / "tls" / "acme" / "alpn").exists() or not any(
        (server.data_dir / "tls" / "acme" / "alpn").iterdir()
    ), "challenge certificates are removed once answered"
