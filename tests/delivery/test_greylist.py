"""Greylisting (RFC 6647) at RCPT on port 25, over real sockets with smtplib."""

from __future__ import annotations

import smtplib
import ssl
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from delivery.models import GreylistEntry
from delivery.spam.services import greylist_check, greylist_network, greylist_prune
from mailboxes.models import Message
from mailhost import runner
from protocols.smtp import replies
from tests.support.servers import running
from tests.support.smtp import Transcript

RAW = b"From: x@remote.example\r\nTo: alice@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"


@pytest.fixture
def mta(live_settings, transactional_db, make_mailbox):
    live_settings.MAILHOST_GREYLIST = True
    live_settings.MAILHOST_GREYLIST_DELAY = 1.0
    make_mailbox("alice@example.org", "secret")
    make_mailbox("bob@example.org", "secret")
    with running(runner.SMTP) as ports:
        yield ports


def send(port: int, to: str = "alice@example.org", sender: str = "x@remote.example") -> None:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="mx.remote.example") as client:
        client.sendmail(sender, [to], RAW)


def test_an_unknown_triple_is_deferred_until_it_retries_after_the_delay(mta):
    client = Transcript(mta["smtp"])
    client.ehlo("mx.remote.example")
    client.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    client.command("RCPT TO:<alice@example.org>", replies.S451_GREYLISTED)
    assert str(replies.S451_GREYLISTED) == "451 4.7.1 Greylisted, please try again later"
    client.command("QUIT", replies.S221_BYE)
    client.close()
    with pytest.raises(smtplib.SMTPRecipientsRefused) as early:  # too early: still refused
        send(mta["smtp"])
    assert early.value.recipients["alice@example.org"][0] == 451
    time.sleep(1.1)
    send(mta["smtp"])  # retried after the delay: accepted
    send(mta["smtp"])  # and from now on at once
    assert Message.objects.count() == 2
    # Another recipient or another sender is another triple.
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(mta["smtp"], to="bob@example.org")
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(mta["smtp"], sender="other@remote.example")
    [entry] = GreylistEntry.objects.filter(recipient="alice@example.org", sender="x@remote.example")
    assert (entry.network, entry.sender) == ("127.0.0.0/24", "x@remote.example")
    assert entry.passed_at is not None


def test_unknown_recipients_are_refused_before_greylisting(mta):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(mta["smtp"], to="nobody@example.org")
    assert refused.value.recipients["nobody@example.org"][0] == 550
    assert not GreylistEntry.objects.exists()


def test_authenticated_submission_is_never_greylisted(mta, live_settings):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", mta["submission"]) as client:
        client.starttls(context=context)
        client.login("bob@example.org", "secret")
        client.sendmail(
            "bob@example.org",
            ["alice@example.org"],
            RAW.replace(b"x@remote.example", b"bob@example.org"),
        )
    assert Message.objects.count() == 1
    assert not GreylistEntry.objects.exists()


@pytest.mark.django_db
def test_the_window_the_expiry_and_the_client_network(settings):
    settings.MAILHOST_GREYLIST_DELAY = 300
    settings.MAILHOST_GREYLIST_RETRY_WINDOW = 3600
    settings.MAILHOST_GREYLIST_EXPIRY = 86400
    t0 = timezone.now()
    triple = {"sender": "a@remote.example", "recipient": "alice@example.org"}
    assert not greylist_check(client_ip="192.0.2.10", now=t0, **triple)
    assert not greylist_check(client_ip="192.0.2.10", now=t0 + timedelta(seconds=299), **triple)
    # Another host of the same /24 retries (a sender's pool): it passes.
    assert greylist_check(client_ip="192.0.2.77", now=t0 + timedelta(seconds=301), **triple)
    assert not greylist_check(client_ip="198.51.100.1", now=t0 + timedelta(seconds=302), **triple)
    # A passed triple is let through until unseen for the expiry, then greylisted afresh.
    later = t0 + timedelta(seconds=301 + 86000)
    assert greylist_check(client_ip="192.0.2.10", now=later, **triple)
    assert not greylist_check(client_ip="192.0.2.10", now=later + timedelta(days=2), **triple)
    # A first retry after the window is a new first attempt.
    other = {"sender": "b@remote.example", "recipient": "alice@example.org"}
    assert not greylist_check(client_ip="192.0.2.10", now=t0, **other)
    assert not greylist_check(client_ip="192.0.2.10", now=t0 + timedelta(hours=2), **other)
    assert greylist_check(client_ip="192.0.2.10", now=t0 + timedelta(hours=2, minutes=6), **other)
    assert greylist_network("2001:db8:1:2:3::4") == "2001:db8:1:2::/64"
    assert greylist_network("::ffff:192.0.2.9") == "192.0.2.0/24"


@pytest.mark.django_db
def test_prune_forgets_stale_and_expired_triples(settings):
    settings.MAILHOST_GREYLIST_DELAY = 300
    settings.MAILHOST_GREYLIST_RETRY_WINDOW = 3600
    settings.MAILHOST_GREYLIST_EXPIRY = 86400
    t0 = timezone.now()
    greylist_check(client_ip="192.0.2.1", sender="never@x.example", recipient="a@b.example", now=t0)
    greylist_check(client_ip="192.0.2.1", sender="kept@x.example", recipient="a@b.example", now=t0)
    greylist_check(
        client_ip="192.0.2.1",
        sender="kept@x.example",
        recipient="a@b.example",
        now=t0 + timedelta(seconds=400),
    )
    assert greylist_prune(now=t0 + timedelta(hours=2)) == 1
    assert list(GreylistEntry.objects.values_list("sender", flat=True)) == ["kept@x.example"]
    assert greylist_prune(now=t0 + timedelta(days=2)) == 1
    assert not GreylistEntry.objects.exists()
