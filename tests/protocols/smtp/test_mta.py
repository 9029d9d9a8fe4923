"""Transcript tests of the MTA on port 25: exact lines in, exact lines out."""

from __future__ import annotations

import pytest
from django.conf import settings

from delivery.models import OutboundMessage
from mailboxes import services
from mailboxes.models import Mailbox, Message
from protocols.smtp import replies
from tests.support.smtp import Transcript

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = b"From: x@remote.example\r\nSubject: hello\r\n\r\nHello.\r\n"


@pytest.fixture
def mta(smtp_ports, hosted):
    client = Transcript(smtp_ports["smtp"])
    yield client
    client.close()


def inbox_count(address: str) -> int:
    return Message.objects.filter(
        folder__mailbox__local_part=address.split("@")[0], folder__name="INBOX"
    ).count()


def test_greeting_and_ehlo_advertise_every_extension(mta):
    assert mta.greeting == str(replies.S220_GREETING.format("mx.test.example"))
    assert mta.ehlo() == [
        "250-mx.test.example",
        "250-PIPELINING",
        f"250-SIZE {settings.MAILHOST_MAX_MESSAGE_SIZE}",
        "250-ENHANCEDSTATUSCODES",
        "250-8BITMIME",
        "250-DSN",
        "250-SMTPUTF8",
        "250-CHUNKING",
        "250 STARTTLS",  # no AUTH on port 25 by default, and never before TLS
    ]


def test_helo_is_plain_smtp(mta):
    mta.command("HELO client.example.net", replies.S250_HELO.format("mx.test.example"))
    mta.command("HELO", replies.S501_HELO_SYNTAX.format("HELO"))


def test_accepts_mail_for_a_hosted_mailbox(mta):
    mta.ehlo()
    mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
    mta.command("DATA", replies.S354_START_DATA)
    mta.send(MESSAGE + b".\r\n")
    line = mta.line()
    queue_id = line.rsplit(" ", 1)[1]
    assert line == str(replies.S250_QUEUED.format(queue_id))
    mta.command("QUIT", replies.S221_BYE)
    message = Message.objects.get(folder__mailbox__local_part="alice", folder__name="INBOX")
    from mailboxes.selectors import blob_read

    stored = blob_read(message.blob)
    assert stored.endswith(MESSAGE)
    assert stored.startswith(b"Received: from client.example.net ([127.0.0.1])\r\n")
    assert f"by mx.test.example (Mailhost) with ESMTP id {queue_id}\r\n".encode() in stored
    assert b"\tfor <alice@example.org>; " in stored
    assert not OutboundMessage.objects.exists()


def test_sequence_errors(mta):
    mta.command("MAIL FROM:<x@remote.example>", replies.S503_NEED_HELO)
    mta.ehlo()
    mta.command("RCPT TO:<alice@example.org>", replies.S503_NEED_MAIL)
    mta.command("DATA", replies.S503_NEED_MAIL)
    mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    mta.command("MAIL FROM:<x@remote.example>", replies.S503_NESTED_MAIL)
    mta.command("DATA", replies.S554_NO_VALID_RECIPIENTS)
    mta.command("RSET", replies.S250_RESET)
    mta.command("RCPT TO:<alice@example.org>", replies.S503_NEED_MAIL)


