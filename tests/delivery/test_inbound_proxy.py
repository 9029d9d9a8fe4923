"""SPF on port 25 behind a load balancer (MAILHOST_PROXY_TRUSTED): the address checked is
the client the PROXY header names, not the balancer's."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest

from delivery.inbound import AuthResults
from mailboxes.models import Message
from mailboxes.selectors import blob_read
from mailhost import runner
from protocols import proxy
from tests.support.servers import running
from tests.support.smtp import raw_transaction

pytestmark = pytest.mark.django_db(transaction=True)

RECEIVER = "mx.receiver.test"


def v2(client: str) -> bytes:
    body = ipaddress.IPv4Address(client).packed + bytes([127, 0, 0, 1]) + struct.pack("!HH", 1, 25)
    return proxy.V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


@pytest.fixture
def smtp_port(live_settings, dns_server, make_mailbox):
    make_mailbox("bob@example.org")
    live_settings.MAILHOST_HOSTNAME = RECEIVER
    live_settings.MAILHOST_PROXY_TRUSTED = [ipaddress.ip_network("127.0.0.1/32")]
    dns_server.add_txt("sender.test", "v=spf1 ip4:192.0.2.9 ~all")
    with running(runner.SMTP) as ports:
        yield ports["smtp"]


def send(port: int, client: str) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(v2(client))
    reader = sock.makefile("rb")

    final = raw_transaction(
        sock,
        reader,
        helo=b"mx.sender.test",
        mail_from=b"alice@sender.test",
        rcpt=b"bob@example.org",
        body=b"From: alice@sender.test\r\nSubject: x\r\n\r\nhi",
    )
    assert final.startswith(b"250 ")
    sock.close()


@pytest.mark.parametrize(("client", "result"), [("192.0.2.9", "pass"), ("192.0.2.10", "softfail")])
def test_spf_checks_the_proxied_client(smtp_port, client, result):
    send(smtp_port, client)
    results = AuthResults.from_header(blob_read(Message.objects.get().blob), RECEIVER)
    assert results is not None
    assert (results.spf.result, results.spf.sender) == (result, "alice@sender.test")
