"""Transcript tests of the MSA: 587 (STARTTLS, then AUTH) and 465 (implicit TLS)."""

from __future__ import annotations

import base64

import pytest

from delivery.models import OutboundMessage
from mailboxes.models import Message
from mailboxes.selectors import blob_read
from mailboxes.services import alias_create
from protocols.smtp import replies
from tests.support.smtp import Transcript

pytestmark = pytest.mark.django_db(transaction=True)

PLAIN_ALICE = base64.b64encode(b"\x00alice@example.org\x00secret").decode()
MESSAGE = b"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nHi.\r\n"


@pytest.fixture
def msa(smtp_ports, hosted):
    client = Transcript(smtp_ports["submission"])
    yield client
    client.close()


def tls_login(client: Transcript) -> None:
    client.secure()
    client.command(f"AUTH PLAIN {PLAIN_ALICE}", replies.S235_AUTH_OK)


def test_ehlo_before_and_after_starttls(msa):
    assert msa.ehlo()[-1] == "250 STARTTLS"  # no AUTH before TLS
    msa.command("STARTTLS", replies.S220_READY_TLS)
    msa.starttls()
    lines = msa.ehlo()
    assert lines[-2:] == ["250-CHUNKING", "250 AUTH PLAIN LOGIN"]


def test_commands_before_starttls_are_refused(msa):
    msa.ehlo()
    msa.command("MAIL FROM:<alice@example.org>", replies.S530_STARTTLS_FIRST)
    msa.command(f"AUTH PLAIN {PLAIN_ALICE}", replies.S530_STARTTLS_FIRST)
    msa.command("NOOP", replies.S250_NOOP)


def test_mail_before_auth_is_530_5_7_0(msa):
    msa.ehlo()
    msa.command("STARTTLS", replies.S220_READY_TLS)
    msa.starttls()
    msa.ehlo()
    msa.command("MAIL FROM:<alice@example.org>", replies.S530_AUTH_REQUIRED)
    msa.command("RCPT TO:<bob@example.org>", replies.S530_AUTH_REQUIRED)
    msa.command("DATA", replies.S530_AUTH_REQUIRED)


def test_auth_plain_and_login_exchanges(msa):
    msa.ehlo()
    msa.command("STARTTLS", replies.S220_READY_TLS)
    msa.starttls()
    msa.ehlo()
    msa.command("AUTH PLAIN", replies.S334_CHALLENGE.format(""))
    msa.command("*", replies.S501_AUTH_CANCELLED)
    msa.command("AUTH PLAIN", replies.S334_CHALLENGE.format(""))
    msa.command("not base64!", replies.S501_AUTH_BASE64)
    msa.command("AUTH CRAM-MD5", replies.S504_AUTH_MECHANISM)
    msa.command("AUTH", replies.S501_AUTH_SYNTAX)
    msa.command("AUTH LOGIN", replies.S334_CHALLENGE.format("VXNlcm5hbWU6"))
    msa.command(
        base64.b64encode(b"alice@example.org").decode(),
        replies.S334_CHALLENGE.format("UGFzc3dvcmQ6"),
    )
    msa.command(base64.b64encode(b"secret").decode(), replies.S235_AUTH_OK)
    msa.command(f"AUTH PLAIN {PLAIN_ALICE}", replies.S503_AUTH_ALREADY)


def test_auth_plain_with_challenge(msa):
    msa.ehlo()
    msa.command("STARTTLS", replies.S220_READY_TLS)
    msa.starttls()
    msa.ehlo()
    msa.command("AUTH PLAIN", replies.S334_CHALLENGE.format(""))
    msa.command(PLAIN_ALICE, replies.S235_AUTH_OK)


def test_wrong_password_and_someone_elses_authzid_fail(msa):
    msa.ehlo()
    msa.command("STARTTLS", replies.S220_READY_TLS)
    msa.starttls()
    msa.ehlo()
    wrong = base64.b64encode(b"\x00alice@example.org\x00nope").decode()
    msa.command(f"AUTH PLAIN {wrong}", replies.S535_AUTH_FAILED)
    other = base64.b64encode(b"bob@example.org\x00alice@example.org\x00secret").decode()
    msa.command(f"AUTH PLAIN {other}", replies.S535_AUTH_FAILED)


