"""How fast the hot paths are: opening a large maildrop (sizes computed once, then cached),
and RETR of a large message over TLS. The tests assert behaviour (sizes cached, exact
octets); the timings are only printed (-s): speed targets live in bench/."""

from __future__ import annotations

import poplib
import time

import pytest

from mailboxes.models import Message
from tests.protocols.pop3.conftest import (
    ADDRESS,
    PASSWORD,
    Client,
    client_context,
    deliver,
    login,
)

pytestmark = pytest.mark.django_db(transaction=True)

COUNT = 1000


def pop3s_login(port: int) -> tuple[poplib.POP3_SSL, float]:
    started = time.perf_counter()
    client = poplib.POP3_SSL("127.0.0.1", port, context=client_context(), timeout=60)
    client.user(ADDRESS)
    client.pass_(PASSWORD)
    return client, time.perf_counter() - started


def test_large_maildrop_login_list_uidl(pop3, mailbox):
    for n in range(COUNT):
        deliver(b"Subject: m%d\n\n%s\n" % (n, b"body line\n" * 50))
    client, first = pop3s_login(pop3["pop3s"])
    client.quit()
    assert Message.objects.filter(mime_cache__has_key="pop3").count() == COUNT
    client, cached = pop3s_login(pop3["pop3s"])
    started = time.perf_counter()
    assert client.stat()[0] == COUNT
    assert len(client.list()[1]) == COUNT
    assert len(client.uidl()[1]) == COUNT
    listing = time.perf_counter() - started
    client.quit()
    print(
        f"\n{COUNT} messages: first login {first * 1000:.0f} ms (sizes computed), "
        f"next login {cached * 1000:.0f} ms (cached), STAT+LIST+UIDL {listing * 1000:.0f} ms"
    )


def test_retr_throughput_over_tls(pop3, mailbox):
    size = 20 * 1024 * 1024
    line = b"." + b"x" * 77 + b"\n"  # every line byte-stuffed, stored with bare LF
    deliver(b"Subject: big\n\n" + line * (size // len(line)))
    client = Client(pop3["pop3s"], implicit_tls=True, timeout=60)
    client.line()
    login(client)
    started = time.perf_counter()
    client.send("RETR 1")
    octets = int(client.line().split()[1])
    data = bytearray(client.buffer)
    while not data.endswith(b"\r\n.\r\n"):
        data += client.sock.recv(1 << 20)
    elapsed = time.perf_counter() - started
    client.close()
    stuffed = data.count(b"\r\n..")
    assert stuffed == size // len(line)
    # The octet count leaves the stuffing and the terminating line out (RFC 1939 11).
    assert len(data) == octets + stuffed + len(b".\r\n")
    print(f"\nRETR of {octets / 1e6:.1f} MB over TLS: {octets / 1e6 / elapsed:.0f} MB/s")
