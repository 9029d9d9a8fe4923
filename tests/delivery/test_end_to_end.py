"""The whole outbound path in one process, as runmail runs it: a client submits over SMTP
(587, STARTTLS, AUTH), the submission service signs and spools, the worker family resolves
MX at a real DNS server and hands the message to the peer, which checks the DKIM signature
against the key published in that DNS."""

from __future__ import annotations

import logging
import smtplib
import time

import dkim
import pytest

from delivery.dkim import dkim_public_key_value
from delivery.models import OutboundRecipient, RecipientStatus
from mailhost import runner
from tests.delivery.test_delivery import inbox_messages
from tests.support.servers import running
from tests.support.smtp import client_tls_context

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("delivery_env")]

MESSAGE = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@remote.test>, Dave <dave@example.org>\r\n"
    b"Subject: all the way\r\n"
    b"\r\n"
    b"From the laptop to the world.\r\n"
)


def test_submit_sign_spool_resolve_deliver(make_mailbox, dns_server, peers):
    alice = make_mailbox("alice@example.org")
    dave = make_mailbox("dave@example.org")
    domain = alice.domain
    dns_server.add("remote.test", "MX", "10 mx1.remote.test.")
    dns_server.add("mx1.remote.test", "A", "127.0.0.2")
    dns_server.add_txt(
        f"{domain.dkim_selector}._domainkey.{domain.name}", dkim_public_key_value(domain)
    )
    peer = peers.start("127.0.0.2")
    with running(runner.SMTP, runner.DELIVERY) as ports:
        with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=15) as client:
            client.ehlo("laptop.example.net")
            client.starttls(context=client_tls_context())
            client.ehlo("laptop.example.net")
            client.login("alice@example.org", "secret")
            refused = client.sendmail(
                "alice@example.org", ["bob@remote.test", "dave@example.org"], MESSAGE
            )
        assert refused == {}
        deadline = time.monotonic() + 20
        while not peer.received:
            assert time.monotonic() < deadline, list(
                OutboundRecipient.objects.values("status", "attempts", "last_reply", "lease_until")
            )
            time.sleep(0.05)
    [got] = peer.received
    assert got.mail_from == "alice@example.org" and got.rcpt_tos == ["bob@remote.test"]
    assert got.data.startswith(b"DKIM-Signature:")
    assert b"\r\nReceived: " in got.data
    assert dkim.verify(got.data, dnsfunc=dns_server.txt_lookup)
    [row] = OutboundRecipient.objects.all()  # the local recipient was never spooled
    assert row.status == RecipientStatus.DELIVERED and row.mx_used == "mx1.remote.test"
    [copy] = inbox_messages(dave)
    assert copy["Subject"] == "all the way"


def test_the_delivery_log_carries_the_queue_id_given_at_acceptance(
    make_mailbox, dns_server, peers, caplog
):
    caplog.set_level(logging.INFO, logger="delivery")
    make_mailbox("alice@example.org")
    dns_server.add("remote.test", "MX", "10 mx1.remote.test.")
    dns_server.add("mx1.remote.test", "A", "127.0.0.2")
    peer = peers.start("127.0.0.2")
    with running(runner.SMTP, runner.DELIVERY) as ports:
        with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=15) as client:
            client.starttls(context=client_tls_context())
            client.login("alice@example.org", "secret")
            client.mail("alice@example.org")
            client.rcpt("bob@remote.test")
            code, text = client.data(MESSAGE)
        assert code == 250
        deadline = time.monotonic() + 20
        while not delivered_lines(caplog):
            assert time.monotonic() < deadline, "no delivery log line"
            time.sleep(0.05)
    [line] = delivered_lines(caplog)
    [row] = OutboundRecipient.objects.select_related("message")
    queue_id = row.message.queue_id
    assert queue_id in text.decode()  # the 250 names it
    assert line.startswith(f"delivery delivered queue={queue_id} to=<bob@remote.test>")
    assert " mx=mx1.remote.test[127.0.0.2] " in line
    assert f"id {queue_id}".encode() in peer.received[0].data  # our Received field


def delivered_lines(caplog) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("delivery delivered ")
    ]
