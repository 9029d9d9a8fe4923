"""POP3 beside deliveries and IMAP: the session's snapshot, and UPDATE seen as EXPUNGE."""

from __future__ import annotations

import imaplib
import importlib
import poplib
import time

import pytest

from mailboxes import services
from mailboxes.selectors import folder_get
from mailhost import runner
from protocols.pop3 import responses as R
from tests.protocols.pop3.conftest import ADDRESS, PASSWORD, client_context, deliver, login
from tests.support.servers import running

pytestmark = pytest.mark.django_db(transaction=True)

ONE = b"Subject: one\r\n\r\nfirst\r\n"
TWO = b"Subject: two\r\n\r\nsecond\r\n"


def test_mail_delivered_during_a_session_shows_in_the_next(client_for, mailbox):
    deliver(ONE)
    client = client_for()
    assert login(client) == R.ok_login(1, len(ONE))
    deliver(TWO)
    assert client.command("STAT") == R.ok_stat(1, len(ONE))
    assert client.command("LIST") == R.ok_list(1, len(ONE))
    assert client.multiline() == [R.list_entry(1, len(ONE))]
    assert client.command("RETR 2") == R.ERR_NO_SUCH_MESSAGE
    assert client.command("UIDL 2") == R.ERR_NO_SUCH_MESSAGE
    assert client.command("DELE 1") == R.ok_dele(1)
    assert client.command("QUIT") == R.ok_bye_update(1)

    again = client_for()
    for _ in range(50):  # the first session's lease goes back once its socket is closed
        reply = login(again)
        if reply != R.ERR_IN_USE:
            break
        time.sleep(0.05)
    assert reply == R.ok_login(1, len(TWO))
    assert again.command("RETR 1") == R.ok_retr(len(TWO))
    assert again.raw_multiline() == TWO


def test_message_expunged_by_imap_during_the_session(client_for, mailbox):
    deliver(ONE)
    deliver(TWO)
    client = client_for()
    login(client)
    inbox = folder_get(mailbox, "INBOX")
    services.messages_store_flags(folder=inbox, uids=[1], flags=["\\Deleted"], mode="add")
    services.messages_expunge(folder=inbox)
    # The numbering stays (RFC 1939); the bytes are gone, which is said plainly.
    assert client.command("STAT") == R.ok_stat(2, len(ONE) + len(TWO))
    assert client.command("RETR 1") == R.ERR_MESSAGE_GONE
    assert client.command("RETR 2") == R.ok_retr(len(TWO))
    assert client.raw_multiline() == TWO
    assert client.command("DELE 1") == R.ok_dele(1)
    assert client.command("DELE 2") == R.ok_dele(2)
    # UPDATE removes what is still there; the message IMAP took is simply not counted.
    assert client.command("QUIT") == R.ok_bye_update(1)
    assert folder_get(mailbox, "INBOX").message_count == 0


def test_dele_quit_shows_as_expunge_in_an_imap_session(pop3_settings, mailbox):
    try:
        importlib.import_module("protocols.imap.server")
    except ImportError as exc:
        pytest.skip(f"protocols.imap.server is not importable yet ({exc})")
    for raw in (ONE, TWO, b"Subject: three\r\n\r\nthird\r\n"):
        deliver(raw)
    with running(runner.POP3, runner.IMAP) as ports:
        imap = imaplib.IMAP4_SSL("127.0.0.1", ports["imaps"], ssl_context=client_context())
        try:
            imap.login(ADDRESS, PASSWORD)
            status, data = imap.select("INBOX")
            assert status == "OK" and data == [b"3"]

            pop = poplib.POP3_SSL("127.0.0.1", ports["pop3s"], context=client_context(), timeout=30)
            pop.user(ADDRESS)
            pop.pass_(PASSWORD)
            pop.dele(2)
            assert pop.quit() == R.ok_bye_update(1).encode()
            pop.close()

            expunged: list[bytes] = []
            deadline = time.monotonic() + 10
            while not expunged and time.monotonic() < deadline:
                imap.noop()
                expunged = [e for e in (imap.response("EXPUNGE")[1] or []) if e]
                if not expunged:
                    time.sleep(0.1)
            # RFC 9051 7.5.1: message sequence number 2 went away.
            assert expunged == [b"2"]
            status, data = imap.uid("SEARCH", "ALL")
            assert status == "OK" and data[0].split() == [b"1", b"3"]
            imap.logout()
        finally:
            try:
                imap.shutdown()
            except OSError:
                pass
