"""POP3 test helpers: a line-level client for transcripts and a running POP3 family."""

from __future__ import annotations

import poplib
import socket
import ssl

import pytest
from django.conf import settings as django_settings

from mailboxes import services
from mailhost import runner
from protocols.pop3 import responses
from tests.support.servers import running

ADDRESS = "alice@example.org"
PASSWORD = "secret"


class Client:
    """Exact lines in, exact lines out, over a real socket."""

    def __init__(self, port: int, *, implicit_tls: bool = False, timeout: float = 30) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if implicit_tls:
            sock = client_context().wrap_socket(sock, server_hostname="127.0.0.1")
        self.sock = sock
        self.buffer = b""

    def send(self, line: str | bytes) -> None:
        data = line.encode() if isinstance(line, str) else line
        self.sock.sendall(data + b"\r\n")

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_bytes_line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed; pending {self.buffer!r}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def line(self) -> str:
        return self.read_bytes_line().decode()

    def multiline(self) -> list[str]:
        """Lines of a multi-line reply after its first line, terminator removed."""
        lines = []
        while (line := self.line()) != ".":
            lines.append(line)
        return lines

    def raw_multiline(self) -> bytes:
        """The bytes of a multi-line reply body as sent (still byte-stuffed), up to '.'."""
        data = b""
        while (line := self.read_bytes_line()) != b".":
            data += line + b"\r\n"
        return data

    def command(self, line: str) -> str:
        self.send(line)
        return self.line()

    def closed(self) -> bool:
        """True when the server has closed the connection (nothing pending)."""
        if self.buffer:
            return False
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, ssl.SSLError):
            return True

    def starttls(self) -> None:
        self.sock = client_context().wrap_socket(self.sock, server_hostname="127.0.0.1")

    def close(self) -> None:
        self.sock.close()


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@pytest.fixture(autouse=True)
def _clean_redis_leases():
    if django_settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(django_settings.REDIS_URL)
        for key in client.scan_iter("mailhost:pop3:*"):
            client.delete(key)
    yield


@pytest.fixture
def pop3_settings(live_settings):
    live_settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = True
    return live_settings


@pytest.fixture
def pop3(pop3_settings, transactional_db):
    """Ports of a running POP3 family: {"pop3": n, "pop3s": m}."""
    with running(runner.POP3) as ports:
        yield ports


@pytest.fixture
def long_lease(pop3_settings):
    """A lease renewed only every 100 s, so only what a test checks can free or end it;
    logins over TLS only."""
    pop3_settings.MAILHOST_POP3_LEASE_SECONDS = 300
    pop3_settings.MAILHOST_POP3_LOGIN_DELAY = 0
    pop3_settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = False
    return pop3_settings


def poplib_connect(ports: dict[str, int], port_name: str) -> poplib.POP3:
    """poplib over TLS: implicit on "pop3s" (995), STLS on "pop3" (110)."""
    if port_name == "pop3s":
        return poplib.POP3_SSL("127.0.0.1", ports["pop3s"], context=client_context(), timeout=30)
    client = poplib.POP3("127.0.0.1", ports["pop3"], timeout=30)
    client.stls(client_context())
    return client


@pytest.fixture
def mailbox(make_mailbox):
    return make_mailbox(ADDRESS, PASSWORD)


def deliver(raw: bytes, to: str = ADDRESS) -> None:
    [result] = services.message_deliver(raw=raw, recipients=[to])
    assert result.status == "delivered", result


@pytest.fixture
def client_for(pop3):
    clients: list[Client] = []

    def connect(*, tls: bool = False, greeting: bool = True) -> Client:
        client = Client(pop3["pop3s"] if tls else pop3["pop3"], implicit_tls=tls)
        clients.append(client)
        if greeting:
            assert client.line() == responses.greeting("mx.test.example")
        return client

    yield connect
    for client in clients:
        client.close()


def login(client: Client, address: str = ADDRESS, password: str = PASSWORD) -> str:
    assert client.command(f"USER {address}") == responses.OK_USER
    return client.command(f"PASS {password}")
