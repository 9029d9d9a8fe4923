"""Sieve over SMTP, end to end: smtplib hands mail to our port 25 (the MTA), the recipient's
script runs in the MDA, and what it sends goes through the spool, the delivery workers, MX
at the local DNS server and out to a peer SMTP server, as runmail does it:

- a rule files mail into a folder;
- a vacation reply reaches the sender once in three messages;
- a redirect to a remote address arrives at the peer with an SRS sender that passes SPF there
  (our SPF evaluator, delivery.inbound.spf, against the zone), with our ARC seal, and a
  bounce to that SRS address comes back through us to the original sender;
- a reject answers the sender with an RFC 5429 MDN; an ereject for a single recipient is
  refused in the SMTP dialogue with 550 5.7.1.
"""

from __future__ import annotations

import email
import smtplib
import time
from email import policy

import dkim
import pytest

from delivery.dkim import dkim_public_key_value
from delivery.inbound import spf
from mailboxes import srs
from mailboxes.models import Message
from mailboxes.selectors import folder_get
from mailhost import runner
from tests.delivery.conftest import PeerHandler
from tests.support.servers import running
from tests.support.sievescripts import give_script

pytest.importorskip("mailboxes.sieve", reason="the Sieve language (issue 17) has not landed")
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("delivery_env")]

PEER = "127.0.0.2"


def message(n: int = 1, *, subject: str = "Quarterly numbers") -> bytes:
    return (
        "From: Bob <bob@remote.test>\r\n"
        "To: Alice <alice@example.org>\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <numbers.{n}@remote.test>\r\n"
        "\r\n"
        "See the attached numbers.\r\n"
    ).encode()


class RecordingPeer(PeerHandler):
    """A peer that also records the address each message came from (SPF's <ip>)."""

    def __init__(self) -> None:
        super().__init__()
        self.client_ips: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        self.client_ips.append(session.peer[0])
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def world(dns_server, peers, make_mailbox):
    """Our example.org (alice, its DKIM key published), and remote.test / far.test whose MX
    is the peer."""
    alice = make_mailbox("alice@example.org")
    domain = alice.domain
    dns_server.add_txt(
        f"{domain.dkim_selector}._domainkey.{domain.name}", dkim_public_key_value(domain)
    )
    for name in ("remote.test", "far.test"):
        dns_server.add(name, "MX", f"10 mx.{name}.")
        dns_server.add(f"mx.{name}", "A", PEER)
    peer = peers.start(PEER, RecordingPeer())
    return alice, peer


def send(port: int, raw: bytes, *, sender="bob@remote.test", to=("alice@example.org",)):
    with smtplib.SMTP("127.0.0.1", port, timeout=15) as client:
        client.ehlo("mx.remote.test")
        return client.sendmail(sender, list(to), raw)


def wait_for(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_rule_files_mail_into_a_folder(world):
    alice, _ = world
    give_script(
        alice,
        'require ["fileinto", "mailbox", "imap4flags"];\n'
        'if header :contains "subject" "quarterly" {\n'
        '  fileinto :create :flags "$Finance" "Finance";\n'
        "}\n",
    )
    with running(runner.SMTP) as ports:
        assert send(ports["smtp"], message()) == {}
        assert send(ports["smtp"], message(2, subject="Lunch")) == {}
    [filed] = Message.objects.filter(folder=folder_get(alice, "Finance"))
    assert filed.subject == "Quarterly numbers" and filed.keywords == "$Finance"
    [kept] = Message.objects.filter(folder=folder_get(alice, "INBOX"))
    assert kept.subject == "Lunch"


def test_a_vacation_reply_reaches_the_sender_once_in_three_messages(world, dns_server):
    alice, peer = world
    give_script(
        alice,
        'require "vacation";\nvacation :days 7 :subject "Out of office" "Back on the 10th.";\n',
    )
    with running(runner.SMTP, runner.DELIVERY) as ports:
        for n in range(3):
            assert send(ports["smtp"], message(n)) == {}
        wait_for(lambda: peer.received, "the vacation reply")
        time.sleep(1.0)  # room for a (wrong) second reply to arrive
    assert Message.objects.filter(folder=folder_get(alice, "INBOX")).count() == 3
    [reply] = peer.received
    assert reply.mail_from == "<>" and reply.rcpt_tos == ["bob@remote.test"]
    parsed = email.message_from_bytes(reply.data, policy=policy.default)
    assert parsed["Subject"] == "Out of office"
    assert parsed["From"] == "alice@example.org"
    assert parsed["Auto-Submitted"].startswith("auto-replied")
    assert parsed["In-Reply-To"] == "<numbers.0@remote.test>"
    assert "Back on the 10th." in parsed.get_body().get_content()
    assert dkim.verify(reply.data, dnsfunc=dns_server.txt_lookup)  # signed as example.org


def test_a_redirect_arrives_remote_with_srs_passing_spf_and_bounces_come_back(world, dns_server):
    alice, peer = world
    give_script(alice, 'redirect "carol@far.test";')
    # The zones as their owners publish them: example.org lists this server (loopback here),
    # remote.test only its own server.
    dns_server.add_txt("example.org", "v=spf1 ip4:127.0.0.0/8 -all")
    dns_server.add_txt("remote.test", "v=spf1 ip4:192.0.2.1 -all")
    with running(runner.SMTP, runner.DELIVERY) as ports:
        assert send(ports["smtp"], message()) == {}
        wait_for(lambda: peer.received, "the redirected copy")
        [copy] = peer.received
        client_ip = peer.client_ips[0]
        assert client_ip.startswith("127.")
        assert copy.rcpt_tos == ["carol@far.test"]
        assert copy.mail_from.startswith("SRS0=") and copy.mail_from.endswith("@example.org")
        assert srs.reverse(copy.mail_from.rpartition("@")[0]) == "bob@remote.test"
        # SPF at the destination: the SRS sender passes where the original would fail.
        at_peer = spf.check_mailfrom(
            client_ip=client_ip, mail_from=copy.mail_from, helo="mx.test.example", timeout=5
        )
        assert at_peer.result == "pass"
        original = spf.check_mailfrom(
            client_ip=client_ip, mail_from="bob@remote.test", helo="mx.test.example", timeout=5
        )
        assert original.result == "fail"
        # Our ARC seal on the forwarded copy verifies against the published key.
        assert copy.data.startswith(b"ARC-Seal:")
        cv, _, reason = dkim.arc_verify(copy.data, dnsfunc=dns_server.txt_lookup)
        assert cv == dkim.CV_Pass, reason
        assert b"Delivered-To: alice@example.org\r\n" in copy.data
        assert b"Subject: Quarterly numbers\r\n" in copy.data
        assert Message.objects.count() == 0  # redirect without :copy keeps nothing here

        # far.test bounces the copy to the SRS address: we pass it on to bob.
        bounce = (
            b"From: MAILER-DAEMON@far.test\r\nTo: " + copy.mail_from.encode() + b"\r\n"
            b"Subject: Undelivered Mail Returned to Sender\r\n\r\ncarol is gone\r\n"
        )
        assert send(ports["smtp"], bounce, sender="", to=(copy.mail_from,)) == {}
        wait_for(lambda: len(peer.received) == 2, "the bounce passed on")
    back = peer.received[1]
    assert back.rcpt_tos == ["bob@remote.test"] and back.mail_from == "<>"
    assert b"carol is gone" in back.data


def test_a_forged_srs_address_is_refused_at_rcpt(world):
    with running(runner.SMTP) as ports:
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=15) as client:
            client.ehlo("mx.far.test")
            client.mail("")
            code, _ = client.rcpt("SRS0=AAAA=AA=remote.test=bob@example.org")
    assert code == 550


