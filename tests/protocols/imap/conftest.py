"""Fixtures for IMAP tests: a live IMAP listener and a raw transcript client."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest

from mailhost import runner
from tests.support.servers import running

PASSWORD = "secret"


def deliver_in_thread(raw: bytes, recipient: str) -> threading.Thread:
    """message_deliver from another thread (as SMTP would), closing its DB connection."""
    from django.db import connection

    from mailboxes import services

    def run() -> None:
        try:
            services.message_deliver(raw=raw, recipients=[recipient])
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


class Transcript:
    """Exact lines in, exact lines out, over a real socket."""

    def __init__(self, port: int, *, tls: bool = False):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(sock)
        self.sock = sock
        self.file = sock.makefile("rb")
        self.greeting = self.line()

    def starttls(self) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.sock = context.wrap_socket(self.sock)
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self) -> bytes:
        line = self.file.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError(f"closed; got {line!r}")
        return line[:-2]

    def read_exact(self, n: int) -> bytes:
        data = self.file.read(n)
        if len(data) < n:
            raise ConnectionError("closed")
        return data

    def until(self, tag: str) -> list[bytes]:
        """Lines up to and including the tagged reply; literals are inlined."""
        lines = []
        while True:
            line = self.line()
            while line.endswith(b"}") and b"{" in line:
                size = int(line[line.rindex(b"{") + 1 : -1].rstrip(b"+"))
                line += b"\r\n" + self.read_exact(size) + self.line()
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    def cmd(self, tag: str, text: str | bytes) -> list[bytes]:
        if isinstance(text, str):
            text = text.encode()
        self.send(tag.encode() + b" " + text + b"\r\n")
        return self.until(tag)

    def login(self, user: str = "alice@example.org", password: str = PASSWORD) -> None:
        lines = self.cmd("L0", f'LOGIN "{user}" "{password}"')
        assert lines[-1].startswith(b"L0 OK"), lines

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def imap(live_settings, make_mailbox, transactional_db):
    """Listener ports with plaintext auth allowed and a mailbox alice@example.org."""
    live_settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = True
    mailbox = make_mailbox("alice@example.org", PASSWORD)
    with running(runner.IMAP) as ports:
        yield {"ports": ports, "mailbox": mailbox}


@pytest.fixture
def client(imap):
    clients = []

    def connect(*, login: bool = True, tls: bool = False) -> Transcript:
        port = imap["ports"]["imaps" if tls else "imap"]
        conn = Transcript(port, tls=tls)
        clients.append(conn)
        if login:
            conn.login()
        return conn

    yield connect
    for conn in clients:
        conn.close()
