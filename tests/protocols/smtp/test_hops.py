"""Hops from the event loop to SMTP's database threads, counted per message, and the sender
checks that MAIL and the recipient verdicts that RCPT answer from memory (mailhost.expiring)
seeing a change at once."""

from __future__ import annotations

import base64

import pytest

from delivery.models import OutboundMessage
from mailboxes.models import Mailbox, Message
from mailboxes.services import alias_create, domain_create
from protocols.smtp import replies
from tests.support.hops import counting_pool
from tests.support.smtp import Transcript

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = b"From: x@remote.example\r\nSubject: hello\r\n\r\nHello.\r\n.\r\n"
SUBMITTED = (
    b"From: Alice <alice@example.org>\r\nTo: bob@remote.test\r\nSubject: hi\r\n\r\nHi.\r\n.\r\n"
)


@pytest.fixture
def hops(monkeypatch):
    from protocols.smtp import handler

    return counting_pool(monkeypatch, handler, "executor")


@pytest.fixture
def clients():
    opened: list[Transcript] = []
    yield opened
    for client in opened:
        client.close()


def send(client: Transcript, mail_from: str, rcpt: str, message: bytes) -> None:
    client.command(f"MAIL FROM:<{mail_from}>", replies.S250_SENDER_OK)
    client.command(f"RCPT TO:<{rcpt}>", replies.S250_RECIPIENT_OK)
    client.command("DATA", replies.S354_START_DATA)
    client.send(message)
    assert client.line().startswith("250 2.0.0 OK queued as ")


def port_25(smtp_ports, clients: list[Transcript]) -> Transcript:
    client = Transcript(smtp_ports["smtp"])
    clients.append(client)
    client.ehlo()
    return client


def test_port_25_takes_one_hop_a_message(smtp_ports, hosted, hops, clients):
    # DATA's acceptance; MAIL's hosted-sender check and RCPT's verdict for a recipient
    # without a quota are answered from memory after the first message (three hops a message
    # before MAIL's, two before RCPT's).
    client = port_25(smtp_ports, clients)
    send(client, "x@remote.example", "alice@example.org", MESSAGE)
    for _ in range(3):
        hops.hops = 0
        send(client, "x@remote.example", "alice@example.org", MESSAGE)
        assert hops.hops == 1
    fresh = port_25(smtp_ports, clients)  # a new connection's message: the same
    hops.hops = 0
    send(fresh, "x@remote.example", "alice@example.org", MESSAGE)
    assert hops.hops == 1
    assert Message.objects.filter(folder__mailbox=hosted["alice"]).count() == 5


@pytest.mark.parametrize(
    "limit, full",
    [
        ({"quota": 10_000}, {"used_bytes": 10_001}),
        ({"quota_messages": 3}, {"used_messages": 3}),  # RFC 9208 MESSAGE: the same
    ],
)
def test_a_recipient_with_a_quota_is_checked_in_the_database_every_time(
    smtp_ports, hosted, hops, clients, limit, full
):
    Mailbox.objects.filter(pk=hosted["bob"].pk).update(**limit)
    client = port_25(smtp_ports, clients)
    send(client, "x@remote.example", "bob@example.org", MESSAGE)
    hops.hops = 0
    send(client, "x@remote.example", "bob@example.org", MESSAGE)
    assert hops.hops == 2  # RCPT's verdict reads the mailbox's use as it is now
    # Full since (an UPDATE, which no memory hears of): RCPT says so at once.
    Mailbox.objects.filter(pk=hosted["bob"].pk).update(**full)
    client.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    client.command("RCPT TO:<bob@example.org>", replies.S452_MAILBOX_FULL)


def test_a_mailbox_deactivated_since_is_refused_at_once(smtp_ports, hosted, clients):
    client = port_25(smtp_ports, clients)
    send(client, "x@remote.example", "carol@example.org", MESSAGE)  # now remembered
    carol = hosted["carol"]
    carol.active = False
    carol.save()
    client.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    client.command("RCPT TO:<carol@example.org>", replies.S550_NO_SUCH_USER)


def test_an_alias_made_since_is_delivered_at_once(smtp_ports, hosted, clients):
    client = port_25(smtp_ports, clients)
    client.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    client.command("RCPT TO:<sales@example.org>", replies.S550_NO_SUCH_USER)
    client.command("RSET", replies.S250_RESET)
    alias_create(address="sales@example.org", destinations=["carol@example.org"])
    send(client, "x@remote.example", "sales@example.org", MESSAGE)
    assert Message.objects.filter(folder__mailbox=hosted["carol"]).count() == 1


def login(port: int) -> Transcript:
    client = Transcript(port)
    client.secure()
    plain = base64.b64encode(b"\x00alice@example.org\x00secret").decode()
    client.command(f"AUTH PLAIN {plain}", replies.S235_AUTH_OK)
    return client


def test_submission_to_a_remote_recipient_takes_one_hop_a_message(
    smtp_ports, hosted, hops, clients
):
    client = login(smtp_ports["submission"])
    clients.append(client)
    send(client, "alice@example.org", "bob@remote.test", SUBMITTED)
    for _ in range(3):
        hops.hops = 0
        send(client, "alice@example.org", "bob@remote.test", SUBMITTED)
        # DATA's; MAIL's ownership check and RCPT's "not one of our domains" from memory
        # (before: 2, RCPT's verdict in a database thread).
        assert hops.hops == 1
    spool = OutboundMessage.objects.order_by("-id").first()
    assert list(spool.recipients.values_list("address", flat=True)) == ["bob@remote.test"]
    send(client, "alice@example.org", "bob@example.org", SUBMITTED)  # example.org remembered
    hops.hops = 0
    send(client, "alice@example.org", "bob@example.org", SUBMITTED)
    assert hops.hops == 1  # a recipient of ours without a quota: RCPT's verdict remembered
    client.command("MAIL FROM:<alice@example.org>", replies.S250_SENDER_OK)
    client.command("RCPT TO:<nobody@example.org>", replies.S550_NO_SUCH_USER)


def test_a_domain_hosted_since_is_not_relayed_to_at_once(smtp_ports, hosted, clients):
    client = login(smtp_ports["submission"])
    clients.append(client)
    send(client, "alice@example.org", "carol@new.example", SUBMITTED)  # remembered: remote
    domain_create(name="new.example")
    client.command("MAIL FROM:<alice@example.org>", replies.S250_SENDER_OK)
    client.command("RCPT TO:<carol@new.example>", replies.S550_NO_SUCH_USER)


def test_a_domain_hosted_since_is_refused_as_an_unauthenticated_sender_at_once(
    smtp_ports, hosted, clients
):
    client = port_25(smtp_ports, clients)
    client.command("MAIL FROM:<x@new.example>", replies.S250_SENDER_OK)  # now remembered
    client.command("RSET", replies.S250_RESET)
    domain_create(name="new.example")
    client.command("MAIL FROM:<x@new.example>", replies.S550_HOSTED_SENDER_UNAUTHENTICATED)


def test_an_alias_removed_may_no_longer_send_at_once(smtp_ports, hosted, clients):
    alias = alias_create(address="sales@example.org", destinations=["alice@example.org"])
    client = login(smtp_ports["submission"])
    clients.append(client)
    client.command("MAIL FROM:<sales@example.org>", replies.S250_SENDER_OK)
    client.command("RSET", replies.S250_RESET)
    alias.delete()
    client.command("MAIL FROM:<sales@example.org>", replies.S553_SENDER_NOT_OWNED)
