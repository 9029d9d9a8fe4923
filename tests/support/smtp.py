"""SMTP test support: the listeners on real sockets, a raw transcript client, fixtures."""

from __future__ import annotations

import socket
import ssl

import pytest

from mailhost import runner
from protocols.smtp.replies import S220_READY_TLS, Reply
from tests.support.servers import running


@pytest.fixture
def smtp_ports(live_settings, transactional_db):
    with running(runner.SMTP) as ports:
        yield ports


@pytest.fixture
def hosted(make_mailbox):
    """example.org with alice, bob and carol (password "secret")."""
    return {name: make_mailbox(f"{name}@example.org") for name in ("alice", "bob", "carol")}


class RelaySink:
    """A remote MX on 127.0.0.1 (reached as the relay host) that records every message it is
    handed; `controller.start()` / `.stop()` run it."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        from bench.mailhost_process import free_port

        self.received: list[bytes] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        self.received.append(envelope.original_content or envelope.content)
        return "250 2.0.0 OK"


def client_tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Transcript:
    """Exact lines in, exact lines out, over a real socket."""

    def __init__(self, port: int, *, implicit_tls: bool = False, greet: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        if implicit_tls:
            self.sock = client_tls_context().wrap_socket(self.sock)
        self.file = self.sock.makefile("rb")
        self.greeting = self.line() if greet else None

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8") + b"\r\n"
        self.sock.sendall(data)

    def line(self) -> str:
        raw = self.file.readline()
        assert raw.endswith(b"\r\n"), f"reply not CRLF-terminated: {raw!r}"
        return raw[:-2].decode("utf-8")

    def expect(self, *expected: Reply | str) -> None:
        for reply in expected:
            line = self.line()
            assert line == str(reply), f"got {line!r}, expected {str(reply)!r}"

    def command(self, line: str, expected: Reply | str) -> None:
        self.send(line)
        self.expect(expected)

    def ehlo(self, name: str = "client.example.net") -> list[str]:
        self.send(f"EHLO {name}")
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if line[3] == " ":
                return lines

    def starttls(self) -> None:
        self.file.close()
        self.sock = client_tls_context().wrap_socket(self.sock)
        self.file = self.sock.makefile("rb")

    def secure(self) -> None:
        """EHLO, STARTTLS and EHLO again: a session ready for AUTH."""
        self.ehlo()
        self.command("STARTTLS", S220_READY_TLS)
        self.starttls()
        self.ehlo()

    def closed(self) -> bool:
        """True when the server has closed the connection."""
        try:
            return self.file.readline() == b""
        except (ConnectionError, OSError):
            return True

    def close(self) -> None:
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass


def raw_transaction(sock, reader, *, helo: bytes, mail_from: bytes, rcpt: bytes, body: bytes):
    """One SMTP transaction on a raw socket (e.g. after a PROXY header): the greeting, EHLO,
    MAIL, RCPT and DATA, each reply checked, then the message; returns its final reply line."""

    def reply() -> bytes:
        while True:
            line = reader.readline()
            if line[3:4] != b"-":
                return line

    assert reply().startswith(b"220 ")
    for command, code in (
        (b"EHLO " + helo, b"250"),
        (b"MAIL FROM:<" + mail_from + b">", b"250"),
        (b"RCPT TO:<" + rcpt + b">", b"250"),
        (b"DATA", b"354"),
    ):
        sock.sendall(command + b"\r\n")
        assert reply().startswith(code), command
    sock.sendall(body + b"\r\n.\r\n")
    return reply()
