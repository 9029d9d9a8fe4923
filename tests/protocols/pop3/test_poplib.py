"""End to end with Python's poplib over real sockets: STLS on the plain port, implicit TLS."""

from __future__ import annotations

import poplib
import ssl

import pytest

from mailboxes.selectors import folder_get, messages_in
from protocols.pop3 import responses as R
from tests.protocols.pop3.conftest import ADDRESS, PASSWORD, client_context, deliver

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = [
    b"From: a@example.net\r\nSubject: crlf\r\n\r\nplain body\r\n",
    b"From: b@example.net\nSubject: lf\n\n.leading dot\n..two dots\n.\nend\n",
    b"From: c@example.net\r\nSubject: mixed\r\n\r\nline\nother\r\nlast",
    b"Subject: big\r\n\r\n" + b"0123456789" * 10 + (b"\r\n." + b"x" * 98) * 10_000 + b"\r\n",
]


def wire(raw: bytes) -> bytes:
    data = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return data if data.endswith(b"\r\n") else data + b"\r\n"


@pytest.fixture
def filled(mailbox):
    for raw in MESSAGES:
        deliver(raw)
    return mailbox


@pytest.fixture
def strict_tls(pop3_settings):
    pop3_settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = False
    return pop3_settings


def check_maildrop(client: poplib.POP3) -> None:
    """STAT, LIST and the bytes RETR sends agree, for every message."""
    count, total = client.stat()
    assert count == len(MESSAGES)
    _, listing, _ = client.list()
    sizes = [int(line.split()[1]) for line in listing]
    assert sum(sizes) == total
    for number, raw in enumerate(MESSAGES, 1):
        reply, lines, octets = client.retr(number)
        received = b"".join(line + b"\r\n" for line in lines)
        assert received == wire(raw)
        assert octets == sizes[number - 1] == len(received)
        assert reply == R.ok_retr(len(received)).encode()


def test_stls_on_the_plain_port(pop3, strict_tls, filled):
    client = poplib.POP3("127.0.0.1", pop3["pop3"], timeout=30)
    try:
        assert client.getwelcome() == R.greeting("mx.test.example").encode()
        caps = client.capa()
        assert "STLS" in caps and "USER" not in caps
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            client.user(ADDRESS)
        client.stls(context=client_context())
        assert isinstance(client.sock, ssl.SSLSocket)
        caps = client.capa()
        assert "STLS" not in caps and "USER" in caps and caps["SASL"] == ["PLAIN"]
        client.user(ADDRESS)
        client.pass_(PASSWORD)
        check_maildrop(client)
        assert client.quit() == R.ok_bye_update(0).encode()
    finally:
        client.close()


def test_implicit_tls(pop3, strict_tls, filled):
    client = poplib.POP3_SSL("127.0.0.1", pop3["pop3s"], context=client_context(), timeout=30)
    try:
        caps = client.capa()
        assert "STLS" not in caps and "USER" in caps
        client.user(ADDRESS)
        client.pass_(PASSWORD)
        check_maildrop(client)
        uidls = [line.split()[1] for line in client.uidl()[1]]
        assert len(set(uidls)) == len(MESSAGES)
        assert client.top(2, 1)[1] == [b"From: b@example.net", b"Subject: lf", b"", b".leading dot"]
        client.dele(1)
        client.dele(4)
        assert client.quit() == R.ok_bye_update(2).encode()
    finally:
        client.close()
    inbox = folder_get(filled, "INBOX")
    assert list(messages_in(inbox).values_list("uid", flat=True)) == [2, 3]

    # Unique ids are stable across sessions and after other messages went.
    again = poplib.POP3_SSL("127.0.0.1", pop3["pop3s"], context=client_context(), timeout=30)
    try:
        again.user(ADDRESS)
        again.pass_(PASSWORD)
        assert [line.split()[1] for line in again.uidl()[1]] == [uidls[1], uidls[2]]
        again.quit()
    finally:
        again.close()


def test_auth_plain_through_poplib_over_tls(pop3, strict_tls, filled):
    import base64

    client = poplib.POP3_SSL("127.0.0.1", pop3["pop3s"], context=client_context(), timeout=30)
    try:
        token = base64.b64encode(f"\0{ADDRESS}\0{PASSWORD}".encode()).decode()
        reply = client._shortcmd(f"AUTH PLAIN {token}")
        assert reply == R.ok_login(len(MESSAGES), sum(len(wire(m)) for m in MESSAGES)).encode()
        assert client.stat()[0] == len(MESSAGES)
        client.quit()
    finally:
        client.close()


def test_rejected_tls_handshake_leaves_the_server_serving(pop3, strict_tls, mailbox):
    import socket

    raw = socket.create_connection(("127.0.0.1", pop3["pop3"]), timeout=30)
    raw.recv(1000)
    raw.sendall(b"STLS\r\n")
    assert raw.recv(1000) == R.encode(R.OK_STLS)
    raw.sendall(b"this is not a TLS client hello\r\n" * 10)
    raw.settimeout(10)
    try:
        while raw.recv(1000):
            pass
    except ConnectionResetError:
        pass
    raw.close()
    client = poplib.POP3_SSL("127.0.0.1", pop3["pop3s"], context=client_context(), timeout=30)
    client.user(ADDRESS)
    client.pass_(PASSWORD)
    client.quit()
