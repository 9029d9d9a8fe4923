"""PROXY protocol (HAProxy) on ports 25 and 587, for front ends behind a TCP load balancer."""

from __future__ import annotations

import socket

import pytest

from mailboxes.models import Message
from mailboxes.selectors import blob_read
from mailhost import runner
from protocols.smtp import replies
from tests.support.servers import running
from tests.support.smtp import Transcript

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def proxied(live_settings, transactional_db, hosted):
    live_settings.MAILHOST_SMTP_PROXY_PROTOCOL = True
    with running(runner.SMTP) as ports:
        yield ports


def test_proxy_v1_header_gives_the_real_client_address(proxied):
    client = Transcript(proxied["smtp"], greet=False)
    client.send(b"PROXY TCP4 192.0.2.9 127.0.0.1 40000 25\r\n")
    assert client.line() == str(replies.S220_GREETING.format("mx.test.example"))
    client.ehlo()
    client.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    client.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
    client.command("DATA", replies.S354_START_DATA)
    client.send(b"Subject: via a balancer\r\n\r\nhi\r\n.\r\n")
    assert client.line().startswith("250 2.0.0 OK queued as ")
    client.close()
    stored = blob_read(Message.objects.get().blob)
    assert stored.startswith(b"Received: from client.example.net ([192.0.2.9])\r\n")


def test_proxy_unknown_keeps_the_socket_address(proxied):
    client = Transcript(proxied["submission"], greet=False)
    client.send(b"PROXY UNKNOWN\r\n")
    assert client.line() == str(replies.S220_GREETING.format("mx.test.example"))
    client.command("NOOP", replies.S250_NOOP)
    client.close()


def test_a_connection_without_the_header_is_closed(proxied):
    sock = socket.create_connection(("127.0.0.1", proxied["smtp"]), timeout=10)
    sock.sendall(b"EHLO x\r\n")
    assert sock.recv(1024) == b""
    sock.close()


def test_implicit_tls_port_is_not_proxied(proxied):
    client = Transcript(proxied["submissions"], implicit_tls=True)
    client.command("NOOP", replies.S250_NOOP)
    client.close()


def test_without_the_setting_a_proxy_line_is_just_an_unknown_command(smtp_ports, hosted):
    client = Transcript(smtp_ports["smtp"])
    client.command("PROXY TCP4 192.0.2.9 127.0.0.1 40000 25", replies.S500_UNRECOGNIZED)
    client.close()
