"""Transcripts: a command's untagged responses go out with its tagged reply in one write
(over TLS one record and one send), and what must not wait does not: IDLE's updates, a BYE
before the connection closes."""

from __future__ import annotations

import asyncio
import time

import pytest

from mailboxes import selectors, services
from protocols.imap import responses as r

pytestmark = pytest.mark.django_db(transaction=True)


def message(n: int) -> bytes:
    return b"From: bob@example.net\r\nSubject: note %d\r\n\r\nBody %d.\r\n" % (n, n)


@pytest.fixture
def three(imap):
    for n in (1, 2, 3):
        services.message_deliver(raw=message(n), recipients=["alice@example.org"])
    return selectors.folder_get(imap["mailbox"], "INBOX")


@pytest.fixture
def writes(monkeypatch):
    """What the server's sessions write, a bytes value per write."""
    written: list[bytes] = []
    real = asyncio.StreamWriter.write

    def write(self, data) -> None:  # noqa: ANN001
        written.append(bytes(data))
        real(self, data)

    monkeypatch.setattr(asyncio.StreamWriter, "write", write)
    return written


def wire(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\r\n" for line in lines)


@pytest.mark.parametrize("tls", [False, True])
def test_a_commands_responses_and_reply_are_one_write(client, three, writes, tls):
    c, other = client(tls=tls), client()
    c.cmd("a0", "SELECT INBOX")
    other.cmd("b0", "SELECT INBOX")
    other.cmd("b1", "STORE 2 +FLAGS (\\Flagged)")
    time.sleep(0.3)  # the change event reaches the session
    writes.clear()
    lines = c.cmd("a1", "FETCH 1:3 (FLAGS)")
    # the three rows, the update of the other session's change, the tagged reply
    assert len(lines) == 5 and lines[-1] == b"a1 OK Completed"
    assert lines[3] == b"* 2 FETCH (FLAGS (\\Flagged \\Recent))"
    assert writes == [wire(lines)]


def test_idle_says_what_changed_at_once(client, three, writes):
    c, other = client(), client()
    c.cmd("a0", "SELECT INBOX")
    other.cmd("b0", "SELECT INBOX")
    c.send("a1 IDLE\r\n")
    assert c.line() == b"+ idling"
    other.cmd("b1", "STORE 1 +FLAGS (\\Deleted)")
    assert c.line() == b"* 1 FETCH (FLAGS (\\Deleted \\Recent))"  # before DONE
    c.send("DONE\r\n")
    assert c.until("a1") == [b"a1 OK IDLE terminated"]


def test_a_bye_held_with_a_command_reaches_the_client(client, imap):
    c, other = client(), client()
    c.cmd("a0", "CREATE Work")
    c.cmd("a1", "SELECT Work")
    other.cmd("b0", "DELETE Work")
    time.sleep(0.3)
    c.send("a2 NOOP\r\n")
    assert c.line() == r.BYE_MAILBOX_DELETED.untagged().rstrip(b"\r\n")
    with pytest.raises(ConnectionError):
        c.line()
