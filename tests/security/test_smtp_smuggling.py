"""SMTP smuggling (CVE-2023-51766 family): only CRLF.CRLF ends DATA, bare CR/LF is refused."""

from __future__ import annotations

import pytest

from mailboxes.models import Message
from mailhost import runner
from protocols.smtp import replies
from tests.support.servers import running
from tests.support.smtp import Transcript

pytestmark = pytest.mark.django_db(transaction=True)

# Endings a sloppy server might take for the end of DATA.
ENDINGS = [
    b"\n.\n",
    b"\n.\r\n",
    b"\r\n.\n",
    b"\r.\r",
    b"\r\n.\r",
    b"\r.\r\n",
    b"\n.\r",
    b"\r.\n",
    b"\r\n.\r\r\n",
    b"\r\n\x00.\r\n",
]
SMUGGLED = (
    b"MAIL FROM:<ceo@example.org>\r\n"
    b"RCPT TO:<bob@example.org>\r\n"
    b"DATA\r\n"
    b"From: ceo@example.org\r\nSubject: smuggled\r\n\r\nwire money\r\n"
)


@pytest.fixture
def mta(smtp_ports, hosted):
    client = Transcript(smtp_ports["smtp"])
    client.ehlo()
    yield client
    client.close()


def open_data(mta: Transcript) -> None:
    mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
    mta.command("DATA", replies.S354_START_DATA)


@pytest.mark.parametrize("ending", ENDINGS, ids=[repr(e) for e in ENDINGS])
def test_smuggled_message_is_refused_whole(mta, ending):
    open_data(mta)
    mta.send(b"Subject: real\r\n\r\nreal body" + ending + SMUGGLED + b".\r\n")
    # A NUL is no line ending, but a next hop that drops NULs would see one: refused too.
    mta.expect(replies.S550_NUL_IN_MESSAGE if b"\x00" in ending else replies.S550_BARE_LINE_ENDING)
    # Exactly one reply: nothing after the fake ending was read as a command.
    mta.command("NOOP", replies.S250_NOOP)
    assert not Message.objects.exists()


def test_bare_lf_alone_is_refused(mta):
    open_data(mta)
    mta.send(b"Subject: x\r\n\r\nline one\nline two\r\n.\r\n")
    mta.expect(replies.S550_BARE_LINE_ENDING)


def test_bare_cr_alone_is_refused(mta):
    open_data(mta)
    mta.send(b"Subject: x\r\n\r\nline one\rline two\r\n.\r\n")
    mta.expect(replies.S550_BARE_LINE_ENDING)


def test_normalize_policy_keeps_the_smuggled_text_inside_one_message(
    live_settings, transactional_db, hosted
):
    live_settings.MAILHOST_SMTP_BARE_LINE_ENDINGS = "normalize"
    with running(runner.SMTP) as ports:
        mta = Transcript(ports["smtp"])
        mta.ehlo()
        open_data(mta)
        mta.send(b"Subject: real\r\n\r\nreal body\n.\n" + SMUGGLED + b".\r\n")
        assert mta.line().startswith("250 2.0.0 OK queued as ")
        mta.command("NOOP", replies.S250_NOOP)
        mta.close()
    message = Message.objects.get()
    assert message.folder.mailbox.local_part == "alice"
    from mailboxes.selectors import blob_read

    stored = blob_read(message.blob)
    assert b"\r\nreal body\r\n\r\nMAIL FROM:<ceo@example.org>\r\n" in stored
    assert b"\n" not in stored.replace(b"\r\n", b"")


def test_bare_lf_in_a_command_is_refused(mta):
    mta.send(b"MAIL FROM:<x@remote.example>\n")
    mta.expect(replies.S500_BARE_LINE_ENDING)
    mta.send(b"NOOP\rRSET\r\n")
    mta.expect(replies.S500_BARE_LINE_ENDING)
    mta.command("NOOP", replies.S250_NOOP)
