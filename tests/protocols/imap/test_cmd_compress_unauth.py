"""COMPRESS=DEFLATE (RFC 4978) with a real client, imaplib over TLS with a deflate layer, and
UNAUTHENTICATE (RFC 8437) as a transcript."""

from __future__ import annotations

import imaplib
import ssl
import zlib

import pytest

from mailboxes import services
from protocols.imap import responses as r
from protocols.imap.commands.auth import (
    BAD_COMPRESS_ALGORITHM,
    NO_COMPRESSION_ACTIVE,
    OK_DEFLATE_ACTIVE,
)

pytestmark = pytest.mark.django_db(transaction=True)

BIG = b"From: bob@example.net\r\nSubject: big\r\n\r\n" + b"all work and no play\r\n" * 20000


def ok(tag: str, reply: r.Reply = r.OK_COMPLETED) -> bytes:
    return reply.tagged(tag).rstrip(b"\r\n")


class DeflateIMAP4_SSL(imaplib.IMAP4_SSL):  # noqa: N801 - imaplib's naming
    """imaplib's client with RFC 4978 deflate under its reads and writes once COMPRESS is OK;
    counts the octets that crossed the wire."""

    deflate = inflate = None
    wire_in = 0

    def compress(self):
        typ, data = self._simple_command("COMPRESS", "DEFLATE")
        if typ == "OK":
            self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
            self.inflate = zlib.decompressobj(-15)
            self.plain = b""
        return typ, data

    def send(self, data):
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        super().send(data)

    def _fill(self) -> None:
        chunk = self.file.read1(65536)
        if not chunk:
            raise imaplib.IMAP4.abort("connection closed")
        self.wire_in += len(chunk)
        self.plain += self.inflate.decompress(chunk)

    def read(self, size):
        if self.inflate is None:
            return super().read(size)
        while len(self.plain) < size:
            self._fill()
        data, self.plain = self.plain[:size], self.plain[size:]
        return data

    def readline(self):
        if self.inflate is None:
            return super().readline()
        while b"\n" not in self.plain:
            self._fill()
        end = self.plain.index(b"\n") + 1
        line, self.plain = self.plain[:end], self.plain[end:]
        return line


def test_compress_deflate_with_imaplib_over_tls(imap, monkeypatch):
    monkeypatch.setitem(imaplib.Commands, "COMPRESS", ("AUTH", "SELECTED"))
    services.message_deliver(raw=BIG, recipients=["alice@example.org"])
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    client = DeflateIMAP4_SSL("127.0.0.1", imap["ports"]["imaps"], ssl_context=context)
    client.login("alice@example.org", "secret")
    assert b"COMPRESS=DEFLATE" in client.capability()[1][0].split()
    assert client.compress() == ("OK", [OK_DEFLATE_ACTIVE.text.encode()])
    typ, data = client.select("INBOX")
    assert (typ, data) == ("OK", [b"1"])
    before = client.wire_in
    typ, data = client.fetch("1", "(BODY.PEEK[])")
    assert typ == "OK" and data[0][1] == BIG
    assert client.wire_in - before < len(BIG) // 20  # it was deflated on the wire
    typ, data = client._simple_command("COMPRESS", "DEFLATE")
    assert (typ, data) == ("NO", [b"[COMPRESSIONACTIVE] " + NO_COMPRESSION_ACTIVE.text.encode()])
    typ, caps = client.capability()
    assert b"COMPRESS=DEFLATE" not in caps[0].split()
    assert client.logout()[0] == "BYE"


def test_compress_refusals(client):
    c = client()
    assert c.cmd("z1", "COMPRESS LZ4") == [ok("z1", BAD_COMPRESS_ALGORITHM)]
    before_login = client(login=False)
    assert before_login.cmd("z2", "COMPRESS DEFLATE") == [ok("z2", r.BAD_STATE)]


def test_unauthenticate(client, imap, live_settings):
    live_settings.MAILHOST_IMAP_MAX_CONNECTIONS_PER_USER = 1
    c = client()
    caps = c.cmd("c1", "CAPABILITY")[0].split()
    assert b"UNAUTHENTICATE" in caps
    c.cmd("e1", "ENABLE UTF8=ACCEPT")
    c.cmd("s1", "SELECT INBOX")
    other = client(login=False)
    assert other.cmd("L1", 'LOGIN "alice@example.org" "secret"') == [
        ok("L1", r.NO_TOO_MANY_CONNECTIONS)
    ]
    assert c.cmd("u1", "UNAUTHENTICATE") == [ok("u1")]
    assert c.cmd("s2", "SELECT INBOX") == [ok("s2", r.BAD_STATE)]
    assert b"AUTH=PLAIN" in c.cmd("c2", "CAPABILITY")[0].split()
    assert c.cmd("u2", "UNAUTHENTICATE") == [ok("u2", r.BAD_STATE)]
    # the user's connection slot is free again, and this connection may log in anew
    other.login()
    other.cmd("u3", "UNAUTHENTICATE")
    c.login()
    # ENABLE starts over: UTF8=ACCEPT was not carried into the new login
    assert c.cmd("e2", "ENABLE UTF8=ACCEPT") == [b"* ENABLED UTF8=ACCEPT", ok("e2")]
