"""Loops and where outbound mail comes from (issue 20): an MX that is ourselves (RFC 5321
5.1, 554 5.4.6), a message that has been round too often (RFC 5321 6.3, 554 5.4.14),
MAILHOST_OUTBOUND_BIND, and how replies classify (RFC 3463: the basic code decides)."""

from __future__ import annotations

import smtplib

import pytest

from delivery.models import OutboundMessage, OutboundRecipient, RecipientStatus
from delivery.services import SpoolRecipient, spool_create
from mailboxes.models import Message
from mailboxes.services import blob_store
from mailhost import runner
from protocols.smtp import replies
from tests.delivery.conftest import HOSTNAME, PeerHandler, deliver_until, run_queue
from tests.support.servers import running

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("delivery_env")]

RAW = b"From: a@example.org\r\nTo: b@loop.test\r\nSubject: round\r\n\r\nagain\r\n"


@pytest.fixture
def sender(make_mailbox):
    return make_mailbox("a@example.org")


def send(address: str = "b@loop.test") -> OutboundRecipient:
    message = spool_create(
        blob=blob_store(RAW), mail_from="a@example.org", recipients=[SpoolRecipient(address)]
    )
    run_queue()
    return OutboundRecipient.objects.get(message=message)


def test_mx_that_is_ourselves_bounces_as_a_loop(sender, dns_server, peers):
    dns_server.add("loop.test", "MX", f"10 {HOSTNAME}.")
    dns_server.add(HOSTNAME, "A", "127.0.0.2")
    peer = peers.start("127.0.0.2")
    row = send()
    assert row.status == RecipientStatus.FAILED
    assert row.last_reply == "554 5.4.6 mail for loop.test loops back to myself"
    assert peer.received == []


def test_a_domain_made_ours_in_another_process_is_filed_here_not_bounced_as_a_loop(
    sender, dns_server, peers, make_mailbox
):
    """Whether a domain is ours comes from memory while fresh (selectors.hosted_domains),
    which another process's new domain does not clear: its MX, pointing here, looked like
    a loop to a delivery job that still remembered the domain as not ours."""
    from mailboxes.selectors import hosted_domains

    dns_server.add("loop.test", "MX", f"10 {HOSTNAME}.")
    dns_server.add(HOSTNAME, "A", "127.0.0.2")
    box = make_mailbox("b@loop.test")
    # This process's save forgot what it remembered; another process's would not have.
    hosted_domains._store(hosted_domains._generation, ("loop.test",), False)
    row = send()
    assert row.last_reply in (
        "451 4.3.0 loop.test is hosted here now",
        "250 2.0.0 delivered locally",
    )
    deliver_until(lambda: OutboundRecipient.objects.get(pk=row.pk).status == "delivered")
    assert OutboundRecipient.objects.get(pk=row.pk).attempts == 1  # the loop's not counted
    assert Message.objects.filter(folder__mailbox=box).count() == 1
    assert OutboundMessage.objects.count() == 1  # and no bounce to the sender


def test_only_mx_hosts_preferred_over_ourselves_are_tried(sender, dns_server, peers, settings):
    settings.MAILHOST_PUBLIC_ADDRESSES = ("127.0.0.4",)
    dns_server.add("loop.test", "MX", "10 mx1.loop.test.", "20 us.loop.test.", "30 mx3.loop.test.")
    dns_server.add("mx1.loop.test", "A", "127.0.0.3")  # silent
    dns_server.add("us.loop.test", "A", "127.0.0.4")  # our public address
    dns_server.add("mx3.loop.test", "A", "127.0.0.2")
    behind = peers.start("127.0.0.2")
    row = send()
    # The better MX is down: deferred, never handed to ourselves or to the worse MX.
    assert row.status == RecipientStatus.DEFERRED, row.last_reply
    assert behind.received == []
    dns_server.add("loop2.test", "MX", "10 us.loop.test.", "30 mx3.loop.test.")
    assert send("b@loop2.test").last_reply == "554 5.4.6 mail for loop2.test loops back to myself"


def test_too_many_received_fields_refused_at_data(sender, live_settings):
    live_settings.MAILHOST_MAX_HOPS = 5
    with running(runner.SMTP) as ports:
        with smtplib.SMTP("127.0.0.1", ports["smtp"]) as client:

            def hops(count: int) -> bytes:
                return b"".join(
                    b"Received: from hop%d by hop%d\r\n" % (i, i + 1) for i in range(count)
                )

            with pytest.raises(smtplib.SMTPDataError) as refused:
                client.sendmail("x@remote.example", ["a@example.org"], hops(6) + RAW)
            assert (refused.value.smtp_code, refused.value.smtp_error.decode()) == (
                554,
                f"{replies.S554_TOO_MANY_HOPS.status} {replies.S554_TOO_MANY_HOPS.text}",
            )
            assert client.noop()[0] == 250  # the session goes on
            client.sendmail("x@remote.example", ["a@example.org"], hops(5) + RAW)
    assert Message.objects.count() == 1


def test_outbound_bind_sets_the_source_address(sender, dns_server, peers, settings):
    settings.MAILHOST_OUTBOUND_BIND = ("127.0.0.7", "::1")
    dns_server.add("loop.test", "MX", "10 mx1.loop.test.")
    dns_server.add("mx1.loop.test", "A", "127.0.0.2")
    peer = peers.start("127.0.0.2")
    assert send().status == RecipientStatus.DELIVERED
    assert [got.peer for got in peer.received] == ["127.0.0.7"]


@pytest.mark.parametrize(
    "reply,status",
    [
        ("550 5.7.1 Greylisted, please try again later", RecipientStatus.FAILED),
        ("452 4.2.2 Mailbox full", RecipientStatus.DEFERRED),
        ("450 4.7.1 Greylisted", RecipientStatus.DEFERRED),
        ("552 5.2.2 Mailbox full", RecipientStatus.FAILED),
        ("554 4.7.1 class does not match the code", RecipientStatus.FAILED),
        ("421 4.3.2 Shutting down", RecipientStatus.DEFERRED),
    ],
)
def test_reply_classes(sender, dns_server, peers, reply, status):
    dns_server.add("loop.test", "MX", "10 mx1.loop.test.")
    dns_server.add("mx1.loop.test", "A", "127.0.0.2")
    peers.start("127.0.0.2", PeerHandler(rcpt_replies={"b@loop.test": reply}))
    row = send()
    assert row.status == status, row.last_reply