def test_syntax_errors(mta):
    mta.ehlo()
    mta.command("FOO bar", replies.S500_UNRECOGNIZED)
    mta.command("", replies.S500_BAD_SYNTAX)
    mta.command("MAIL TO:<x@remote.example>", replies.S501_MAIL_SYNTAX)
    mta.command("MAIL FROM:<x@remote.example", replies.S501_SYNTAX.format("unterminated path"))
    mta.command("MAIL FROM:<x@remote.example> FOO=1", replies.S555_PARAMETER.format("FOO"))
    mta.command("MAIL FROM:<x@remote.example> SIZE=abc", replies.S501_SIZE)
    mta.command("MAIL FROM:<x@remote.example> BODY=BINARYMIME", replies.S501_BODY)
    mta.command("MAIL FROM:<x@remote.example> SMTPUTF8=yes", replies.S501_SMTPUTF8_VALUE)
    mta.command("MAIL FROM:<x@remote.example> RET=ALL", replies.S501_RET)
    mta.command("MAIL FROM:<x@remote.example> ENVID=a+2", replies.S501_ENVID)
    mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<>", replies.S553_BAD_RECIPIENT_SYNTAX)
    mta.command("RCPT TO:alice", replies.S501_SYNTAX.format("address must be local@domain"))
    mta.command("RCPT TO:<alice@example.org> NOTIFY=NEVER,DELAY", replies.S501_NOTIFY)
    mta.command("RCPT TO:<alice@example.org> NOTIFY=SOMETIMES", replies.S501_NOTIFY)
    mta.command("RCPT TO:<alice@example.org> ORCPT=bad", replies.S501_ORCPT)
    mta.command("RCPT TO:<alice@example.org> XYZ", replies.S555_PARAMETER.format("XYZ"))
    mta.command("DATA now", replies.S554_NO_VALID_RECIPIENTS)


def test_simple_commands(mta):
    mta.ehlo()
    mta.command("NOOP", replies.S250_NOOP)
    mta.command("VRFY alice@example.org", replies.S252_VRFY)
    mta.command("EXPN staff", replies.S502_NOT_IMPLEMENTED)
    mta.command("HELP", replies.S214_HELP)
    mta.command("RSET", replies.S250_RESET)
    mta.command("rset", replies.S250_RESET)


def test_unknown_hosted_recipient_is_550_5_1_1(mta):
    mta.ehlo()
    mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<nobody@example.org>", replies.S550_NO_SUCH_USER)
    mta.command("RCPT TO:<Alice@EXAMPLE.org>", replies.S250_RECIPIENT_OK)


def test_remote_recipient_without_auth_is_relay_denied(mta):
    mta.ehlo()
    mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<someone@elsewhere.example>", replies.S554_RELAY_DENIED)


def test_too_many_recipients_is_452_4_5_3(mta, settings):
    mta.ehlo()
    mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    limit = settings.MAILHOST_MAX_RECIPIENTS
    for _ in range(limit):
        mta.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
    mta.command("RCPT TO:<bob@example.org>", replies.S452_TOO_MANY_RECIPIENTS)


