"""What DATA and BDAT accept as message content: long lines (issue 13) and NUL (issue 14).

Lines longer than RFC 5322's 998 octets are taken, as Postfix takes them, up to
MAILHOST_SMTP_MAX_LINE_LENGTH, and stored unchanged; beyond it 552 5.3.4. NUL is refused
with 550 5.6.0 unless MAILHOST_SMTP_NUL_BYTES=strip.
"""

from __future__ import annotations

import pytest

from mailboxes.models import Message
from mailboxes.selectors import blob_read
from mailhost import runner
from protocols.smtp import replies
from tests.support.servers import running
from tests.support.smtp import Transcript

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def serve(live_settings, transactional_db, hosted):
    """Start port 25 with the given settings; yields a function returning a Transcript."""
    opened = []

    def start(**overrides):
        for name, value in overrides.items():
            setattr(live_settings, name, value)
        context = running(runner.SMTP)
        ports = context.__enter__()
        opened.append(context)
        client = Transcript(ports["smtp"])
        opened.append(client)
        client.ehlo()
        return client

    yield start
    for item in reversed(opened):
        if isinstance(item, Transcript):
            item.close()
        else:
            item.__exit__(None, None, None)


def open_data(mta: Transcript) -> None:
    mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
    mta.command("DATA", replies.S354_START_DATA)


def stored_messages() -> list[bytes]:
    return [blob_read(m.blob) for m in Message.objects.order_by("id")]


def test_lines_over_998_octets_are_stored_unchanged(serve):
    mta = serve()
    message = (
        b"From: x@remote.example\r\nSubject: long lines\r\n\r\n"
        + b"a" * 999
        + b"\r\n"
        + b"<p>"
        + b"b" * 200_000
        + b"</p>\r\n"
        + b"."  # a dot-stuffed line inside the long run: unstuffed, nothing else changed
        + b"." * 5000
        + b"\r\nend\r\n"
    )
    open_data(mta)
    mta.send(message + b".\r\n")
    assert mta.line().startswith("250 2.0.0 OK queued as ")
    mta.command("NOOP", replies.S250_NOOP)
    (stored,) = stored_messages()
    expected = message.replace(b"\r\n." + b"." * 5000, b"\r\n" + b"." * 5000)
    assert stored.endswith(expected)
    assert stored[: len(stored) - len(expected)].startswith(b"Received: ")


def test_line_beyond_the_limit_gets_552_and_the_session_goes_on(serve):
    mta = serve(MAILHOST_SMTP_MAX_LINE_LENGTH=2000)
    open_data(mta)
    mta.send(b"Subject: long\r\n\r\n" + b"y" * 2001 + b"\r\n.\r\n")
    mta.expect(replies.S552_DATA_LINE_TOO_LONG.format(2000))
    assert str(replies.S552_DATA_LINE_TOO_LONG.format(2000)) == (
        "552 5.3.4 Message line longer than 2000 octets"
    )
    # The transaction is over, the session is not; a line at the limit is taken.
    mta.command("DATA", replies.S503_NEED_MAIL)
    open_data(mta)
    mta.send(b"Subject: long\r\n\r\n" + b"y" * 2000 + b"\r\n.\r\n")
    assert mta.line().startswith("250 2.0.0 OK queued as ")
    # BDAT: the same limit, the line split across chunks.
    mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
    mta.send(b"BDAT 1500\r\n" + b"z" * 1500)
    mta.expect(replies.S250_BDAT_CHUNK.format(1500))
    mta.send(b"BDAT 600 LAST\r\n" + b"z" * 598 + b"\r\n")
    mta.expect(replies.S552_DATA_LINE_TOO_LONG.format(2000))
    mta.command("NOOP", replies.S250_NOOP)
    assert len(stored_messages()) == 1


@pytest.mark.parametrize(
    "body",
    [b"before\x00after\r\n", b"\x00\r\n", b"line\r\n\x00.\r\n", b"x" * 300_000 + b"\x00\r\n"],
    ids=["inline", "alone", "before-dot", "after-300k"],
)
def test_nul_in_data_is_refused(serve, body):
    mta = serve()
    open_data(mta)
    mta.send(b"Subject: nul\r\n\r\n" + body + b".\r\n")
    mta.expect(replies.S550_NUL_IN_MESSAGE)
    assert str(replies.S550_NUL_IN_MESSAGE).startswith("550 5.6.0 NUL ")
    mta.command("NOOP", replies.S250_NOOP)  # nothing after the NUL was read as a command
    assert stored_messages() == []


def test_nul_in_bdat_is_refused(serve):
    mta = serve()
    mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
    chunk = b"Subject: nul\r\n\r\na\x00b\r\n"
    mta.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    mta.expect(replies.S550_NUL_IN_MESSAGE)
    mta.command("NOOP", replies.S250_NOOP)
    assert stored_messages() == []


def test_nul_strip_policy(serve):
    mta = serve(MAILHOST_SMTP_NUL_BYTES="strip")
    open_data(mta)
    mta.send(b"Subject: nul\r\n\r\nbe\x00fore\r\n\x00.\r\n.\r\n")
    assert mta.line().startswith("250 2.0.0 OK queued as ")
    mta.command("NOOP", replies.S250_NOOP)
    (stored,) = stored_messages()
    assert stored.endswith(b"Subject: nul\r\n\r\nbefore\r\n.\r\n")
    assert b"\x00" not in stored
