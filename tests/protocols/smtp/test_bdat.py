"""CHUNKING / BDAT (RFC 3030) transcripts; commands and a message split across many reads."""

from __future__ import annotations

import socket

import pytest

from mailboxes.models import Message
from mailboxes.selectors import blob_read
from protocols.smtp import replies
from tests.support.smtp import Transcript

pytestmark = pytest.mark.django_db(transaction=True)

HEAD = b"Subject: chunks\r\n\r\n"
BODY = b"first line\r\n.starts with a dot\r\n"


@pytest.fixture
def mta(smtp_ports, hosted):
    client = Transcript(smtp_ports["smtp"])
    client.ehlo()
    yield client
    client.close()


def start(mta: Transcript) -> None:
    mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)


def test_two_chunks_make_one_message_without_dot_unstuffing(mta):
    start(mta)
    mta.send(f"BDAT {len(HEAD)}".encode() + b"\r\n" + HEAD)
    mta.expect(replies.S250_BDAT_CHUNK.format(len(HEAD)))
    mta.send(f"BDAT {len(BODY)} LAST".encode() + b"\r\n" + BODY)
    line = mta.line()
    assert line.startswith("250 2.0.0 OK queued as ")
    stored = blob_read(Message.objects.get().blob)
    assert stored.endswith(HEAD + BODY)  # BDAT data is binary: the dot stays


def test_pipelined_chunks_and_zero_last(mta):
    mta.send(
        b"MAIL FROM:<x@remote.example>\r\nRCPT TO:<alice@example.org>\r\n"
        + f"BDAT {len(HEAD)}\r\n".encode()
        + HEAD
        + f"BDAT {len(BODY)}\r\n".encode()
        + BODY
        + b"BDAT 0 LAST\r\n"
    )
    mta.expect(
        replies.S250_SENDER_OK,
        replies.S250_RECIPIENT_OK,
        replies.S250_BDAT_CHUNK.format(len(HEAD)),
        replies.S250_BDAT_CHUNK.format(len(BODY)),
    )
    assert mta.line().startswith("250 2.0.0 OK queued as ")
    assert blob_read(Message.objects.get().blob).endswith(HEAD + BODY)


def test_bdat_without_recipients_reads_and_refuses_the_chunk(mta):
    mta.send(b"BDAT 12 LAST\r\nRSET\r\nNOOP\r\n")  # "RSET\r\nNOOP\r\n" is the chunk's data
    mta.expect(replies.S503_NEED_MAIL)
    mta.command("NOOP", replies.S250_NOOP)


def test_data_after_bdat_is_out_of_sequence(mta):
    start(mta)
    mta.send(b"BDAT 4\r\nabcd")
    mta.expect(replies.S250_BDAT_CHUNK.format(4))
    mta.command("DATA", replies.S503_DATA_AFTER_BDAT)


def test_bdat_with_bad_size_closes_the_connection(mta):
    start(mta)
    mta.command("BDAT ten", replies.S501_BDAT_SYNTAX)
    assert mta.closed()


def test_bdat_bare_lf_is_refused(mta):
    start(mta)
    data = b"Subject: x\n\nbody\n"
    mta.send(f"BDAT {len(data)} LAST\r\n".encode() + data)
    mta.expect(replies.S550_BARE_LINE_ENDING)
    assert not Message.objects.exists()


def test_bdat_over_the_size_limit(live_settings, transactional_db, hosted):
    from mailhost import runner
    from tests.support.servers import running

    live_settings.MAILHOST_MAX_MESSAGE_SIZE = 2048
    with running(runner.SMTP) as ports:
        mta = Transcript(ports["smtp"])
        mta.ehlo()
        start(mta)
        mta.send(b"BDAT 1500\r\n" + b"a" * 1500)
        mta.expect(replies.S250_BDAT_CHUNK.format(1500))
        mta.send(b"BDAT 1500\r\n" + b"b" * 1500 + b"BDAT 10 LAST\r\n" + b"c" * 10)
        mta.expect(replies.S552_MESSAGE_TOO_BIG)
        mta.expect(replies.S503_NEED_MAIL)  # the chunk already in the pipe is discarded
        mta.command("NOOP", replies.S250_NOOP)
        mta.close()
    assert not Message.objects.exists()


def test_a_recipient_between_chunks_keeps_data_refused(mta):
    """The state table: RCPT after a chunk adds a recipient and stays in BDAT's state, so
    DATA is still refused (RFC 3030 3) and the message ends with BDAT LAST."""
    start(mta)
    mta.send(f"BDAT {len(HEAD)}".encode() + b"\r\n" + HEAD)
    mta.expect(replies.S250_BDAT_CHUNK.format(len(HEAD)))
    mta.command("RCPT TO:<bob@example.org>", replies.S250_RECIPIENT_OK)
    mta.command("DATA", replies.S503_DATA_AFTER_BDAT)
    mta.send(f"BDAT {len(BODY)} LAST".encode() + b"\r\n" + BODY)
    assert mta.line().startswith("250 2.0.0 OK queued as ")
    assert Message.objects.count() == 2


def test_commands_sent_one_octet_at_a_time(mta):
    """Pipelined commands and a message split across many reads come out whole."""
    stream = (
        b"MAIL FROM:<x@remote.example>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n"
        + HEAD
        + BODY.replace(b"\r\n.", b"\r\n..")
        + b".\r\nNOOP\r\n"
    )
    mta.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for octet in stream:
        mta.send(bytes([octet]))
    mta.expect(replies.S250_SENDER_OK, replies.S250_RECIPIENT_OK, replies.S354_START_DATA)
    assert mta.line().startswith("250 2.0.0 OK queued as ")
    mta.expect(replies.S250_NOOP)
    assert blob_read(Message.objects.get().blob).endswith(HEAD + BODY)
