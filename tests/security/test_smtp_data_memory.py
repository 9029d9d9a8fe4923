"""SMTP DATA and BDAT do not hold messages in memory or sessions open without limit (issue 14).

Message data beyond MAILHOST_SMTP_SPOOL_THRESHOLD waits in a private temporary file in
MAILHOST_DATA_DIR/tmp, removed as soon as the transaction ends; MAILHOST_SMTP_DATA_TOTAL_TIMEOUT
bounds a whole DATA however steadily its bytes trickle in.
"""

from __future__ import annotations

import os
import socket
import stat
import threading
import time

import pytest

from mailboxes.models import Message
from mailhost import runner
from protocols.smtp import replies
from tests.support.servers import running
from tests.support.smtp import Transcript

pytestmark = pytest.mark.django_db(transaction=True)

CONNECTIONS = 10
MEGABYTE = 1024 * 1024
SENT_MB = 20  # per connection, never finished
RSS_BOUND_MB = 60  # the growth allowed for all of them together (in memory: 200 MB)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def spool(live_settings, tmp_path):
    live_settings.DATA_DIR = tmp_path
    return tmp_path / "tmp"


@pytest.fixture
def mta_port(live_settings, spool, transactional_db, hosted):
    with running(runner.SMTP) as ports:
        yield ports["smtp"]


def open_data(port: int) -> Transcript:
    client = Transcript(port)
    client.ehlo()
    client.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    client.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
    client.command("DATA", replies.S354_START_DATA)
    return client


def spool_files(spool) -> list:
    return sorted(spool.glob("smtp-data-*")) if spool.exists() else []


