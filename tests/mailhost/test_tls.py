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


def _handshaken(server: ssl.SSLContext):
    """A server and a client SSLObject over memory BIOs, after their handshake; send(data)
    moves what the client wrote to the server's incoming BIO."""
    client_context = ssl.create_default_context()
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE
    server_in, server_out, client_in, client_out = (ssl.MemoryBIO() for _ in range(4))
    ours = server.wrap_bio(server_in, server_out, server_side=True)
    theirs = client_context.wrap_bio(client_in, client_out)
    for _ in range(10):
        done = 0
        for end in (theirs, ours):
            try:
                end.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
        server_in.write(client_out.read())
        client_in.write(server_out.read())
        if done == 2:
            break

    def send(data: bytes) -> None:
        theirs.write(data)
        server_in.write(client_out.read())

    return ours, send


def _read_all(ours: ssl.SSLObject, size: int) -> list[bytes]:
    chunks = []
    while True:
        try:
            chunks.append(ours.read(size))
        except ssl.SSLWantReadError:
            return chunks


def test_a_read_asks_for_one_record_not_the_protocols_256_kib(generated):
    """uvloop's and asyncio's SSL protocols read decrypted data with read(256 KiB), and _ssl
    allocates what is asked for before it reads: a command's read must not allocate 256 KiB
    (an mmap, an mremap and a munmap each time), and what arrives is still all of it."""
    import tracemalloc

    ours, send = _handshaken(tls.server_context())
    sent = b"a1 APPEND INBOX {40000}\r\n" + b"x" * 40_000 + b"\r\n"
    send(sent)
    tracemalloc.start()
    try:
        chunks = _read_all(ours, 256 * 1024)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert b"".join(chunks) == sent
    assert all(len(chunk) <= tls.RECORD_PLAINTEXT for chunk in chunks)
    assert peak < 64 * 1024, peak
    # A read into the caller's buffer allocates nothing of its own: asked as given.
    send(b"a2 NOOP\r\n")
    buffer = bytearray(1024)
    assert ours.read(1024, buffer) == 9 and bytes(buffer[:9]) == b"a2 NOOP\r\n"
