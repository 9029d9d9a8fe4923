"""A 50 MB message over POP3, its blob in S3 (moto's server) or a file: the size LIST gives
at login, RETR and TOP are read from the store a chunk at a time (one GET or one open file),
so this process never holds the message whole; TOP stops reading after its lines."""

from __future__ import annotations

import gc
import hashlib
import socket
import tracemalloc

import pytest
from django.core.files.storage import storages

from mailboxes import s3storage, selectors
from mailboxes.models import Message
from protocols.pop3.maildrop import byte_stuff, multiline_body, top_of, wire_form
from tests.protocols.pop3.conftest import ADDRESS, PASSWORD, deliver
from tests.support.blobreads import FileReads
from tests.support.s3 import GetLog, s3_blobs, s3_server  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db(transaction=True)

SIZE = 50_000_000
CHUNK = 256 * 1024


def big_message() -> bytes:
    """Bare LF line ends (sent as CRLF) and lines that start with a dot (sent doubled)."""
    lines = (
        (b"." if n % 7 == 0 else b"") + b"line %010d " % n + b"0123456789" * 6 + b"\n"
        for n in range(SIZE // 70)
    )
    return b"From: bob@remote.example\nSubject: fifty megabytes\n\n" + b"".join(lines)


class Reader:
    """A POP3 client that hashes a multi-line reply as it comes, a socket read at a time."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.recv_line()

    def recv_line(self) -> bytes:
        data = b""
        while not data.endswith(b"\r\n"):
            byte = self.sock.recv(1)
            assert byte, data
            data += byte
        return data

    def command(self, line: str) -> bytes:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.recv_line()

    def multiline(self, line: str) -> tuple[int, str]:
        """(octets, SHA-256) of the whole reply, its first line and terminator included."""
        self.sock.sendall(line.encode() + b"\r\n")
        digest, size, tail = hashlib.sha256(), 0, b""
        while not tail.endswith(b"\r\n.\r\n"):
            data = self.sock.recv(1 << 20)
            assert data
            digest.update(data)
            size += len(data)
            tail = (tail + data)[-5:]
        return size, digest.hexdigest()


def expected(data: bytes) -> tuple[int, str]:
    return len(data), hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["s3", "files"])
def store(request, pop3_settings, mailbox):
    if request.param == "s3":
        request.getfixturevalue("s3_blobs")
    return request.param


def test_retr_top_and_list_of_a_50_mb_message_stream_from_the_store(store, pop3, monkeypatch):
    deliver(big_message())
    gc.collect()
    blob = Message.objects.select_related("blob").get().blob
    wire = wire_form(selectors.blob_read(blob))
    retr = expected(b"+OK %d octets\r\n" % len(wire) + multiline_body(wire))
    top = expected(b"+OK Top of message follows\r\n" + byte_stuff(top_of(wire, 3)) + b".\r\n")
    list_line = b"+OK 1 %d\r\n" % len(wire)
    del wire
    gc.collect()
    if store == "s3":
        log = GetLog(storages["blobs"])
    else:
        log = FileReads(storages["blobs"], monkeypatch)

    client = Reader(pop3["pop3"])
    client.command(f"USER {ADDRESS}")
    assert client.command(f"PASS {PASSWORD}").startswith(b"+OK")
    assert client.command("LIST 1") == list_line  # counted a chunk at a time at login
    assert client.multiline("RETR 1") == retr
    if store == "s3":
        assert log.ranges == [None, None] and log.sent == [blob.size, blob.size]
        log.clear()
    else:
        assert max(log.reads) == CHUNK and sum(log.reads) == 2 * blob.size
        log.reads.clear()
    assert client.multiline("TOP 1 3") == top
    if store == "s3":
        assert log.ranges == [None]  # one GET, closed after its first chunk
    else:
        assert log.reads == [CHUNK]  # the header and three lines: one chunk read
    assert client.command("QUIT").startswith(b"+OK")

    # Again, measured: what this process holds during RETR (files: tracemalloc's peak; S3:
    # the largest body read, as each new worker thread's S3 client costs botocore's models,
    # about 12 MB, whatever it reads; the chunks go through the same code as the files').
    client = Reader(pop3["pop3"])
    client.command(f"USER {ADDRESS}")
    assert client.command(f"PASS {PASSWORD}").startswith(b"+OK")
    if store == "s3":
        body_reads = []
        take = s3storage._BodyChunks.__next__

        def counted(chunks):
            chunk = take(chunks)
            body_reads.append(len(chunk))
            return chunk

        monkeypatch.setattr(s3storage._BodyChunks, "__next__", counted)
        assert client.multiline("RETR 1") == retr
        assert max(body_reads) == CHUNK and sum(body_reads) == blob.size
    else:
        tracemalloc.start()
        try:
            assert client.multiline("RETR 1") == retr
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        print(f"POP3 RETR of {blob.size} bytes from files: peak traced memory {peak}")
        assert peak < SIZE // 10
    assert client.command("QUIT").startswith(b"+OK")
