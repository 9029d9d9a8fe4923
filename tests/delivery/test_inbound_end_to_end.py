"""Mailhost to Mailhost over MX: a second Mailhost (`manage.py runmail` in its own process,
its own data dir and database) hosts sender.test, signs its users' mail with its own DKIM
key and delivers it through the local DNS server's MX to this test's port 25, whose
Authentication-Results must say dkim=pass spf=pass dmarc=pass. A spoofer of that p=reject
domain is refused with 550 5.7.1 and nothing is stored."""

from __future__ import annotations

import re
import smtplib
import time

import pytest

from bench.mailhost_process import Mailhost
from delivery.inbound import AuthResults
from mailboxes.models import Message
from mailboxes.selectors import blob_read, folder_get
from mailhost import runner
from protocols.smtp import replies
from tests.support.servers import running
from tests.support.smtp import client_tls_context

pytestmark = pytest.mark.django_db(transaction=True)

RECEIVER = "mx.receiver.test"
SENDER = "mx.sender.test"


@pytest.fixture
def receiver(live_settings, dns_server, make_mailbox):
    bob = make_mailbox("bob@example.org")
    live_settings.MAILHOST_HOSTNAME = RECEIVER
    dns_server.add("example.org", "MX", f"10 {RECEIVER}.")
    dns_server.add(RECEIVER, "A", "127.0.0.1")
    # sender.test's zone, as `manage.py dnsrecords` tells its admin to publish it.
    dns_server.add_txt("sender.test", "v=spf1 ip4:127.0.0.1 -all")
    dns_server.add(SENDER, "A", "127.0.0.1")
    dns_server.add_txt(SENDER, "v=spf1 a -all")
    dns_server.add_txt("_dmarc.sender.test", "v=DMARC1; p=reject")
    with running(runner.SMTP) as ports:
        yield bob, ports["smtp"]


def test_mailhost_to_mailhost_passes_dkim_spf_and_dmarc(receiver, dns_server, tmp_path):
    bob, smtp_port = receiver
    sender = Mailhost(
        tmp_path / "sender",
        extra_env={
            "MAILHOST_HOSTNAME": SENDER,
            "MAILHOST_DNS_SERVERS": f"127.0.0.1:{dns_server.port}",
            "MAILHOST_OUTBOUND_PORT": str(smtp_port),
            "MAILHOST_OUTBOUND_CONNECT_TIMEOUT": "5",
        },
    )
    sender.manage("migrate", "-v0")
    sender.manage("adddomain", "sender.test")
    sender.manage(
        "addmailbox", "alice@sender.test", "--password-stdin", stdin="long enough passphrase 42\n"
    )
    records = sender.manage("dnsrecords", "sender.test")
    [dkim_line] = [line for line in records.splitlines() if "._domainkey." in line]
    name = dkim_line.split()[0].rstrip(".")
    dns_server.add_txt(name, "".join(re.findall(r'"([^"]*)"', dkim_line)))
    sender.start()
    try:
        with smtplib.SMTP("127.0.0.1", sender.ports["submission"], timeout=30) as client:
            client.starttls(context=client_tls_context())
            client.login("alice@sender.test", "long enough passphrase 42")
            client.sendmail(
                "alice@sender.test",
                ["bob@example.org"],
                b"From: Alice <alice@sender.test>\r\nTo: bob@example.org\r\n"
                b"Subject: across the wire\r\n\r\nSigned, sent, checked.\r\n",
            )
        deadline = time.monotonic() + 60
        while not Message.objects.exists():
            assert time.monotonic() < deadline, sender.log_tail()
            time.sleep(0.2)
    finally:
        sender.stop()
    [row] = Message.objects.all()
    assert row.folder == folder_get(bob, "INBOX")
    raw = blob_read(row.blob)
    results = AuthResults.from_header(raw, RECEIVER)
    assert results is not None
    assert [(d.result, d.domain) for d in results.dkim] == [("pass", "sender.test")]
    assert (results.spf.result, results.spf.sender) == ("pass", "alice@sender.test")
    assert (results.spf_helo.result, results.spf_helo.domain) == ("pass", SENDER)
    assert (results.dmarc.result, results.dmarc.domain) == ("pass", "sender.test")
    head = raw.partition(b"\r\n\r\n")[0].decode()
    for words in ("dkim=pass header.d=sender.test", "spf=pass", "dmarc=pass (p=reject"):
        assert words in head


def test_a_spoofer_of_a_reject_domain_gets_550_and_nothing_is_stored(receiver):
    bob, smtp_port = receiver
    forged = (
        b"From: Alice <alice@sender.test>\r\nTo: bob@example.org\r\n"
        b"Subject: please pay this invoice\r\n\r\nIBAN attached.\r\n"
    )
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
        client.ehlo("spoofer.example.net")
        client.mail("bounce@spoofer.example.net")
        client.rcpt("bob@example.org")
        code, text = client.data(forged)
    expected = replies.S550_DMARC_REJECT.format("sender.test")
    assert (code, text.decode()) == (expected.code, f"{expected.status} {expected.text}")
    assert Message.objects.count() == 0
    # The same with the envelope of sender.test but from a server it does not list.
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30, source_address=("127.0.0.2", 0)) as c:
        c.ehlo("spoofer.example.net")
        c.mail("alice@sender.test")
        c.rcpt("bob@example.org")
        code, _ = c.data(forged)
    assert code == 550
    assert Message.objects.count() == 0
