"""ManageSieve test helpers: a line-level client for transcripts and a running listener."""

from __future__ import annotations

import base64
import socket
import ssl

import pytest

from mailhost import runner
from protocols.managesieve import responses
from protocols.managesieve.server import sieve_extensions
from tests.support.servers import running

ADDRESS = "alice@example.org"
PASSWORD = "secret"
VALID = 'require "fileinto";\r\nif header :contains "subject" "[list]" {\r\n  fileinto "Lists";\r\n}\r\n'
INVALID = "if true {\r\n  keep;\r\n"


class Client:
    """Exact bytes in, exact lines out, over a real socket."""

    def __init__(self, port: int, *, timeout: float = 30) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def send(self, data: str | bytes) -> None:
        self.sock.sendall((data.encode() if isinstance(data, str) else data) + b"\r\n")

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed; pending {self.buffer!r}")
        self.buffer += chunk

    def line(self) -> bytes:
        """One line with its CRLF."""
        while b"\r\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line + b"\r\n"

    def read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def response(self) -> bytes:
        """Everything up to and including the OK/NO/BYE line (literals in it read whole)."""
        data = b""
        while True:
            line = self.line()
            data += line
            if line.endswith(b"}\r\n") and b"{" in line:
                size = int(line[line.rindex(b"{") + 1 : -3].rstrip(b"+"))
                data += self.read(size)
                if line.startswith((b"OK", b"NO", b"BYE")):
                    data += self.line()
                    return data
                continue
            if line.startswith((b"OK", b"NO", b"BYE")):
                return data

    def command(self, data: str | bytes) -> bytes:
        self.send(data)
        return self.response()

    def starttls(self) -> None:
        self.sock = client_context().wrap_socket(self.sock, server_hostname="mx.test.example")

    def closed(self) -> bool:
        if self.buffer:
            return False
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, ssl.SSLError):
            return True

    def close(self) -> None:
        self.sock.close()


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def plain(address: str = ADDRESS, password: str = PASSWORD, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{address}\0{password}".encode()).decode()


def capabilities(*, secure: bool, login: bool, owner: str | None = None) -> bytes:
    """The capability lines this server sends in a state (before its OK line)."""
    extensions = sieve_extensions()
    lines = [
        b'"IMPLEMENTATION" "Mailhost"',
        b'"SIEVE" "' + " ".join(extensions).encode() + b'"',
    ]
    if "enotify" in extensions:
        lines.append(b'"NOTIFY" "mailto"')
    lines.append(b'"SASL" "PLAIN LOGIN"' if login else b'"SASL" ""')
    if not secure:
        lines.append(b'"STARTTLS"')
    lines.append(b'"MAXREDIRECTS" "4"')
    if owner:
        lines.append(b'"OWNER" "' + owner.encode() + b'"')
    lines += [b'"UNAUTHENTICATE"', b'"VERSION" "1.0"']
    return b"".join(line + b"\r\n" for line in lines)


@pytest.fixture
def sieve_settings(live_settings):
    live_settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = False
    return live_settings


@pytest.fixture
def managesieve(sieve_settings, transactional_db):
    """The port of a running ManageSieve listener."""
    with running(runner.MANAGESIEVE) as ports:
        yield ports["managesieve"]


@pytest.fixture
def mailbox(make_mailbox):
    return make_mailbox(ADDRESS, PASSWORD)


@pytest.fixture
def client_for(managesieve):
    clients: list[Client] = []

    def connect(*, greeting: bool = True) -> Client:
        client = Client(managesieve)
        clients.append(client)
        if greeting:
            assert client.response() == capabilities(secure=False, login=False) + (
                responses.OK_GREETING
            )
        return client

    yield connect
    for client in clients:
        client.close()


def secure_login(client: Client, address: str = ADDRESS, password: str = PASSWORD) -> None:
    """STARTTLS, then AUTHENTICATE PLAIN with an initial response."""
    assert client.command("STARTTLS") == responses.OK_STARTTLS
    client.starttls()
    assert client.response() == capabilities(secure=True, login=True) + responses.OK_TLS_STARTED
    assert client.command(f'AUTHENTICATE "PLAIN" "{plain(address, password)}"') == (
        responses.OK_LOGGED_IN
    )