def test_a_reject_answers_the_sender_with_an_mdn(world, dns_server):
    alice, peer = world
    give_script(alice, 'require "reject";\nreject "I no longer read this address.";\n')
    with running(runner.SMTP, runner.DELIVERY) as ports:
        assert send(ports["smtp"], message()) == {}
        wait_for(lambda: peer.received, "the MDN")
    assert Message.objects.count() == 0
    [mdn] = peer.received
    assert mdn.mail_from == "<>" and mdn.rcpt_tos == ["bob@remote.test"]
    parsed = email.message_from_bytes(mdn.data, policy=policy.default)
    assert parsed.get_content_type() == "multipart/report"
    assert parsed.get_param("report-type") == "disposition-notification"
    assert b"Disposition: automatic-action/MDN-sent-automatically; deleted" in mdn.data
    assert b"Original-Message-ID: <numbers.1@remote.test>" in mdn.data
    assert b"I no longer read this address." in mdn.data
    assert dkim.verify(mdn.data, dnsfunc=dns_server.txt_lookup)


def test_an_ereject_is_refused_in_the_smtp_dialogue(world):
    alice, _ = world
    give_script(alice, 'require "ereject";\nereject "Not accepting mail.";\n')
    with running(runner.SMTP) as ports:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(ports["smtp"], message())
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error == b"5.7.1 Not accepting mail."
    assert Message.objects.count() == 0


def test_an_alias_forwarding_outside_gets_srs_and_our_arc_seal_too(world, dns_server):
    from mailboxes.services import alias_create

    _, peer = world
    alias_create(address="team@example.org", destinations=["carol@far.test"])
    dns_server.add_txt("example.org", "v=spf1 ip4:127.0.0.0/8 -all")
    with running(runner.SMTP, runner.DELIVERY) as ports:
        assert send(ports["smtp"], message(), to=("team@example.org",)) == {}
        wait_for(lambda: peer.received, "the forwarded copy")
    [copy] = peer.received
    assert copy.rcpt_tos == ["carol@far.test"]
    assert copy.mail_from.startswith("SRS0=") and copy.mail_from.endswith("@example.org")
    at_peer = spf.check_mailfrom(
        client_ip=peer.client_ips[0], mail_from=copy.mail_from, helo="mx.test.example", timeout=5
    )
    assert at_peer.result == "pass"
    cv, _, reason = dkim.arc_verify(copy.data, dnsfunc=dns_server.txt_lookup)
    assert cv == dkim.CV_Pass, reason


def test_a_long_srs_address_goes_out_and_its_bounce_comes_back(world):
    """An SRS address holds the whole original address, often past 64 octets: our client
    sends it, our server accepts a bounce to it."""
    alice, peer = world
    give_script(alice, 'redirect "carol@far.test";')
    sender = "quarterly-notifications-from-the-finance-team@remote.test"
    with running(runner.SMTP, runner.DELIVERY) as ports:
        assert send(ports["smtp"], message(), sender=sender) == {}
        wait_for(lambda: peer.received, "the redirected copy")
        long_address = peer.received[0].mail_from
        assert len(long_address.rpartition("@")[0]) > 64
        assert srs.reverse(long_address.rpartition("@")[0]) == sender
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=15) as client:
            client.ehlo("mx.far.test")
            client.mail("")
            code, _ = client.rcpt(long_address)
            assert code == 250
            code, _ = client.data(b"Subject: Undelivered\r\n\r\nnot here\r\n")
            assert code == 250
        wait_for(lambda: len(peer.received) == 2, "the bounce passed on")
    back = peer.received[1]
    assert back.rcpt_tos == [sender] and back.mail_from == "<>"
