"""A client that vanishes without QUIT (a phone losing signal) must not keep its maildrop locked.

poplib over real TLS, on 995 (implicit TLS) and 110 + STLS: log in, drop the socket (a plain
close without QUIT, or an RST through SO_LINGER 0), and a new login succeeds within seconds,
on whichever lease backend the run uses (MaildropLease rows, or Redis keys with REDIS_URL).
"""

from __future__ import annotations

import poplib
import socket
import struct
import time

import pytest

from protocols.pop3 import responses as R
from tests.protocols.pop3.conftest import ADDRESS, PASSWORD, deliver, poplib_connect

pytestmark = pytest.mark.django_db(transaction=True)

# Well under the lease's own expiry (MAILHOST_POP3_LEASE_SECONDS, minutes): only a release at
# the end of the connection frees the maildrop this soon.
RELOGIN_WITHIN = 2.0


def drop(client: poplib.POP3, how: str) -> None:
    """End the connection without QUIT: the way a lost network does (no TLS close_notify,
    or an RST), with an undecryptable record, or closing TLS properly but not POP3."""
    sock = client.sock
    client.file.close()  # poplib's reader holds the socket open otherwise
    if how == "tls-close":
        sock.unwrap().close()  # close_notify, then FIN
        return
    if how == "rst":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # Close the TCP socket under the TLS layer, so no close_notify is sent.
    raw = socket.socket(fileno=sock.detach())
    if how == "tls-error":
        raw.sendall(b"\x17\x03\x03\x00\x05junk!")  # a record no TLS session can decrypt
    raw.close()


def relogin_seconds(ports: dict[str, int], port_name: str) -> float:
    """Seconds until a fresh session logs in; fails when the maildrop stays locked."""
    start = time.monotonic()
    while True:
        client = poplib_connect(ports, port_name)
        try:
            client.user(ADDRESS)
            reply = client.pass_(PASSWORD)
            assert reply.startswith(b"+OK")
            client.quit()
            return time.monotonic() - start
        except poplib.error_proto as exc:
            client.close()
            assert str(exc).startswith(repr(R.ERR_IN_USE.encode())), exc
            if time.monotonic() - start > RELOGIN_WITHIN:
                pytest.fail(f"maildrop still locked {RELOGIN_WITHIN}s after the drop: {exc}")
            time.sleep(0.1)


@pytest.mark.parametrize("how", ["close", "rst", "tls-error", "tls-close"])
@pytest.mark.parametrize("port_name", ["pop3s", "pop3"])
def test_dropped_connection_releases_the_maildrop(pop3, long_lease, mailbox, port_name, how):
    deliver(b"Subject: hi\r\n\r\nbody\r\n")
    client = poplib_connect(pop3, port_name)
    client.user(ADDRESS)
    assert client.pass_(PASSWORD).startswith(b"+OK")
    assert client.stat() == (1, 21)
    drop(client, how)
    assert relogin_seconds(pop3, port_name) < RELOGIN_WITHIN


@pytest.mark.parametrize("port_name", ["pop3s", "pop3"])
def test_dropped_mid_retrieval_releases_the_maildrop(pop3, long_lease, mailbox, port_name):
    # Dropped while the server is still writing a large RETR: the write side fails, not the read.
    deliver(b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 20_000)
    client = poplib_connect(pop3, port_name)
    client.user(ADDRESS)
    assert client.pass_(PASSWORD).startswith(b"+OK")
    client._putcmd("RETR 1")
    assert client._getline()[0].startswith(b"+OK")
    drop(client, "rst")
    assert relogin_seconds(pop3, port_name) < RELOGIN_WITHIN


@pytest.mark.parametrize("port_name", ["pop3s", "pop3"])
def test_idle_timeout_releases_the_maildrop(pop3, long_lease, mailbox, port_name):
    long_lease.MAILHOST_POP3_IDLE_TIMEOUT = 1
    client = poplib_connect(pop3, port_name)
    client.user(ADDRESS)
    assert client.pass_(PASSWORD).startswith(b"+OK")
    time.sleep(1.5)  # silent past the autologout timer (RFC 1939 3)
    assert relogin_seconds(pop3, port_name) < RELOGIN_WITHIN
    client.close()