def wait_for(predicate, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_unfinished_data_on_ten_connections_keeps_rss_bounded(mta_port, spool):
    """10 connections each send 20 MB of DATA without the final dot. The server runs in this
    process (a thread); the clients send one shared 1 MB block, so the growth is the server's."""
    block = (b"x" * 1022 + b"\r\n") * 1024
    clients = [open_data(mta_port) for _ in range(CONNECTIONS)]
    before = rss_mb()

    def send(client: Transcript) -> None:
        client.send(b"Subject: big\r\n\r\n")
        for _ in range(SENT_MB):
            client.send(block)

    threads = [threading.Thread(target=send, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    # The server has read all but what the socket buffers hold: let it catch up.
    wait_for(
        lambda: (
            sum(p.stat().st_size for p in spool_files(spool))
            > CONNECTIONS * (SENT_MB - 4) * MEGABYTE
        ),
        timeout=15,
    )
    time.sleep(0.5)
    grown = rss_mb() - before
    assert grown < RSS_BOUND_MB, f"RSS grew by {grown:.0f} MB"
    assert len(spool_files(spool)) == CONNECTIONS
    for path in spool_files(spool):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    for client in clients:
        client.close()
    # Aborted: every file goes as its connection does.
    assert wait_for(lambda: spool_files(spool) == [], timeout=10), spool_files(spool)


@pytest.mark.parametrize("verb", ["DATA", "BDAT"])
def test_a_trickle_is_cut_after_the_total_data_timeout(
    live_settings, spool, transactional_db, hosted, verb
):
    live_settings.MAILHOST_SMTP_DATA_TIMEOUT = 2  # per block: each byte comes well within it
    live_settings.MAILHOST_SMTP_DATA_TOTAL_TIMEOUT = 3
    with running(runner.SMTP) as ports:
        if verb == "DATA":
            client = open_data(ports["smtp"])
        else:
            client = Transcript(ports["smtp"])
            client.ehlo()
            client.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
            client.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
            client.send(b"BDAT 100000 LAST\r\n")
        started = time.monotonic()
        cut = None
        try:
            while time.monotonic() - started < 8:
                client.send(b"x")
                time.sleep(0.4)
        except OSError:
            cut = time.monotonic() - started
        reply = client.line()
        assert reply == str(replies.S421_DATA_TOO_SLOW.format("mx.test.example"))
        assert reply.startswith("421 4.4.2 ")
        assert client.closed()
        elapsed = time.monotonic() - started
        assert (cut or elapsed) < 6, f"the session lived {cut or elapsed:.1f} s"
        client.close()
        assert not Message.objects.exists()


def test_aborted_transactions_free_their_temp_file_at_once(live_settings, mta_port, spool):
    live_settings.MAILHOST_SMTP_SPOOL_THRESHOLD = 1024
    # DATA, then the client goes away mid-message.
    client = open_data(mta_port)
    client.send(b"Subject: x\r\n\r\n" + b"y" * 100 + b"\r\n" * 50_000)
    assert wait_for(lambda: len(spool_files(spool)) == 1)
    (path,) = spool_files(spool)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    client.sock.shutdown(socket.SHUT_RDWR)
    client.close()
    assert wait_for(lambda: not path.exists(), timeout=2)

    # BDAT chunks, then RSET: the transaction ends and its file with it.
    client = Transcript(mta_port)
    client.ehlo()
    client.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    client.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
    chunk = b"z" * 998 + b"\r\n"
    client.send(b"BDAT %d\r\n" % (len(chunk) * 10) + chunk * 10)
    client.expect(replies.S250_BDAT_CHUNK.format(len(chunk) * 10))
    assert len(spool_files(spool)) == 1
    client.command("RSET", replies.S250_RESET)
    assert spool_files(spool) == []

    # Over the size limit: refused, and nothing is kept while the rest is read and dropped.
    live_settings.MAILHOST_MAX_MESSAGE_SIZE = 20_000
    with running(runner.SMTP) as ports:
        small = open_data(ports["smtp"])
        small.send(b"Subject: x\r\n\r\n" + chunk * 40 + b".\r\n")
        small.expect(replies.S552_MESSAGE_TOO_BIG)
        assert spool_files(spool) == []
        small.close()

    # A message that is accepted leaves no file behind either, and is stored whole.
    client.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    client.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
    client.command("DATA", replies.S354_START_DATA)
    body = b"Subject: x\r\n\r\n" + b".dot\r\n" + chunk * 30
    client.send(body.replace(b"\r\n.", b"\r\n..") + b".\r\n")
    assert client.line().startswith("250 2.0.0 OK queued as ")
    assert spool_files(spool) == []
    client.close()
    from mailboxes.selectors import blob_read

    assert blob_read(Message.objects.get().blob).endswith(body)


def test_files_a_killed_process_left_are_swept_at_start(live_settings, spool, transactional_db):
    """No transaction lives longer than MAILHOST_SMTP_DATA_TOTAL_TIMEOUT, so an older file is
    a dead process's; a recent one may be another live process's and stays."""
    spool.mkdir(mode=0o700)
    stale, recent = spool / "smtp-data-stale", spool / "smtp-data-recent"
    for path in (stale, recent):
        path.write_bytes(b"x")
    old = time.time() - live_settings.MAILHOST_SMTP_DATA_TOTAL_TIMEOUT - 7200
    os.utime(stale, (old, old))
    with running(runner.SMTP):
        pass
    assert spool_files(spool) == [recent]


@pytest.mark.parametrize("piece", [b"a", b"a\r\n", b"abcdefg\r\n"])
def test_a_message_sent_in_small_pieces_holds_no_more_than_its_octets(settings, piece):
    """Pieces of a line or an octet each (a client sending them so, a BDAT chunk each) are
    held in memory as their octets up to the threshold, not each as an object of its own:
    a list of bytes pieces held 1.4 to 10 MB for 256 KB of such pieces (each object's own
    33 octets and its slot)."""
    import tracemalloc

    from protocols.smtp.databuffer import IncomingMessage

    threshold = settings.MAILHOST_SMTP_SPOOL_THRESHOLD
    incoming = IncomingMessage(dot_stuffed=False, max_size=4 * threshold, deadline=time.time())
    tracemalloc.start()
    try:
        for _ in range(threshold // len(piece)):
            incoming.feed(bytes(bytearray(piece)))  # a piece of its own, as the parser's are
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert incoming.buffer.path is None  # all in memory
    assert held < 1.25 * threshold
    incoming.discard()