def test_submission_relays_and_adds_headers(msa):
    tls_login(msa)
    msa.command("MAIL FROM:<alice@example.org>", replies.S250_SENDER_OK)
    msa.command("RCPT TO:<bob@example.org>", replies.S250_RECIPIENT_OK)
    msa.command(
        "RCPT TO:<friend@elsewhere.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;friend+2Bx@elsewhere.example",
        replies.S250_RECIPIENT_OK,
    )
    msa.command("DATA", replies.S354_START_DATA)
    msa.send(MESSAGE + b".\r\n")
    line = msa.line()
    queue_id = line.rsplit(" ", 1)[1]
    assert line == str(replies.S250_QUEUED.format(queue_id))
    stored = blob_read(Message.objects.get(folder__mailbox__local_part="bob").blob)
    head = stored.split(b"\r\n\r\n", 1)[0]
    assert b" with ESMTPSA id " + queue_id.encode() in head
    assert b"\r\nDate: " in head and b"\r\nMessage-ID: <" in head
    assert head.startswith(b"DKIM-Signature: ")
    spool = OutboundMessage.objects.get(queue_id=queue_id)
    assert spool.blob_id == Message.objects.get().blob_id
    assert spool.mail_from == "alice@example.org"
    assert spool.sender_mailbox.local_part == "alice"
    recipient = spool.recipients.get()
    assert recipient.address == "friend@elsewhere.example"
    assert recipient.notify == "SUCCESS,FAILURE"
    assert recipient.orcpt == "rfc822;friend+x@elsewhere.example"


def test_existing_date_and_message_id_are_kept(msa):
    tls_login(msa)
    msa.command("MAIL FROM:<alice@example.org> RET=HDRS ENVID=abc+2B1", replies.S250_SENDER_OK)
    msa.command("RCPT TO:<x@elsewhere.example>", replies.S250_RECIPIENT_OK)
    msa.command("DATA", replies.S354_START_DATA)
    msa.send(b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <m1@example.org>\r\n" + MESSAGE)
    msa.send(b".\r\n")
    assert msa.line().startswith("250 2.0.0 OK queued as ")
    spool = OutboundMessage.objects.get()
    assert (spool.ret, spool.envid) == ("HDRS", "abc+1")
    stored = blob_read(spool.blob)
    assert stored.count(b"\r\nDate: ") == 1 and stored.count(b"Message-ID: ") == 1


@pytest.mark.parametrize("fold", [b" ", b"\t"])
def test_a_header_that_starts_with_a_continuation_line_is_refused_5_6_0(msa, fold):
    """RFC 5322 2.2.3: the first line continues no field. Before, the line was read as part
    of our own Received field and the message accepted (250)."""
    tls_login(msa)
    for _ in range(2):  # refused, and the session goes on
        msa.command("MAIL FROM:<alice@example.org>", replies.S250_SENDER_OK)
        msa.command("RCPT TO:<friend@elsewhere.example>", replies.S250_RECIPIENT_OK)
        msa.command("DATA", replies.S354_START_DATA)
        msa.send(fold + b"continued first\r\n" + MESSAGE + b".\r\n")
        assert msa.line() == str(replies.S550_HEADER_STARTS_FOLDED)
    assert not OutboundMessage.objects.exists() and not Message.objects.exists()
    msa.command("MAIL FROM:<alice@example.org>", replies.S250_SENDER_OK)
    msa.command("RCPT TO:<friend@elsewhere.example>", replies.S250_RECIPIENT_OK)
    msa.command("DATA", replies.S354_START_DATA)
    msa.send(MESSAGE + b".\r\n")
    assert msa.line().startswith("250 2.0.0 OK queued as ")


def test_sender_must_be_owned(msa):
    tls_login(msa)
    msa.command("MAIL FROM:<bob@example.org>", replies.S553_SENDER_NOT_OWNED)
    msa.command("MAIL FROM:<ceo@elsewhere.example>", replies.S553_SENDER_NOT_OWNED)
    msa.command("MAIL FROM:<>", replies.S553_SENDER_NOT_OWNED)
    msa.command("MAIL FROM:<alice+lists@example.org>", replies.S250_SENDER_OK)


def test_sender_may_be_an_alias_of_the_user(msa):
    alias_create(address="sales@example.org", destinations=["alice@example.org"])
    tls_login(msa)
    msa.command("MAIL FROM:<sales@example.org>", replies.S250_SENDER_OK)


def test_implicit_tls_on_465(smtp_ports, hosted):
    client = Transcript(smtp_ports["submissions"], implicit_tls=True)
    assert client.greeting == str(replies.S220_GREETING.format("mx.test.example"))
    lines = client.ehlo()
    assert "250-STARTTLS" not in lines and lines[-1] == "250 AUTH PLAIN LOGIN"
    client.command("MAIL FROM:<alice@example.org>", replies.S530_AUTH_REQUIRED)
    client.command(f"AUTH PLAIN {PLAIN_ALICE}", replies.S235_AUTH_OK)
    client.command("MAIL FROM:<alice@example.org>", replies.S250_SENDER_OK)
    client.command("RCPT TO:<bob@example.org>", replies.S250_RECIPIENT_OK)
    client.command("DATA", replies.S354_START_DATA)
    client.send(MESSAGE + b".\r\n")
    assert client.line().startswith("250 2.0.0 OK queued as ")
    client.close()