def test_quota_full_is_452_4_2_2_and_too_big_for_quota_is_552_5_2_2(mta):
    Mailbox.objects.filter(local_part="bob").update(quota=10_000, used_bytes=9_990)
    mta.ehlo()
    mta.command("MAIL FROM:<x@remote.example> SIZE=100", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<bob@example.org>", replies.S452_MAILBOX_FULL)
    mta.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
    mta.command("RSET", replies.S250_RESET)
    mta.command("MAIL FROM:<x@remote.example> SIZE=20000", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<bob@example.org>", replies.S552_MAILBOX_FULL)


def test_quota_checked_again_at_data(mta):
    mta.ehlo()
    mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<bob@example.org>", replies.S250_RECIPIENT_OK)
    Mailbox.objects.filter(local_part="bob").update(quota=100, used_bytes=100)
    mta.command("DATA", replies.S354_START_DATA)
    mta.send(MESSAGE + b".\r\n")
    mta.expect(replies.S452_MAILBOX_FULL)
    assert not Message.objects.exists()


def test_message_limit_reached_is_452_4_2_2_like_a_full_mailbox(mta):
    Mailbox.objects.filter(local_part="bob").update(quota_messages=1)
    services.message_deliver(raw=MESSAGE, recipients=["bob@example.org"])
    mta.ehlo()
    mta.command("MAIL FROM:<x@remote.example> SIZE=20000", replies.S250_SENDER_OK)
    # full for now (an expunge makes room), never 552: the size fits, the count does not
    mta.command("RCPT TO:<bob@example.org>", replies.S452_MAILBOX_FULL)
    mta.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
    assert inbox_count("bob@example.org") == 1
    assert Mailbox.objects.get(local_part="bob").used_messages == 1


def test_message_limit_checked_again_at_data(mta):
    mta.ehlo()
    mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<bob@example.org>", replies.S250_RECIPIENT_OK)
    services.message_deliver(raw=MESSAGE, recipients=["bob@example.org"])
    Mailbox.objects.filter(local_part="bob").update(quota_messages=1)
    mta.command("DATA", replies.S354_START_DATA)
    mta.send(MESSAGE + b".\r\n")
    mta.expect(replies.S452_MAILBOX_FULL)
    assert inbox_count("bob@example.org") == 1


def test_size_parameter_over_the_limit_is_552_5_3_4(mta, settings):
    mta.ehlo()
    too_big = settings.MAILHOST_MAX_MESSAGE_SIZE + 1
    mta.command(f"MAIL FROM:<x@remote.example> SIZE={too_big}", replies.S552_SIZE_EXCEEDED)


def test_size_enforced_while_reading(live_settings, transactional_db, hosted):
    from mailhost import runner
    from tests.support.servers import running

    live_settings.MAILHOST_MAX_MESSAGE_SIZE = 2048
    with running(runner.SMTP) as ports:
        mta = Transcript(ports["smtp"])
        mta.ehlo()
        mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
        mta.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
        mta.command("DATA", replies.S354_START_DATA)
        mta.send(b"Subject: big\r\n\r\n" + b"x" * 900 + b"\r\n")
        for _ in range(300):
            mta.send(b"y" * 78 + b"\r\n")
        mta.send(b".\r\n")
        mta.expect(replies.S552_MESSAGE_TOO_BIG)
        # The session goes on: a small message still gets through.
        mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
        mta.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
        mta.command("DATA", replies.S354_START_DATA)
        mta.send(MESSAGE + b".\r\n")
        assert mta.line().startswith("250 2.0.0 OK queued as ")
        mta.close()
    assert Message.objects.count() == 1


def test_dot_stuffing_is_removed(mta):
    mta.ehlo()
    mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
    mta.command("DATA", replies.S354_START_DATA)
    mta.send(b"Subject: dots\r\n\r\n..leading dot\r\n...\r\n.\r\n")
    assert mta.line().startswith("250 2.0.0 OK queued as ")
    from mailboxes.selectors import blob_read

    stored = blob_read(Message.objects.get().blob)
    assert stored.endswith(b"\r\n\r\n.leading dot\r\n..\r\n")


def test_pipelined_transaction_gets_every_reply_in_order(mta):
    mta.ehlo()
    mta.send(
        b"MAIL FROM:<x@remote.example>\r\n"
        b"RCPT TO:<alice@example.org>\r\n"
        b"RCPT TO:<nobody@example.org>\r\n"
        b"RCPT TO:<bob@example.org>\r\n"
        b"DATA\r\n"
    )
    mta.expect(
        replies.S250_SENDER_OK,
        replies.S250_RECIPIENT_OK,
        replies.S550_NO_SUCH_USER,
        replies.S250_RECIPIENT_OK,
        replies.S354_START_DATA,
    )
    mta.send(
        MESSAGE + b".\r\nMAIL FROM:<y@remote.example>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\n"
    )
    assert mta.line().startswith("250 2.0.0 OK queued as ")
    mta.expect(replies.S250_SENDER_OK, replies.S250_RECIPIENT_OK, replies.S354_START_DATA)
    mta.send(MESSAGE + b".\r\nQUIT\r\n")
    assert mta.line().startswith("250 2.0.0 OK queued as ")
    mta.expect(replies.S221_BYE)
    assert {inbox_count(a) for a in ("alice", "bob", "carol")} == {1}


def test_empty_message(mta):
    mta.ehlo()
    mta.command("MAIL FROM:<>", replies.S250_SENDER_OK)  # the null reverse-path (bounces)
    mta.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
    mta.command("DATA", replies.S354_START_DATA)
    mta.send(b".\r\n")
    assert mta.line().startswith("250 2.0.0 OK queued as ")


def test_smtputf8_address_requires_the_parameter(mta, make_mailbox):
    make_mailbox("jörg@example.org")
    mta.ehlo()
    mta.command("MAIL FROM:<jörg@remote.example>", replies.S553_SMTPUTF8_REQUIRED)
    mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<jörg@example.org>", replies.S553_SMTPUTF8_RECIPIENT)
    mta.command("RSET", replies.S250_RESET)
    mta.command("MAIL FROM:<jörg@remote.example> SMTPUTF8", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<jörg@example.org>", replies.S250_RECIPIENT_OK)


def test_starttls_then_ehlo_again(mta):
    mta.ehlo()
    mta.command("STARTTLS", replies.S220_READY_TLS)
    mta.starttls()
    lines = mta.ehlo()
    assert "250-STARTTLS" not in lines and "250 STARTTLS" not in lines
    assert lines[-1] == "250 CHUNKING"
    mta.command("STARTTLS", replies.S503_TLS_ALREADY)
    mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
    mta.command("DATA", replies.S354_START_DATA)
    mta.send(MESSAGE + b".\r\n")
    assert mta.line().startswith("250 2.0.0 OK queued as ")
    from mailboxes.selectors import blob_read

    stored = blob_read(Message.objects.get().blob)
    assert b" with ESMTPS id " in stored
    assert b"\t(using TLSv1.3 with cipher " in stored


def test_auth_is_not_offered_on_port_25_by_default(mta):
    mta.ehlo()
    mta.command("STARTTLS", replies.S220_READY_TLS)
    mta.starttls()
    mta.ehlo()
    mta.command("AUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==", replies.S503_AUTH_NOT_OFFERED)


def test_every_reply_has_an_enhanced_status_code(mta):
    """RFC 2034 3: every 2xx/4xx/5xx reply except the greeting and HELO/EHLO."""
    mta.ehlo()
    seen = []
    for line in [
        "NOOP",
        "MAIL FROM:<x@remote.example>",
        "RCPT TO:<nobody@example.org>",
        "RCPT TO:<x@elsewhere.example>",
        "RCPT TO:<alice@example.org>",
        "XYZZY",
        "RSET",
        "VRFY x",
        "DATA",
    ]:
        mta.send(line)
        seen.append(mta.line())
    import re

    for reply in seen:
        assert re.match(r"^[245]\d\d [245]\.\d{1,3}\.\d{1,3} ", reply), reply


def test_postmaster_without_a_domain_is_accepted(mta):
    """RFC 5321 4.5.1: RCPT TO:<Postmaster> must work; it goes to postmaster@ a hosted domain."""
    from mailboxes.services import alias_create

    mta.ehlo()
    mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<Postmaster>", replies.S550_NO_SUCH_USER)  # nobody is postmaster yet
    alias_create(address="postmaster@example.org", destinations=["carol@example.org"])
    mta.command("RCPT TO:<Postmaster>", replies.S250_RECIPIENT_OK)
    mta.command("RCPT TO:<postmaster> NOTIFY=NEVER", replies.S250_RECIPIENT_OK)
    mta.command("DATA", replies.S354_START_DATA)
    mta.send(MESSAGE + b".\r\n")
    assert mta.line().startswith("250 2.0.0 OK queued as ")
    assert inbox_count("carol") == 1


def test_one_log_line_per_transaction(mta, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="mailhost.smtp")
    mta.ehlo()
    mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
    mta.command("RCPT TO:<bob@example.org>", replies.S250_RECIPIENT_OK)
    mta.command("DATA", replies.S354_START_DATA)
    mta.send(MESSAGE + b".\r\n")
    queue_id = mta.line().rsplit(" ", 1)[1]
    mta.command("NOOP", replies.S250_NOOP)
    lines = [r.getMessage() for r in caplog.records if r.name == "mailhost.smtp"]
    assert lines == [
        f"smtp accepted client=127.0.0.1 service=smtp helo=client.example.net "
        f"from=<x@remote.example> queue={queue_id} rcpts=2 size={len(MESSAGE)} tls=no"
    ]
