"""PROXY protocol v1/v2 on every mail listener (MAILHOST_PROXY_TRUSTED), over real sockets.

The test client connects from 127.0.0.1 (the trusted "balancer") or from 127.0.0.2 (anyone
else). What the header names is checked where the server uses it: the per-IP connection cap
(one connection for 192.0.2.9 fills it, a second for 192.0.2.9 is refused, one for 192.0.2.10
is served), the `proxy_accepted` log line, and for SMTP the Received header.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import socket
import ssl
import struct

import pytest

from mailboxes.models import Message
from mailboxes.selectors import blob_read
from mailhost import runner
from protocols import proxy
from tests.support.servers import running
from tests.support.smtp import raw_transaction

pytestmark = pytest.mark.django_db(transaction=True)

BALANCER, STRANGER = "127.0.0.1", "127.0.0.2"


def v1(client: str, port: int = 40000) -> bytes:
    family, server = ("TCP6", "::1") if ":" in client else ("TCP4", "127.0.0.1")
    return f"PROXY {family} {client} {server} {port} 25\r\n".encode()


def v2(client: str, port: int = 40000) -> bytes:
    body = (
        ipaddress.IPv4Address(client).packed
        + ipaddress.IPv4Address("127.0.0.1").packed
        + struct.pack("!HH", port, 25)
    )
    return proxy.V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


HEADERS = {"v1": v1, "v2": v2}

# listener -> (implicit TLS, first bytes of a greeting, first bytes of the cap's refusal)
LISTENERS = {
    "smtp": (False, b"220 ", b"421 "),
    "submission": (False, b"220 ", b"421 "),
    "submissions": (True, b"220 ", b"421 "),
    "imap": (False, b"* OK", b"* BYE"),
    "imaps": (True, b"* OK", b"* BYE"),
    "pop3": (False, b"+OK", b"-ERR"),
    "pop3s": (True, b"+OK", b"-ERR"),
    "managesieve": (False, b'"IMPLEMENTATION"', b"BYE"),
}


@pytest.fixture
def ports(live_settings, transactional_db, make_mailbox):
    make_mailbox("alice@example.org")
    live_settings.MAILHOST_PROXY_TRUSTED = [ipaddress.ip_network("127.0.0.1/32")]
    live_settings.MAILHOST_MAX_CONNECTIONS_PER_IP = 1
    live_settings.MAILHOST_SUBMISSION_MAX_CONNECTIONS_PER_IP = 1
    with running(runner.SMTP, runner.IMAP, runner.POP3, runner.MANAGESIEVE) as found:
        yield found


def connect(port: int, *, source: str = BALANCER, header: bytes = b"", tls: bool = False):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    if header:
        sock.sendall(header)
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        sock = context.wrap_socket(sock)
    return sock


def first_line(sock) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("name", list(LISTENERS))
def test_the_header_from_the_balancer_is_the_client_for_the_per_ip_cap(
    ports, name, version, caplog
):
    tls, greeting, refusal = LISTENERS[name]
    make = HEADERS[version]
    caplog.set_level(logging.INFO, logger="protocols.proxy")
    first = connect(ports[name], header=make("192.0.2.9"), tls=tls)
    assert greeting in first_line(first)
    # The same client through the same balancer: its cap of 1 is full.
    second = connect(ports[name], header=make("192.0.2.9", 40001), tls=tls)
    assert first_line(second).startswith(refusal)
    # Another client through the same balancer (the balancer's own address has no cap here).
    third = connect(ports[name], header=make("192.0.2.10"), tls=tls)
    assert greeting in first_line(third)
    for sock in (first, second, third):
        sock.close()
    assert f"proxy_accepted listener={name} peer=127.0.0.1 client=192.0.2.9" in caplog.text


@pytest.mark.parametrize("name", list(LISTENERS))
def test_a_balancer_connection_without_a_header_is_closed(ports, name, caplog):
    tls, _greeting, _refusal = LISTENERS[name]
    sock = connect(ports[name])
    sock.sendall(b"\x16\x03\x01\x00\x05hello" if tls else b"NOOP\r\n")
    # Closed unread (the rest of what was sent): a FIN or, as often, a reset.
    try:
        assert sock.recv(1024) == b""
    except ConnectionResetError:
        pass
    sock.close()
    assert f"proxy_refused listener={name} peer=127.0.0.1" in caplog.text


@pytest.mark.parametrize("name", list(LISTENERS))
def test_a_stranger_is_served_directly_and_its_header_is_not_believed(ports, name):
    tls, greeting, _refusal = LISTENERS[name]
    if tls:
        # The header is not TLS: the server reads it as a broken handshake and hangs up.
        with pytest.raises((ssl.SSLError, OSError)):
            connect(ports[name], source=STRANGER, header=v1("192.0.2.9"), tls=True).recv(1024)
        served = connect(ports[name], source=STRANGER, tls=True)
        assert greeting in first_line(served)
        served.close()
        return
    sock = connect(ports[name], source=STRANGER)
    assert greeting in first_line(sock)
    # The stranger fills its own cap (127.0.0.2), whatever header it sends next time.
    other = connect(ports[name], source=STRANGER, header=v1("192.0.2.9"))
    assert not first_line(other).startswith(greeting)
    sock.close()
    other.close()


def test_smtp_received_header_names_the_proxied_client(ports):
    sock = connect(ports["smtp"], header=v2("192.0.2.9"))
    reader = sock.makefile("rb")

    final = raw_transaction(
        sock,
        reader,
        helo=b"client.example.net",
        mail_from=b"x@remote.example",
        rcpt=b"alice@example.org",
        body=b"Subject: via HAProxy\r\n\r\nhi",
    )
    assert final.startswith(b"250 ")
    sock.sendall(b"QUIT\r\n")
    reader.readline()  # 221
    sock.close()
    stored = blob_read(Message.objects.get().blob)
    assert b"[192.0.2.9]" in stored.split(b"\r\n", 1)[0]


def test_v1_and_v2_parsers_refuse_malformed_headers():
    assert proxy.parse_v1(b"PROXY TCP4 192.0.2.9 127.0.0.1 1 2\r\n").source == ("192.0.2.9", 1)
    assert proxy.parse_v1(b"PROXY UNKNOWN\r\n").source is None
    for bad in (
        b"PROXY TCP4 192.0.2.9 ::1 1 2\r\n",
        b"PROXY TCP6 192.0.2.9 127.0.0.1 1 2\r\n",
        b"PROXY TCP4 192.0.2.999 127.0.0.1 1 2\r\n",
        b"PROXY TCP4 192.0.2.9 127.0.0.1 1 70000\r\n",
        b"PROXY TCP4 192.0.2.9 127.0.0.1 1\r\n",
        b"PROXY UDP4 192.0.2.9 127.0.0.1 1 2\r\n",
    ):
        with pytest.raises(proxy.ProxyHeaderError):
            proxy.parse_v1(bad)
    header = v2("192.0.2.9")
    assert proxy.parse_v2(header[:16], header[16:]).source == ("192.0.2.9", 40000)
    local = proxy.V2_SIGNATURE + bytes([0x20, 0x00, 0, 0])
    assert proxy.parse_v2(local, b"").source is None
    with pytest.raises(proxy.ProxyHeaderError):
        proxy.parse_v2(proxy.V2_SIGNATURE + bytes([0x31, 0x11, 0, 12]), header[16:])
    with pytest.raises(proxy.ProxyHeaderError):
        proxy.parse_v2(header[:16], header[16:20])


PLAIN = base64.b64encode(b"\0alice@example.org\0wrong").decode()
# listener -> the exchanges of a failed login after the greeting (sent, what the reply starts
# with); the greeting ends with the line that starts with the last value.
LOGINS = {
    "submissions": (b"220 ", [(b"EHLO x", b"250 "), (f"AUTH PLAIN {PLAIN}".encode(), b"535")]),
    "imaps": (b"* OK", [(b"a LOGIN alice@example.org wrong", b"a NO")]),
    "pop3s": (b"+OK", [(b"USER alice@example.org", b"+OK"), (b"PASS wrong", b"-ERR")]),
    "managesieve": (b"OK", [(f'AUTHENTICATE "PLAIN" "{PLAIN}"'.encode(), b"NO")]),
}


@pytest.mark.parametrize("name", list(LOGINS))
def test_the_login_limiter_and_its_log_see_the_proxied_client(ports, name, caplog, settings):
    settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = True
    caplog.set_level(logging.INFO)
    tls = LISTENERS[name][0]
    last, exchanges = LOGINS[name]
    reader = connect(ports[name], header=v2("192.0.2.77"), tls=tls).makefile("rb")
    sock = reader.raw._sock

    def until(start: bytes) -> bytes:
        while True:
            line = reader.readline()
            assert line, "connection closed"
            if line.startswith(start):
                return line

    until(last)
    for sent, expected in exchanges:
        sock.sendall(sent + b"\r\n")
        until(expected)
    sock.close()
    protocol = {"submissions": "smtp", "imaps": "imap", "pop3s": "pop3"}.get(name, name)
    assert f"auth failure protocol={protocol} client=192.0.2.77" in caplog.text


def v2_ipv6(client: str, port: int = 40000) -> bytes:
    body = (
        ipaddress.IPv6Address(client).packed
        + ipaddress.IPv6Address("::1").packed
        + struct.pack("!HH", port, 143)
    )
    return proxy.V2_SIGNATURE + bytes([0x21, 0x21]) + struct.pack("!H", len(body)) + body


@pytest.mark.parametrize("header", [v1("2001:db8::9"), v2_ipv6("2001:db8::9")], ids=["v1", "v2"])
def test_an_ipv6_client_through_an_ipv4_balancer(ports, header, caplog):
    caplog.set_level(logging.INFO)
    sock = connect(ports["imaps"], header=header, tls=True)
    assert first_line(sock).startswith(b"* OK")
    sock.sendall(b"a LOGIN alice@example.org wrong\r\n")
    assert first_line(sock).startswith(b"a NO")
    sock.close()
    assert "proxy_accepted listener=imaps peer=127.0.0.1 client=2001:db8::9" in caplog.text
    assert "auth failure protocol=imap client=2001:db8::9" in caplog.text
