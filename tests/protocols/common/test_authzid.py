"""One rule for SASL PLAIN's authorization identity on SMTP, IMAP, POP3 and ManageSieve: the
authzid must name the user's own mailbox after the normalization the mailbox lookup makes
(the domain in any case, the local part folded unless its domain keeps local parts
case-sensitive). The same inputs get the same verdict on all four, over real TLS sockets with
the standard library's clients (IMAP once compared without case, the others exactly)."""

from __future__ import annotations

import base64
import imaplib
import poplib
import smtplib
import socket

import pytest

from mailboxes import services, throttle
from mailhost import runner
from tests.support.logins import tls
from tests.support.servers import running

PASSWORD = "Zebra-Pa55-q7Lm"
ALICE = "alice@example.org"
CAROL = "Carol@strict.example"  # a domain whose local parts are case-sensitive

# (authzid, authcid, accepted)
CASES = [
    ("", ALICE, True),
    (ALICE, ALICE, True),
    ("ALICE@Example.ORG", ALICE, True),
    ("alice@EXAMPLE.org", "Alice@example.org", True),
    ("bob@example.org", ALICE, False),  # someone else, who exists
    ("alice", ALICE, False),
    ("alice@example.org.evil.example", ALICE, False),
    ("Carol@STRICT.example", CAROL, True),
    ("carol@strict.example", CAROL, False),
]


def token(authzid: str, authcid: str) -> str:
    return base64.b64encode(f"{authzid}\0{authcid}\0{PASSWORD}".encode()).decode()


def smtp(ports, authzid: str, authcid: str) -> bool:
    with smtplib.SMTP_SSL("127.0.0.1", ports["submissions"], context=tls(), timeout=30) as client:
        client.ehlo()
        code, _ = client.docmd("AUTH", "PLAIN " + token(authzid, authcid))
        assert code in (235, 535), code
        return code == 235


def imap(ports, authzid: str, authcid: str) -> bool:
    client = imaplib.IMAP4_SSL("127.0.0.1", ports["imaps"], ssl_context=tls(), timeout=30)
    try:
        client.authenticate("PLAIN", lambda _: base64.b64decode(token(authzid, authcid)))
    except imaplib.IMAP4.error as error:
        assert "AUTHENTICATIONFAILED" in str(error)
        return False
    finally:
        client.shutdown()
    return True


def pop3(ports, authzid: str, authcid: str) -> bool:
    client = poplib.POP3_SSL("127.0.0.1", ports["pop3s"], context=tls(), timeout=30)
    try:
        client._shortcmd("AUTH PLAIN " + token(authzid, authcid))
    except poplib.error_proto as error:
        assert str(error).startswith("b'-ERR [AUTH]")
        return False
    finally:
        client.close()
    return True


def managesieve(ports, authzid: str, authcid: str) -> bool:
    def response(stream) -> bytes:
        while not (line := stream.readline()).startswith((b"OK", b"NO", b"BYE")):
            assert line, "connection closed"
        return line

    with socket.create_connection(("127.0.0.1", ports["managesieve"]), timeout=30) as sock:
        response(sock.makefile("rb"))
        sock.sendall(b"STARTTLS\r\n")
        assert response(sock.makefile("rb")).startswith(b"OK")
        with tls().wrap_socket(sock, server_hostname="mx.test.example") as secure:
            stream = secure.makefile("rb")
            response(stream)  # the capabilities again (RFC 5804 2.2)
            secure.sendall(f'AUTHENTICATE "PLAIN" "{token(authzid, authcid)}"\r\n'.encode())
            line = response(stream)
            assert line.startswith((b"OK", b"NO"))
            return line.startswith(b"OK")


PROTOCOLS = {
    "smtp": (runner.SMTP, smtp),
    "imap": (runner.IMAP, imap),
    "pop3": (runner.POP3, pop3),
    "managesieve": (runner.MANAGESIEVE, managesieve),
}


@pytest.fixture
def mailboxes(live_settings, transactional_db, blob_dir):
    live_settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = False
    services.domain_create(name="example.org")
    strict = services.domain_create(name="strict.example")
    strict.case_sensitive_local_parts = True
    strict.save()
    for address in (ALICE, "bob@example.org", CAROL):
        services.mailbox_create(address=address, password=PASSWORD)


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_the_same_authzid_gets_the_same_verdict_on_every_protocol(mailboxes, protocol):
    module, attempt = PROTOCOLS[protocol]
    with running(module) as ports:
        verdicts = []
        for authzid, authcid, _ in CASES:
            throttle.reset()  # the refusals count as failures; no case waits on another's
            verdicts.append((authzid, authcid, attempt(ports, authzid, authcid)))
    assert verdicts == CASES
