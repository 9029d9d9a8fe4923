"""A phone that loses signal leaves a half-open POP3 session: no FIN, no RST, the server still
holds it (until the 600 s autologout) and with it the maildrop's lease. The phone's next login
takes the maildrop over (MAILHOST_POP3_TAKEOVER, most recent login wins), the old session ends
with its DELE marks discarded, and a session that lost the maildrop never deletes anything.

poplib over real TLS, on 995 (implicit TLS) and 110 + STLS, on whichever lease backend the run
uses (MaildropLease rows, or Redis keys with REDIS_URL).
"""

from __future__ import annotations

import logging
import poplib
import ssl
import time

import pytest

from mailboxes.selectors import folder_get
from protocols.pop3 import lease, server
from protocols.pop3 import responses as R
from tests.protocols.pop3.conftest import ADDRESS, PASSWORD, deliver, poplib_connect

pytestmark = pytest.mark.django_db(transaction=True)

ONE = b"Subject: one\r\n\r\nfirst\r\n"
TWO = b"Subject: two\r\n\r\nsecond\r\n"
LOGIN_WITHIN = 1.0  # seconds from PASS to +OK; the lease itself lasts minutes


def logged_in(ports: dict[str, int], port_name: str) -> poplib.POP3:
    client = poplib_connect(ports, port_name)
    client.user(ADDRESS)
    assert client.pass_(PASSWORD).startswith(b"+OK")
    return client


def rest_of(client: poplib.POP3) -> list[bytes]:
    """What the server sent a silent client, read once the server has closed it."""
    client.sock.settimeout(5)
    lines = []
    try:
        while line := client.file.readline():
            lines.append(line.rstrip(b"\r\n"))
    except TimeoutError:
        pytest.fail(f"the old session is still open; it sent {lines}")
    return lines


def inbox_count(mailbox) -> int:
    return folder_get(mailbox, "INBOX").message_count


@pytest.mark.parametrize("port_name", ["pop3s", "pop3"])
def test_new_login_takes_over_from_a_silent_session(pop3, long_lease, mailbox, port_name, caplog):
    caplog.set_level(logging.INFO, logger="protocols.pop3.server")
    deliver(ONE)
    deliver(TWO)
    phone = logged_in(pop3, port_name)
    assert phone.dele(1).startswith(b"+OK")
    # Signal lost: the socket stays open, nothing more is read or written on it.

    again = poplib_connect(pop3, port_name)
    again.user(ADDRESS)
    start = time.monotonic()
    assert again.pass_(PASSWORD) == R.ok_login(2, len(ONE) + len(TWO)).encode()
    assert time.monotonic() - start < LOGIN_WITHIN
    # The old session's DELE was discarded: message 1 is still there and retrievable.
    _, lines, _ = again.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == ONE
    assert again.quit() == R.ok_bye_update(0).encode()

    assert rest_of(phone) == [R.ERR_TAKEN_OVER.encode()]
    phone.close()
    assert inbox_count(mailbox) == 2
    assert f"pop3 takeover client=127.0.0.1 user={ADDRESS} older=ended" in caplog.messages


@pytest.mark.parametrize("port_name", ["pop3s", "pop3"])
def test_takeover_cuts_a_session_stuck_writing(pop3, long_lease, mailbox, port_name, monkeypatch):
    # Signal lost in the middle of a large RETR: the rest of the message waits for a peer that
    # reads nothing. The connection is cut, not left to finish the message first.
    monkeypatch.setattr(server, "TAKEOVER_CLOSE_GRACE", 0.5)
    big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 20_000
    deliver(big)
    deliver(ONE)
    phone = logged_in(pop3, port_name)
    assert phone.dele(2).startswith(b"+OK")
    phone._putcmd("RETR 1")
    time.sleep(0.5)  # the server fills the socket buffers and waits

    again = logged_in(pop3, port_name)
    assert again.quit() == R.ok_bye_update(0).encode()
    time.sleep(1)  # past the grace

    received = b""
    phone.sock.settimeout(5)
    try:
        while chunk := phone.sock.recv(65536):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the old session is still open after {len(received)} octets")
    except (ConnectionResetError, ssl.SSLError):
        pass  # cut: an RST
    assert len(received) < len(big)
    phone.close()
    assert inbox_count(mailbox) == 2


@pytest.mark.parametrize("port_name", ["pop3s", "pop3"])
def test_takeover_off_keeps_the_maildrop_in_use(pop3, long_lease, mailbox, port_name):
    long_lease.MAILHOST_POP3_TAKEOVER = False
    deliver(ONE)
    phone = logged_in(pop3, port_name)
    assert phone.dele(1).startswith(b"+OK")
    again = poplib_connect(pop3, port_name)
    again.user(ADDRESS)
    with pytest.raises(poplib.error_proto) as refused:
        again.pass_(PASSWORD)
    assert str(refused.value) == repr(R.ERR_IN_USE.encode())
    again.close()
    # The first session is untouched and still the maildrop's.
    assert phone.quit() == R.ok_bye_update(1).encode()
    assert inbox_count(mailbox) == 0


@pytest.mark.parametrize("port_name", ["pop3s", "pop3"])
def test_quit_after_losing_the_lease_deletes_nothing(pop3, long_lease, mailbox, port_name):
    deliver(ONE)
    deliver(TWO)
    old = logged_in(pop3, port_name)
    assert old.dele(1).startswith(b"+OK")
    assert old.dele(2).startswith(b"+OK")
    # A session on another front end takes the maildrop over: this process's registry of
    # sessions does not know its holder, and the old session's next renewal is 100 s away.
    attempt = lease.acquire(mailbox.pk, lease.new_holder(), take_over=True)
    assert attempt.outcome is lease.Outcome.TAKEN_OVER
    with pytest.raises(poplib.error_proto) as refused:
        old.quit()
    assert str(refused.value) == repr(R.ERR_TAKEN_OVER.encode())
    assert inbox_count(mailbox) == 2
