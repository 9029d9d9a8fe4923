"""Oversized lines, garbage bytes, clients that vanish mid-message."""

from __future__ import annotations

import os
import socket
import time

import pytest

from mailboxes.models import Blob, Message
from mailhost import runner
from protocols.smtp import replies
from tests.support.servers import running
from tests.support.smtp import Transcript

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def mta(smtp_ports, hosted):
    client = Transcript(smtp_ports["smtp"])
    client.ehlo()
    yield client
    client.close()


def test_command_line_over_1000_octets(mta):
    mta.command("NOOP " + "x" * 993, replies.S250_NOOP)  # 1000 octets with CRLF
    mta.command("NOOP " + "x" * 994, replies.S500_LINE_TOO_LONG)
    mta.command("MAIL FROM:<" + "a" * 2000 + "@remote.example>", replies.S500_LINE_TOO_LONG)
    mta.command("NOOP", replies.S250_NOOP)


def test_huge_line_without_newline_is_drained(mta):
    mta.send(b"A" * 300_000 + b"\r\n")
    mta.expect(replies.S500_LINE_TOO_LONG)
    mta.command("NOOP", replies.S250_NOOP)


@pytest.mark.parametrize(
    "garbage,expected",
    [
        (b"\x00\x01\x02\x03\r\n", replies.S500_UNRECOGNIZED),
        (b"\xff\xfe\xfd MAIL\r\n", replies.S500_UNRECOGNIZED),
        ("ÉHLO x\r\n".encode(), replies.S500_UNRECOGNIZED),
        (b"GET / HTTP/1.1\r\n", replies.S500_UNRECOGNIZED),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n", replies.S500_UNRECOGNIZED),
        (b"MAIL FROM:<\xff\xfe@remote.example>\r\n", replies.S501_SYNTAX.format("bad local part")),
        (b" \r\n", replies.S500_BAD_SYNTAX),
    ],
)
def test_garbage_bytes_get_a_reply_and_the_session_survives(mta, garbage, expected):
    mta.send(garbage)
    mta.expect(expected)
    mta.command("NOOP", replies.S250_NOOP)


def test_random_bytes_then_too_many_errors(mta):
    noise = os.urandom(4096).replace(b"\n", b"") + b"\r\n"
    mta.send((b"\x01" + noise[:200] + b"\r\n") * 20)  # one write: the server hangs up at 10
    lines = []
    while True:
        raw = mta.file.readline()
        if not raw:
            break
        lines.append(raw)
    assert lines[-1].decode().rstrip() == str(
        replies.S421_TOO_MANY_ERRORS.format("mx.test.example")
    )
    assert len(lines) == 10


def blob_files(root) -> list:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_client_disconnecting_mid_data_stores_nothing(smtp_ports, hosted, blob_dir):
    client = Transcript(smtp_ports["smtp"])
    client.ehlo()
    client.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    client.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
    client.command("DATA", replies.S354_START_DATA)
    client.send(b"Subject: cut\r\n\r\n" + b"half a message\r\n" * 1000)
    client.sock.shutdown(socket.SHUT_RDWR)
    client.close()
    # The server is still fine and stored nothing.
    time.sleep(0.3)
    other = Transcript(smtp_ports["smtp"])
    other.ehlo()
    other.command("QUIT", replies.S221_BYE)
    assert not Message.objects.exists()
    assert not Blob.objects.exists()
    assert blob_files(blob_dir) == []


def test_client_disconnecting_mid_bdat_stores_nothing(smtp_ports, hosted, blob_dir):
    client = Transcript(smtp_ports["smtp"])
    client.ehlo()
    client.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    client.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
    client.send(b"BDAT 100000 LAST\r\n" + b"x" * 5000)
    client.close()
    time.sleep(0.3)
    assert not Message.objects.exists()
    assert blob_files(blob_dir) == []


def test_plaintext_to_the_implicit_tls_port(smtp_ports, hosted):
    sock = socket.create_connection(("127.0.0.1", smtp_ports["submissions"]), timeout=10)
    sock.sendall(b"EHLO x\r\nMAIL FROM:<a@b.example>\r\n")
    sock.settimeout(10)
    try:
        data = sock.recv(1024)
    except ConnectionError:
        data = b""
    sock.close()
    assert not data.startswith(b"220") and not data.startswith(b"250")
    client = Transcript(smtp_ports["submissions"], implicit_tls=True)
    client.command("NOOP", replies.S250_NOOP)
    client.close()


def test_idle_client_gets_421_at_the_timeout(live_settings, transactional_db, hosted):
    live_settings.MAILHOST_SMTP_COMMAND_TIMEOUT = 1
    with running(runner.SMTP) as ports:
        client = Transcript(ports["smtp"])
        client.ehlo()
        started = time.monotonic()
        client.expect(replies.S421_TIMEOUT.format("mx.test.example"))
        assert client.closed()
        assert 0.8 < time.monotonic() - started < 5
        client.close()


def test_slow_data_times_out(live_settings, transactional_db, hosted, blob_dir):
    live_settings.MAILHOST_SMTP_DATA_TIMEOUT = 1
    with running(runner.SMTP) as ports:
        client = Transcript(ports["smtp"])
        client.ehlo()
        client.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
        client.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
        client.command("DATA", replies.S354_START_DATA)
        client.send(b"Subject: slow\r\n")
        client.expect(replies.S421_TIMEOUT.format("mx.test.example"))
        client.close()
    assert not Message.objects.exists()
