"""Never an open relay: every trick to get mail for a foreign domain accepted."""

from __future__ import annotations

import base64

import pytest

from delivery.models import OutboundMessage
from mailboxes.models import Message
from mailboxes.services import alias_create
from mailhost import runner
from protocols.smtp import replies
from tests.support.servers import running
from tests.support.smtp import Transcript

pytestmark = pytest.mark.django_db(transaction=True)

PLAIN_ALICE = base64.b64encode(b"\x00alice@example.org\x00secret").decode()
PLAIN_WRONG = base64.b64encode(b"\x00alice@example.org\x00guess").decode()

# (RCPT argument, expected reply) without authentication on port 25.
ATTEMPTS = [
    ("<victim@elsewhere.example>", replies.S554_RELAY_DENIED),
    ("<victim@ELSEWHERE.EXAMPLE>", replies.S554_RELAY_DENIED),
    ("victim@elsewhere.example", replies.S554_RELAY_DENIED),
    ("<@example.org:victim@elsewhere.example>", replies.S554_RELAY_DENIED),
    ("<@example.org,@mx.test.example:victim@elsewhere.example>", replies.S554_RELAY_DENIED),
    ("<victim%elsewhere.example@example.org>", replies.S550_NO_SUCH_USER),
    ("<elsewhere.example!victim@example.org>", replies.S550_NO_SUCH_USER),
    ('<"victim@elsewhere.example"@example.org>', replies.S550_NO_SUCH_USER),
    ("<victim@elsewhere.example@example.org>", replies.S501_SYNTAX.format("bad local part")),
    ("<victim@elsewhere.example>@example.org", replies.S501_SYNTAX.format("text after the path")),
    ("<victim@example.org.>", replies.S501_SYNTAX.format("bad domain")),
    ("<victim@[127.0.0.1]>", replies.S553_BAD_RECIPIENT_SYNTAX),
    ("<victim@example.org.elsewhere.example>", replies.S554_RELAY_DENIED),
    ("<victim@sub.example.org>", replies.S554_RELAY_DENIED),
]


@pytest.fixture
def mta(smtp_ports, hosted):
    client = Transcript(smtp_ports["smtp"])
    client.ehlo()
    client.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    yield client
    client.close()


@pytest.mark.parametrize("rcpt,expected", ATTEMPTS, ids=[a for a, _ in ATTEMPTS])
def test_unauthenticated_relay_attempts_are_refused(mta, rcpt, expected):
    mta.command(f"RCPT TO:{rcpt}", expected)
    mta.command("DATA", replies.S554_NO_VALID_RECIPIENTS)
    assert not OutboundMessage.objects.exists()


def test_source_route_to_a_local_user_delivers_locally(mta):
    # RFC 5321 4.1.1.3: the route is accepted and ignored.
    mta.command("RCPT TO:<@elsewhere.example:alice@example.org>", replies.S250_RECIPIENT_OK)
    mta.command("DATA", replies.S354_START_DATA)
    mta.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
    assert mta.line().startswith("250 2.0.0 OK queued as ")
    assert Message.objects.filter(folder__mailbox__local_part="alice").count() == 1
    assert not OutboundMessage.objects.exists()


def test_percent_hack_into_a_catch_all_stays_local(mta):
    alias_create(address="@example.org", destinations=["alice@example.org"])
    mta.command("RCPT TO:<victim%elsewhere.example@example.org>", replies.S250_RECIPIENT_OK)
    mta.command("DATA", replies.S354_START_DATA)
    mta.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
    assert mta.line().startswith("250 2.0.0 OK queued as ")
    assert Message.objects.filter(folder__mailbox__local_part="alice").count() == 1
    assert not OutboundMessage.objects.exists()


def test_alias_forwarding_is_not_relaying(mta):
    """An alias an admin pointed at a remote address forwards; the client chose nothing."""
    alias_create(address="fwd@example.org", destinations=["far@elsewhere.example"])
    mta.command("RCPT TO:<fwd@example.org>", replies.S250_RECIPIENT_OK)
    mta.command("DATA", replies.S354_START_DATA)
    mta.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
    assert mta.line().startswith("250 2.0.0 OK queued as ")
    recipient = OutboundMessage.objects.get().recipients.get()
    assert recipient.address == "far@elsewhere.example"
    assert recipient.orcpt == "rfc822;fwd@example.org"


def test_submission_without_auth_cannot_relay(smtp_ports, hosted):
    for port, implicit in ((smtp_ports["submission"], False), (smtp_ports["submissions"], True)):
        client = Transcript(port, implicit_tls=implicit)
        client.ehlo()
        if not implicit:
            client.command("STARTTLS", replies.S220_READY_TLS)
            client.starttls()
            client.ehlo()
        client.command("MAIL FROM:<alice@example.org>", replies.S530_AUTH_REQUIRED)
        client.command("RCPT TO:<victim@elsewhere.example>", replies.S530_AUTH_REQUIRED)
        client.command(f"AUTH PLAIN {PLAIN_WRONG}", replies.S535_AUTH_FAILED)
        client.command("RCPT TO:<victim@elsewhere.example>", replies.S530_AUTH_REQUIRED)
        client.close()
    assert not OutboundMessage.objects.exists()


def test_authenticated_submission_may_relay(smtp_ports, hosted):
    client = Transcript(smtp_ports["submissions"], implicit_tls=True)
    client.ehlo()
    client.command(f"AUTH PLAIN {PLAIN_ALICE}", replies.S235_AUTH_OK)
    client.command("MAIL FROM:<alice@example.org>", replies.S250_SENDER_OK)
    client.command("RCPT TO:<friend@elsewhere.example>", replies.S250_RECIPIENT_OK)
    client.close()


def test_auth_on_port_25_when_allowed(live_settings, transactional_db, hosted):
    live_settings.MAILHOST_SMTP_AUTH_ON_MTA = True
    with running(runner.SMTP) as ports:
        client = Transcript(ports["smtp"])
        client.ehlo()
        client.command(f"AUTH PLAIN {PLAIN_ALICE}", replies.S538_ENCRYPTION_REQUIRED)
        client.command("STARTTLS", replies.S220_READY_TLS)
        client.starttls()
        assert client.ehlo()[-1] == "250 AUTH PLAIN LOGIN"
        client.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
        client.command("RCPT TO:<victim@elsewhere.example>", replies.S554_RELAY_DENIED)
        client.command("RSET", replies.S250_RESET)
        client.command(f"AUTH PLAIN {PLAIN_WRONG}", replies.S535_AUTH_FAILED)
        client.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
        client.command("RCPT TO:<victim@elsewhere.example>", replies.S554_RELAY_DENIED)
        client.command("RSET", replies.S250_RESET)
        client.command(f"AUTH PLAIN {PLAIN_ALICE}", replies.S235_AUTH_OK)
        client.command("MAIL FROM:<x@remote.example>", replies.S553_SENDER_NOT_OWNED)
        client.command("MAIL FROM:<alice@example.org>", replies.S250_SENDER_OK)
        client.command("RCPT TO:<friend@elsewhere.example>", replies.S250_RECIPIENT_OK)
        client.close()
