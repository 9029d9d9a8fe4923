"""A 50 MB message over IMAP, its blob in S3 (moto's server, tests/support/s3.py) or a file:
FETCH of a part of it is one ranged GET (or a seek and one read) of those bytes, and FETCH
of all of it streams from the store in chunks: this process never holds the message whole.
Real sockets; the client reads the literal a chunk at a time and keeps only a hash. And a
streamed message whose bytes are gone is left out whole."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import socket
import tracemalloc

import pytest
from django.core.files.storage import storages

from mailboxes import services
from mailboxes.models import Message
from mailhost import runner
from protocols.imap import fetch
from protocols.imap.commands import fetchsearch
from tests.support.blobreads import FileReads
from tests.support.s3 import GetLog, s3_blobs, s3_server  # noqa: F401 - fixtures
from tests.support.servers import running

pytestmark = pytest.mark.django_db(transaction=True)

SIZE = 50_000_000
CHUNK = 256 * 1024  # MAILHOST_BLOB_STREAM_CHUNK's default
HEADER = (
    b"From: bob@remote.example\r\nTo: alice@example.org\r\nSubject: fifty megabytes\r\n"
    b"Message-ID: <big@remote.example>\r\nContent-Type: text/plain\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\n"
)


def big_message() -> bytes:
    """SIZE bytes whose every line says where it is (a wrong offset reads other digits)."""
    lines = (b"line %010d " % n + b"abcdefghij" * 6 + b"\r\n" for n in range(SIZE // 78 + 1))
    return (HEADER + b"".join(lines))[:SIZE]


class Client:
    """A raw IMAP client that hashes literals as they come, a socket read at a time."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.file = self.sock.makefile("rb")
        self.line()
        self.cmd("L", 'LOGIN "alice@example.org" "secret"')

    def line(self) -> bytes:
        line = self.file.readline()
        assert line.endswith(b"\r\n"), line
        return line[:-2]

    def append(self, raw: bytes) -> bytes:
        self.sock.sendall(b"A APPEND INBOX {%d}\r\n" % len(raw))
        assert self.line().startswith(b"+")
        self.sock.sendall(raw + b"\r\n")
        return self.until("A")[-1]

    def cmd(self, tag: str, text: str) -> list[bytes]:
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        return self.until(tag)

    def until(self, tag: str) -> list[bytes]:
        """Lines up to the tagged one; each literal replaced by (its size, its SHA-256) and,
        when it is at most 4 KB, its bytes."""
        lines = []
        while True:
            line = self.line()
            while line.endswith(b"}"):
                at = line.rindex(b"{")
                line, size = line[:at], int(line[at + 1 : -1])
                digest, head = hashlib.sha256(), b""
                left = size
                while left:
                    data = self.file.read(min(left, 1 << 20))
                    assert data
                    digest.update(data)
                    head += data if size <= 4096 else b""
                    left -= len(data)
                line += b"<%d %s>%s" % (size, digest.hexdigest().encode(), head) + self.line()
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                assert line.startswith(tag.encode() + b" OK"), line
                return lines

    def close(self) -> None:
        self.sock.close()


def literal(data: bytes) -> bytes:
    return b"<%d %s>%s" % (len(data), hashlib.sha256(data).hexdigest().encode(), data)


@pytest.fixture(params=["s3", "files"])
def store(request, live_settings, make_mailbox):
    live_settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = True
    if request.param == "s3":
        request.getfixturevalue("s3_blobs")
    make_mailbox("alice@example.org", "secret")
    return request.param


def test_fetch_of_a_50_mb_message_reads_ranges_and_streams_the_whole(store, monkeypatch):
    raw = big_message()
    whole = hashlib.sha256(raw).hexdigest().encode()
    first, late = raw[:1000], raw[49_000_000:49_001_000]
    with running(runner.IMAP) as ports:
        client = Client(ports["imap"])
        assert client.append(raw).startswith(b"A OK")
        del raw
        gc.collect()
        assert Message.objects.get().size == SIZE
        if store == "s3":
            log = GetLog(storages["blobs"])
        else:
            log = FileReads(storages["blobs"], monkeypatch)
        client.cmd("S", "SELECT INBOX")

        lines = client.cmd("F1", "FETCH 1 (BODY.PEEK[]<0.1000>)")
        assert lines[0] == b"* 1 FETCH (BODY[]<0> " + literal(first) + b")"
        lines = client.cmd("F2", "FETCH 1 (BODY.PEEK[]<49000000.1000>)")
        assert lines[0] == b"* 1 FETCH (BODY[]<49000000> " + literal(late) + b")"
        lines = client.cmd("F3", "FETCH 1 (BINARY.PEEK[]<49000000.1000>)")
        assert lines[0] == b"* 1 FETCH (BINARY[]<49000000> ~" + literal(late) + b")"
        if store == "s3":  # one GET each, of those bytes only (BINARY's first reads the header)
            assert log.ranges == [
                "bytes=0-999",
                "bytes=49000000-49000999",
                "bytes=0-65535",
                "bytes=49000000-49000999",
            ]
            assert log.sent == [1000, 1000, 65536, 1000]
            log.clear()
        else:  # a seek and a read of those bytes
            assert log.seeks == [49_000_000, 49_000_000] and max(log.reads) == 65536
            log.reads.clear()

        tracemalloc.start()
        try:
            lines = client.cmd("F4", "FETCH 1 (BODY.PEEK[])")
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert lines[0] == b"* 1 FETCH (BODY[] <%d %s>)" % (SIZE, whole)
        print(f"FETCH BODY[] of {SIZE} bytes from {store}: peak traced memory {peak} bytes")
        assert peak < SIZE // 10  # the message never whole in this process (measured: ~1 MB)
        if store == "s3":  # one GET of it all, read a chunk at a time
            assert log.ranges == [f"bytes=0-{SIZE - 1}"] and log.sent == [SIZE]
        else:
            assert max(log.reads) == CHUNK and sum(log.reads) == SIZE
        client.close()


class Collecting:
    """The session side _send_streamed writes to: what it would send, in order."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def respond(self, *responses) -> None:
        self.sent.extend(r.data for r in responses)

    async def send(self, data: bytes) -> None:
        self.sent.append(data)


def test_a_streamed_message_whose_bytes_are_gone_is_left_out_whole(blob_files):
    # Expunged through another session between its row's read and its literal: nothing of
    # its response is sent (RFC 9051 7.5.1), as for the messages read whole.
    head, tail = b"* 1 FETCH (BODY[] {5}\r\n", b")\r\n"
    session = Collecting()
    pieces = [head, fetch.Span(0, 5), tail]
    asyncio.run(fetchsearch._send_streamed(session, "ab/cd/gone", pieces))
    assert session.sent == []
    name = services.blob_write(b"hello world")
    asyncio.run(fetchsearch._send_streamed(session, name, [head, fetch.Span(6, 5), tail]))
    assert session.sent == [head, b"world", tail]
    with pytest.raises(ConnectionError):  # shorter than its size: the connection ends
        asyncio.run(fetchsearch._send_streamed(session, name, [head, fetch.Span(8, 5), tail]))
