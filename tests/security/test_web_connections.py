"""Connection floods and half requests on the web port under runmail (issue 14).

Before: 100 connections from one address that each sent half a request head filled waitress's
default connection limit (100) and the web app answered no one for two minutes. Now the web
port caps connections per client address, cuts a request head that is not complete within
MAILHOST_WEB_REQUEST_TIMEOUT, and a slow client never holds a worker thread.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import time

import pytest
from django.db import connections

from mailhost import runner
from tests.support.servers import running

ATTACKER = "127.0.0.1"
VISITOR = "127.0.0.2"
REQUEST_TIMEOUT = 5
HALF_REQUEST = b"GET /login/ HTTP/1.1\r\nHost: mail.example.org\r\nUser-Agent: slow"


@pytest.fixture
def web(live_settings, monkeypatch):
    live_settings.MAILHOST_WEB_REQUEST_TIMEOUT = REQUEST_TIMEOUT
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    with running(runner.WEB) as ports:
        yield ports["web"]


def half_requests(port: int, count: int, source: str) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
        sock.sendall(HALF_REQUEST)
        sockets.append(sock)
    return sockets


def get(port: int, source: str, path: str = "/login/") -> tuple[int, float]:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status, time.monotonic() - started


def closed_within(sock: socket.socket, seconds: float) -> bytes | None:
    """What the server sent before closing, or None if it is still open after `seconds`."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return received


@pytest.mark.django_db(transaction=True)
def test_half_requests_from_one_address_do_not_take_the_web_app_down(web):
    assert get(web, VISITOR)[0] == 200  # the page's first rendering is not what is measured
    held = half_requests(web, 120, ATTACKER)
    try:
        time.sleep(0.3)  # let the server take them all in
        status, elapsed = get(web, VISITOR)
        print(f"visitor answered in {elapsed * 1000:.1f} ms beside 120 half requests")
        assert status == 200
        # Blocked behind the half requests, the visitor would wait until they are cut (the
        # request timeout); half of it leaves room for a loaded machine.
        assert elapsed < REQUEST_TIMEOUT / 2, f"another address waited {elapsed:.2f} s"
        # Beyond the per-address cap the attacker's connections got 503 and were closed.
        refused = [s for s in held if closed_within(s, 0.01) is not None]
        assert len(refused) == 120 - 50
        # And a half request is cut once the request timeout is up.
        started = time.monotonic()
        open_ones = [s for s in held if s not in refused]
        assert closed_within(open_ones[-1], REQUEST_TIMEOUT + 3) is not None
        print(f"half request cut {time.monotonic() - started:.2f} s after the visitor's answer")
        assert time.monotonic() - started < REQUEST_TIMEOUT + 2
    finally:
        for sock in held:
            sock.close()


@pytest.mark.django_db(transaction=True)
def test_connections_beyond_the_cap_get_503(web, live_settings):
    live_settings.MAILHOST_WEB_MAX_CONNECTIONS_PER_IP = 3  # read at each accept
    held = half_requests(web, 60, ATTACKER)
    try:
        answers = [closed_within(s, 0.5) for s in held]
        refused = [a for a in answers if a is not None]
        assert len(refused) == 60 - 3
        assert all(a.startswith(b"HTTP/1.1 503 ") for a in refused), refused[:3]
    finally:
        for sock in held:
            sock.close()


@pytest.mark.django_db(transaction=True)
def test_trusted_proxies_are_not_capped(live_settings, monkeypatch):
    live_settings.MAILHOST_WEB_MAX_CONNECTIONS_PER_IP = 2
    live_settings.MAILHOST_TRUSTED_PROXIES = (ipaddress.ip_network(ATTACKER),)
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    with running(runner.WEB) as ports:
        held = half_requests(ports["web"], 10, ATTACKER)
        try:
            assert all(closed_within(s, 0.3) is None for s in held)  # all still open
        finally:
            for sock in held:
                sock.close()


@pytest.mark.django_db(transaction=True)
def test_clients_that_do_not_read_their_response_hold_no_worker(
    live_settings, monkeypatch, make_mailbox
):
    """A slow reader: a signed-in user fetches a large message on more connections than there
    are worker threads and never reads. Before, each worker stopped once 16 MB (waitress's
    outbuf_high_watermark) waited unsent, and the web app answered no one."""
    from django.test import Client

    from mailboxes import selectors, services

    live_settings.MAILHOST_WEB_THREADS = 2
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    alice = make_mailbox("alice@example.org", password="a-long-secret-1")
    inbox = selectors.folder_get(alice, "INBOX")
    line = b"x" * 998 + b"\r\n"
    raw = b"From: bob@example.org\r\nSubject: big\r\n\r\n" + line * (24 * 1024 * 1024 // 1000)
    message = services.message_append(folder=inbox, raw=raw, flags=[])
    client = Client()
    assert (
        client.post(
            "/login/", {"address": "alice@example.org", "password": "a-long-secret-1"}
        ).status_code
        == 302
    )
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    with running(runner.WEB) as ports:
        readers = []
        try:
            for _ in range(3):  # more than the 2 worker threads
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.bind((ATTACKER, 0))
                sock.connect(("127.0.0.1", ports["web"]))
                request = (
                    f"GET /m/{inbox.pk}/{message.uid}/raw/ HTTP/1.1\r\nHost: x\r\n"
                    f"Cookie: {cookie}\r\n\r\n".encode()
                )
                sock.sendall(request * 2)  # pipelined: the second waits behind the first
                readers.append(sock)
            time.sleep(2)  # the workers build and hand over the 24 MB responses
            status, elapsed = get(ports["web"], VISITOR)
            print(f"visitor answered in {elapsed * 1000:.1f} ms beside 3 non-reading clients")
            assert status == 200
            assert elapsed < 1.0, f"another client waited {elapsed:.2f} s"
        finally:
            for sock in readers:
                sock.close()


def test_the_cap_counts_an_ipv6_client_by_its_64():
    from mailhost.web import address_key

    assert address_key("2001:db8:1:2::7") == address_key("2001:db8:1:2:ffff::1")
    assert address_key("2001:db8:1:2::7") != address_key("2001:db8:1:3::7")
    assert address_key("::ffff:192.0.2.1") == address_key("192.0.2.1") == "192.0.2.1"


@pytest.mark.django_db(transaction=True)
def test_the_total_cap_holds_new_connections_until_one_ends(live_settings, monkeypatch):
    live_settings.MAILHOST_WEB_MAX_CONNECTIONS = 5
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    with running(runner.WEB) as ports:
        held = [half_requests(ports["web"], 1, f"127.0.0.{10 + i}")[0] for i in range(5)]
        try:
            time.sleep(0.3)
            waiting = socket.create_connection(
                ("127.0.0.1", ports["web"]), timeout=5, source_address=(VISITOR, 0)
            )
            waiting.sendall(b"GET /login/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            waiting.settimeout(1)
            with pytest.raises(TimeoutError):  # the sixth is not taken in
                waiting.recv(100)
            held.pop().close()
            waiting.settimeout(5)
            assert waiting.recv(100).startswith(b"HTTP/1.1 200 ")
            waiting.close()
        finally:
            for sock in held:
                sock.close()
