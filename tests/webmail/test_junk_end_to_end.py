"""A spoof quarantined on port 25 by the real inbound checks (DMARC p=quarantine, published
by a local DNS server) explains itself in the webmail, and "Not junk" brings it back."""

from __future__ import annotations

import smtplib

import pytest

from mailboxes import selectors
from mailboxes.models import Message
from mailhost import runner
from tests.delivery.conftest import dns_server  # noqa: F401
from tests.support.servers import running
from tests.webmail.conftest import folder, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_quarantined_spoof_says_why_and_not_junk_trusts_the_sender(
    live_settings,
    dns_server,  # noqa: F811
    alice,
    client,
):
    live_settings.MAILHOST_HOSTNAME = "mx.receiver.test"
    live_settings.MAILHOST_ARC_TRUSTED_SEALERS = ()
    dns_server.add_txt("bank.test", "v=spf1 ip4:192.0.2.10 -all")
    dns_server.add_txt("_dmarc.bank.test", "v=DMARC1; p=quarantine")
    raw = (
        b"From: Bank <alerts@bank.test>\r\n"
        b"To: alice@example.org\r\n"
        b"Subject: Verify your account\r\n"
        b"Date: Thu, 03 Dec 2026 05:00:00 +0000\r\n"
        b"Message-ID: <1@bank.test>\r\n"
        b"X-Spam: No\r\n"
        b"\r\n"
        b"Click here.\r\n"
    )
    with running(runner.SMTP) as ports:
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=30) as smtp:
            smtp.ehlo("mail.spammer.test")
            smtp.sendmail("alerts@bank.test", ["alice@example.org"], raw)
    junk_folder = folder(alice, "Junk")
    assert junk_folder.message_count == 1
    sign_in(client, "alice@example.org", "secret")
    page = client.get(f"/m/{junk_folder.pk}/1/").content.decode()
    assert 'data-test="why-junk"' in page
    assert "Claims to be from bank.test but bank.test&#x27;s DMARC policy sends it to Junk." in page
    assert "which bank.test does not allow to send its mail." in page
    response = client.post(f"/f/{junk_folder.pk}/bulk/", {"action": "notjunk", "uid": ["1"]})
    assert response.status_code == 302
    assert Message.objects.filter(folder=folder(alice, "INBOX")).count() == 1
    assert selectors.sender_lists([alice.pk], "alerts@bank.test") == {alice.pk: "allow"}
