"""The generated self-signed certificate names this server (MAILHOST_HOSTNAME, the bind
address), follows a change of name, is verified by a real TLS client trusting it, and is
announced loudly at start-up."""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl

import pytest
from cryptography import x509

from mailhost import runner, tls
from tests.support.servers import running


@pytest.fixture
def generated(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    settings.MAILHOST_TLS_CERT = settings.MAILHOST_TLS_KEY = None
    settings.MAILHOST_HOSTNAME = "mail.example.test"
    settings.MAILHOST_BIND = "127.0.0.1"
    tls._context = None
    yield tmp_path / "tls"
    tls._context = None


def alt_names(path) -> tuple[list[str], list[str]]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return alt.get_values_for_type(x509.DNSName), alt.get_values_for_type(x509.IPAddress)


def test_generated_certificate_names_the_hostname_and_the_bind_address(generated, caplog):
    with caplog.at_level(logging.WARNING, logger="mailhost.tls"):
        tls.server_context()
    assert alt_names(generated / "cert.pem") == (
        ["mail.example.test"],
        [ipaddress.ip_address("127.0.0.1")],
    )
    assert any("SELF-SIGNED" in r.getMessage() for r in caplog.records), caplog.text


def test_an_unspecified_bind_address_is_not_named(generated, settings):
    settings.MAILHOST_BIND = "::"
    tls.server_context()
    assert alt_names(generated / "cert.pem") == (["mail.example.test"], [])


def test_a_new_hostname_regenerates_the_certificate(generated, settings, caplog):
    tls.server_context()
    first_key = (generated / "key.pem").read_bytes()
    tls._context = None
    tls.server_context()  # same names: kept
    assert (generated / "key.pem").read_bytes() == first_key

    settings.MAILHOST_HOSTNAME = "mx2.example.test"
    tls._context = None
    with caplog.at_level(logging.WARNING, logger="mailhost.tls"):
        tls.server_context()
    assert alt_names(generated / "cert.pem")[0] == ["mx2.example.test"]
    assert (generated / "key.pem").read_bytes() != first_key
    assert "regenerating" in caplog.text


def test_operator_certificate_is_used_as_given_without_the_warning(generated, settings, caplog):
    tls.server_context()  # make a pair to hand over as the operator's own
    settings.MAILHOST_TLS_CERT = str(generated / "cert.pem")
    settings.MAILHOST_TLS_KEY = str(generated / "key.pem")
    settings.MAILHOST_HOSTNAME = "other.example.test"  # no regeneration of given files
    tls._context = None
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mailhost.tls"):
        tls.server_context()
    assert alt_names(generated / "cert.pem")[0] == ["mail.example.test"]
    assert "SELF-SIGNED" not in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_verifying_tls_client_trusting_the_certificate_accepts_the_server(
    generated, live_settings
):
    live_settings.MAILHOST_HOSTNAME = "mail.example.test"
    with running(runner.SMTP) as ports:
        for server_hostname in ("mail.example.test", "127.0.0.1"):
            context = ssl.create_default_context(cafile=str(generated / "cert.pem"))
            assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
            with socket.create_connection(("127.0.0.1", ports["submissions"]), timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname=server_hostname) as conn:
                    assert conn.recv(512).startswith(b"220 mail.example.test ")
        # A name the certificate does not carry is refused by the same client.
        context = ssl.create_default_context(cafile=str(generated / "cert.pem"))
        with socket.create_connection(("127.0.0.1", ports["submissions"]), timeout=10) as raw:
            with pytest.raises(ssl.SSLCertVerificationError):
                context.wrap_socket(raw, server_hostname="localhost")
