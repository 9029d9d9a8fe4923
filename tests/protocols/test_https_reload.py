"""HTTPS for the web app under runmail (MAILHOST_WEBS_PORT, issue 18) and SIGHUP reloading the
certificate of every TLS listener: `manage.py runmail` as a subprocess with a test CA's
certificate; after the files are replaced and SIGHUP sent, new connections present the new
certificate and a session opened before carries on."""

from __future__ import annotations

import http.client
import imaplib
import os
import signal
import smtplib
import socket
import ssl
import time
import uuid

import pytest

from bench.mailhost_process import Mailhost, PostgresDatabase, free_port
from tests.support.tlsca import make_ca

PASSWORD = "a long enough secret 42"


@pytest.fixture
def mailhost(tmp_path):
    yield from run_mailhost(tmp_path)


@pytest.fixture
def mailhost_capped(tmp_path):
    # Every address, so clients may come from 127.0.0.5 and 127.0.0.6; one connection each.
    yield from run_mailhost(
        tmp_path, MAILHOST_BIND="0.0.0.0", MAILHOST_WEB_MAX_CONNECTIONS_PER_IP="1"
    )


def run_mailhost(tmp_path, **extra_env):
    database = None
    url = os.environ.get("DATABASE_URL")
    if url and url.startswith("postgres"):
        database = PostgresDatabase(url, f"mh_webs_{os.getpid()}_{uuid.uuid4().hex[:6]}")
        database.create()
    ca = make_ca(tmp_path / "ca1")
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    cert, key = tls_dir / "cert.pem", tls_dir / "key.pem"
    cert.write_bytes(ca.cert_path.read_bytes())
    key.write_bytes(ca.key_path.read_bytes())
    webs_port = free_port()
    server = Mailhost(
        tmp_path / "data",
        database_url=database.url if database else None,
        redis_url=os.environ.get("REDIS_URL"),
        extra_env={
            "MAILHOST_WEBS_PORT": str(webs_port),
            "MAILHOST_TLS_CERT": str(cert),
            "MAILHOST_TLS_KEY": str(key),
            **extra_env,
        },
    )
    server.ports["webs"] = webs_port
    server.ca, server.cert, server.key = ca, cert, key
    try:
        server.manage("migrate", "-v0")
        server.manage("adddomain", "example.org")
        server.manage("addmailbox", "alice@example.org", "--password-stdin", stdin=PASSWORD + "\n")
        server.start()
        deadline = time.monotonic() + 30
        while not server.listening("webs"):
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.1)
        yield server
    finally:
        server.stop()
        if database is not None:
            database.drop()


def https_get(
    port: int, context: ssl.SSLContext, path: str
) -> tuple[http.client.HTTPResponse, bytes]:
    connection = http.client.HTTPSConnection("localhost", port, context=context, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    peer = connection.sock.getpeercert(binary_form=True)
    response.read()
    connection.close()
    return response, peer


def http_get(port: int, path: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def served_certificate(port: int) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw) as sock:
            return sock.getpeercert(binary_form=True)


def install(source, target) -> None:
    scratch = target.with_suffix(".new")
    scratch.write_bytes(source.read_bytes())
    os.replace(scratch, target)


def der(path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def test_https_serves_the_web_app_with_hsts_and_http_redirects(mailhost):
    ports = mailhost.ports
    response, peer = https_get(ports["webs"], mailhost.ca.client_context(), "/login/")
    assert response.status == 200
    assert peer == der(mailhost.ca.cert_path)
    assert response.getheader("Strict-Transport-Security", "").startswith("max-age=")
    # Plain HTTP: a permanent redirect to the same path and query on the HTTPS port.
    response = http_get(ports["web"], "/login/?next=/x%20y")
    assert response.status == 301
    assert response.getheader("Location") == f"https://127.0.0.1:{ports['webs']}/login/?next=/x%20y"
    assert response.getheader("Strict-Transport-Security") is None
    # What monitors and ACME/MTA-STS/autoconfig clients fetch stays on plain HTTP.
    for path in ("/healthz", "/metrics", "/.well-known/mta-sts.txt"):
        assert http_get(ports["web"], path).status != 301, path


def test_sighup_reloads_certificates_and_keeps_sessions(mailhost, tmp_path):
    ports = mailhost.ports
    first = mailhost.ca
    session = imaplib.IMAP4_SSL(
        "localhost", ports["imaps"], ssl_context=first.client_context(), timeout=10
    )
    session.login("alice@example.org", PASSWORD)
    session.select("INBOX")
    assert session.sock.getpeercert(binary_form=True) == der(first.cert_path)

    second = make_ca(tmp_path / "ca2")
    # A pair that does not match (the new certificate, the old key): refused, the old kept.
    install(second.cert_path, mailhost.cert)
    mailhost.process.send_signal(signal.SIGHUP)
    time.sleep(1)
    assert served_certificate(ports["webs"]) == der(first.cert_path)
    response, _ = https_get(ports["webs"], first.client_context(), "/login/")
    assert response.status == 200

    install(second.key_path, mailhost.key)
    mailhost.process.send_signal(signal.SIGHUP)
    # The runmail log is not flushed as it goes: wait for the new certificate to be served.
    deadline = time.monotonic() + 10
    while served_certificate(ports["imaps"]) != der(second.cert_path):
        assert time.monotonic() < deadline, mailhost.log_tail()
        time.sleep(0.1)

    # The session opened before carries on.
    assert session.noop()[0] == "OK"
    # New connections: the new certificate, which verifies against the second CA only.
    fresh = imaplib.IMAP4_SSL(
        "localhost", ports["imaps"], ssl_context=second.client_context(), timeout=10
    )
    assert fresh.sock.getpeercert(binary_form=True) == der(second.cert_path)
    fresh.logout()
    response, peer = https_get(ports["webs"], second.client_context(), "/login/")
    assert response.status == 200
    assert peer == der(second.cert_path)
    with pytest.raises(ssl.SSLCertVerificationError):
        https_get(ports["webs"], first.client_context(), "/login/")
    # STARTTLS too.
    with smtplib.SMTP("localhost", ports["submission"], timeout=10) as smtp:
        smtp.starttls(context=second.client_context())
        assert smtp.sock.getpeercert(binary_form=True) == der(second.cert_path)
    assert session.noop()[0] == "OK"
    session.logout()


def https_connection(
    port: int, context: ssl.SSLContext, source: str
) -> http.client.HTTPSConnection:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, context=context, timeout=10, source_address=(source, 0)
    )
    connection.request("GET", "/login/")
    return connection


def test_https_clients_are_counted_by_their_own_address(mailhost_capped):
    """Waitress sees the client's address, not the relay's: the per-address cap (1 here)
    holds a second connection from the same client and lets another client in."""
    port, context = mailhost_capped.ports["webs"], mailhost_capped.ca.client_context()
    first = https_connection(port, context, "127.0.0.5")
    assert first.getresponse().status == 200  # and kept alive: it counts
    other = https_connection(port, context, "127.0.0.6")
    assert other.getresponse().status == 200
    again = https_connection(port, context, "127.0.0.5")
    assert again.getresponse().status == 503
    for connection in (first, other, again):
        connection.close()
