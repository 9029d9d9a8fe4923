"""Idle strangers on port 25 cannot shut users out of submission (issue 14).

Ports 587 and 465 have a connection cap of their own (MAILHOST_SUBMISSION_MAX_CONNECTIONS,
_PER_IP), and once port 25 holds more than MAILHOST_SMTP_BUSY_FRACTION of its cap, its idle
anonymous sessions get MAILHOST_SMTP_BUSY_COMMAND_TIMEOUT seconds instead of the usual
command timeout. Real sockets, small caps, several client addresses (127.0.0.x).
"""

from __future__ import annotations

import socket
import time

import pytest

from mailhost import runner
from protocols.smtp import replies
from tests.support.servers import running
from tests.support.smtp import Transcript, client_tls_context

pytestmark = pytest.mark.django_db(transaction=True)

HOST = "mx.test.example"


def connect(port: int, source: str, *, implicit_tls: bool = False):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    if implicit_tls:
        sock = client_tls_context().wrap_socket(sock)
    return sock, sock.makefile("rb")


def first_line(file) -> str:
    return file.readline().decode().rstrip("\r\n")


def test_idle_port_25_connections_leave_submission_its_own_cap(
    live_settings, transactional_db, hosted
):
    live_settings.MAILHOST_MAX_CONNECTIONS = 8
    live_settings.MAILHOST_MAX_CONNECTIONS_PER_IP = 2
    live_settings.MAILHOST_SUBMISSION_MAX_CONNECTIONS = 4
    live_settings.MAILHOST_SUBMISSION_MAX_CONNECTIONS_PER_IP = 2
    live_settings.MAILHOST_SMTP_BUSY_FRACTION = 1.0  # no early cut in this test
    opened = []
    with running(runner.SMTP) as ports:
        try:
            # Strangers fill port 25 from four addresses.
            for index in range(8):
                sock, file = connect(ports["smtp"], f"127.0.0.{10 + index // 2}")
                opened.append(sock)
                assert first_line(file).startswith("220 ")
            sock, file = connect(ports["smtp"], "127.0.0.20")
            opened.append(sock)
            assert first_line(file) == str(replies.S421_TOO_MANY_CONNECTIONS.format(HOST))
            # Users still get in on 587 and 465, up to submission's own caps.
            sock, file = connect(ports["submission"], "127.0.0.30")
            opened.append(sock)
            assert first_line(file).startswith("220 ")
            sock, file = connect(ports["submissions"], "127.0.0.30", implicit_tls=True)
            opened.append(sock)
            assert first_line(file).startswith("220 ")
            sock, file = connect(ports["submission"], "127.0.0.30")
            opened.append(sock)
            assert first_line(file) == str(replies.S421_TOO_MANY_FROM_ADDRESS.format(HOST))
            for source in ("127.0.0.31", "127.0.0.32"):
                sock, file = connect(ports["submission"], source)
                opened.append(sock)
                assert first_line(file).startswith("220 ")
            sock, file = connect(ports["submission"], "127.0.0.33")
            opened.append(sock)
            assert first_line(file) == str(replies.S421_TOO_MANY_CONNECTIONS.format(HOST))
        finally:
            for sock in opened:
                sock.close()


def test_idle_strangers_on_a_busy_port_25_are_cut_sooner(live_settings, transactional_db, hosted):
    live_settings.MAILHOST_MAX_CONNECTIONS = 10
    live_settings.MAILHOST_SMTP_BUSY_FRACTION = 0.5  # busy above 5 connections
    live_settings.MAILHOST_SMTP_BUSY_COMMAND_TIMEOUT = 1
    live_settings.MAILHOST_SMTP_COMMAND_TIMEOUT = 300
    with running(runner.SMTP) as ports:
        # Below the mark, an idle session keeps its usual timeout.
        early = Transcript(ports["smtp"])
        working = Transcript(ports["smtp"])
        working.ehlo()
        working.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
        user = Transcript(ports["submission"])
        idle = [Transcript(ports["smtp"]) for _ in range(3)]
        time.sleep(1.5)
        for client in [early, *idle]:
            client.sock.settimeout(0.2)
            with pytest.raises(TimeoutError):
                client.sock.recv(1, socket.MSG_PEEK)
            client.sock.settimeout(15)
        # The sixth connection makes port 25 busy: idle strangers go within the short timeout.
        started = time.monotonic()
        sixth = Transcript(ports["smtp"])
        timeout_reply = str(replies.S421_TIMEOUT.format(HOST))
        for client in [early, *idle, sixth]:
            assert client.line() == timeout_reply
            assert client.closed()
        assert time.monotonic() - started < 4
        # A session in a transaction and a submission session are left alone.
        working.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
        user.command("NOOP", replies.S250_NOOP)
        for client in [early, working, user, sixth, *idle]:
            client.close()
