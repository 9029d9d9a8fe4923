"""Per-domain certificates chosen by SNI (issue 18): `manage.py runmail` with a default
certificate and MAILHOST_TLS_CERTS_DIR holding one for example.org's names and a wildcard one
for *.example.net, each from its own test CA, so that a client verifying against one CA
proves which certificate it was given. Implicit TLS (993, 465, the HTTPS port) and STARTTLS
(587, 143) alike; SIGHUP picks up a new file while a session opened before carries on."""

from __future__ import annotations

import imaplib
import shutil
import signal
import smtplib
import socket
import ssl
import time

import pytest

from tests.protocols.test_https_reload import PASSWORD, run_mailhost
from tests.support.tlsca import make_ca


def bundle(ca, path) -> None:
    """One PEM file with the certificate and its key, as MAILHOST_TLS_CERTS_DIR takes them."""
    path.write_bytes(ca.cert_path.read_bytes() + ca.key_path.read_bytes())


@pytest.fixture
def sni(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    org = make_ca(tmp_path / "ca-org", names=("mail.example.org", "autoconfig.example.org"))
    net = make_ca(tmp_path / "ca-net", names=("*.example.net",))
    bundle(org, certs / "example.org.pem")
    bundle(net, certs / "example.net.pem")
    (certs / "notes.txt").write_text("not a certificate: ignored")
    for server in run_mailhost(tmp_path, MAILHOST_TLS_CERTS_DIR=str(certs)):
        server.certs_dir, server.org, server.net = certs, org, net
        yield server


def verified(ca, name: str, port: int) -> bytes:
    """Handshake asking for `name`; the certificate must verify against `ca` for that name."""
    context = ca.client_context()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=name) as sock:
            return sock.getpeercert(binary_form=True)


def refused(ca, name: str, port: int) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        verified(ca, name, port)


@pytest.mark.parametrize("port", ["imaps", "submissions", "webs", "pop3s"])
def test_implicit_tls_presents_the_certificate_for_the_name_asked(sni, port):
    number = sni.ports[port]
    verified(sni.org, "mail.example.org", number)
    verified(sni.org, "AutoConfig.Example.Org", number)  # names are case-insensitive
    verified(sni.net, "mail.example.net", number)
    verified(sni.net, "mta-sts.example.net", number)
    refused(sni.net, "a.b.example.net", number)  # a wildcard covers one label only
    # Any other name, or none, gets the default certificate.
    verified(sni.ca, "localhost", number)
    context = sni.ca.client_context()
    context.check_hostname = False
    with socket.create_connection(("127.0.0.1", number), timeout=10) as raw:
        with context.wrap_socket(raw) as sock:  # no SNI at all
            assert sock.version() in ("TLSv1.2", "TLSv1.3")


def test_starttls_presents_the_certificate_for_the_name_asked(sni):
    smtp = smtplib.SMTP("127.0.0.1", sni.ports["submission"], timeout=10)
    smtp._host = "mail.example.org"  # the name smtplib's starttls asks for
    smtp.starttls(context=sni.org.client_context())
    smtp.login("alice@example.org", PASSWORD)
    smtp.quit()

    imap = imaplib.IMAP4("127.0.0.1", sni.ports["imap"], timeout=10)
    imap.host = "imap.example.net"
    imap.starttls(ssl_context=sni.net.client_context())
    imap.login("alice@example.org", PASSWORD)
    imap.logout()


def test_sighup_loads_a_new_named_certificate_and_keeps_sessions(sni, tmp_path):
    session = imaplib.IMAP4_SSL(
        "localhost", sni.ports["imaps"], ssl_context=sni.ca.client_context(), timeout=10
    )
    session.login("alice@example.org", PASSWORD)
    session.select("INBOX")
    com = make_ca(tmp_path / "ca-com", names=("mail.example.com",))
    bundle(com, sni.certs_dir / "example.com.pem")
    refused(com, "mail.example.com", sni.ports["imaps"])  # not before SIGHUP
    # One file replaced by a broken one: logged and left out, the others still served.
    shutil.copy(sni.certs_dir / "notes.txt", sni.certs_dir / "broken.pem")
    sni.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while True:
        try:
            verified(com, "mail.example.com", sni.ports["imaps"])
            break
        except ssl.SSLCertVerificationError:
            assert time.monotonic() < deadline, sni.log_tail()
            time.sleep(0.1)
    verified(sni.org, "mail.example.org", sni.ports["imaps"])
    assert session.noop()[0] == "OK"
    session.logout()
