"""Wire form, byte-stuffing, TOP and UIDL as pure functions; the size cache."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailboxes.models import Message
from protocols.pop3.maildrop import (
    CACHE_KEY,
    byte_stuff,
    multiline_body,
    open_maildrop,
    stuffed_chunks,
    top_chunks,
    top_of,
    unique_id,
    wire_chunks,
    wire_form,
    wire_size,
)
from tests.protocols.pop3.conftest import deliver


@pytest.mark.parametrize(
    ("raw", "wire"),
    [
        (b"", b""),
        (b"a\r\nb\r\n", b"a\r\nb\r\n"),
        (b"a\nb\n", b"a\r\nb\r\n"),
        (b"a\r\nb\nc", b"a\r\nb\r\nc\r\n"),
        (b"a\rb\r\n", b"a\rb\r\n"),  # a lone CR is not a line end
        (b"a\r\r\n", b"a\r\r\n"),
        (b"end\r", b"end\r\r\n"),
    ],
)
def test_wire_form(raw, wire):
    assert wire_form(raw) == wire


def test_byte_stuffing():
    assert byte_stuff(b".start\r\nmid\r\n.\r\n..two\r\n") == (b"..start\r\nmid\r\n..\r\n...two\r\n")
    assert multiline_body(b"x\r\n.\r\n") == b"x\r\n..\r\n.\r\n"
    assert multiline_body(b"") == b".\r\n"


def test_top_of():
    data = b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n"
    assert top_of(data, 0) == b"A: 1\r\nB: 2\r\n\r\n"
    assert top_of(data, 2) == b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n"
    assert top_of(data, 99) == data
    assert top_of(b"A: 1\r\n", 3) == b"A: 1\r\n"  # header only
    assert top_of(b"\r\nbody\r\nmore\r\n", 1) == b"\r\nbody\r\n"


def test_unique_id_is_stable_and_printable():
    assert unique_id(1700000000, 42) == "0000002A6553F100"
    assert all(0x21 <= ord(c) <= 0x7E for c in unique_id(2**31 - 1, 2**32 - 1))


def test_sizes_are_cached_once(mailbox):
    deliver(b"Subject: x\n\nbody\n")
    [message] = Message.objects.all()
    assert message.mime_cache is None or CACHE_KEY not in message.mime_cache
    maildrop = open_maildrop(mailbox)
    assert [e.size for e in maildrop.entries] == [len(b"Subject: x\r\n\r\nbody\r\n")]
    message.refresh_from_db()
    assert message.mime_cache[CACHE_KEY] == {"v": 1, "size": 20}
    # A cached size is trusted: the bytes are not read again.
    Message.objects.filter(pk=message.pk).update(mime_cache={CACHE_KEY: {"v": 1, "size": 5}})
    assert [e.size for e in open_maildrop(mailbox).entries] == [5]


def test_other_protocol_caches_are_kept(mailbox):
    deliver(b"Subject: y\r\n\r\nz\r\n")
    Message.objects.update(mime_cache={"imap": {"envelope": "kept"}})
    open_maildrop(mailbox)
    [message] = Message.objects.all()
    assert message.mime_cache["imap"] == {"envelope": "kept"}
    assert message.mime_cache[CACHE_KEY]["size"] == len(b"Subject: y\r\n\r\nz\r\n")


def _unstuff(reply_body: bytes) -> bytes:
    """What a client does with a multi-line reply (RFC 1939 3), as poplib does."""
    assert reply_body.endswith(b".\r\n")
    lines = reply_body[: -len(b".\r\n")].split(b"\r\n")
    assert lines[-1] == b""
    out = []
    for line in lines[:-1]:
        assert line != b".", "a bare dot inside the body would end the reply early"
        out.append(line[1:] if line.startswith(b"..") else line)
    return b"".join(line + b"\r\n" for line in out)


@given(st.binary(max_size=400), st.lists(st.sampled_from([b".", b"\r\n", b"\n", b"\r", b"x"])))
@settings(max_examples=300, deadline=None)
def test_what_the_client_gets_is_the_counted_wire_form(raw, pieces):
    raw = raw + b"".join(pieces)
    wire = wire_form(raw)
    assert _unstuff(multiline_body(wire)) == wire
    # The size STAT and LIST give is the size the client counts.
    assert len(wire) == len(_unstuff(multiline_body(wire)))
    assert b"\n" not in wire.replace(b"\r\n", b"")


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@given(
    st.binary(max_size=300),
    st.lists(st.sampled_from([b".", b"\r\n", b"\n", b"\r", b"x", b"\r\n\r\n", b"\n\n"])),
    st.lists(st.integers(0, 400), max_size=12),
    st.integers(0, 5),
)
@settings(max_examples=500, deadline=None)
def test_the_chunked_forms_are_the_whole_ones_however_the_bytes_are_cut(raw, pieces, cuts, lines):
    # A large message goes out a chunk of the store at a time (RETR, TOP, its LIST size).
    raw = b"".join(pieces) + raw + b"".join(reversed(pieces))
    chunks = split(raw, cuts)
    wire = wire_form(raw)
    assert b"".join(wire_chunks(chunks)) == wire
    assert wire_size(chunks) == len(wire)
    assert b"".join(stuffed_chunks(wire_chunks(chunks))) == byte_stuff(wire)
    top = b"".join(stuffed_chunks(top_chunks(wire_chunks(chunks), lines)))
    assert top == byte_stuff(top_of(wire, lines))


def test_top_stops_reading_after_its_lines():
    taken = []

    def chunks():
        for n in range(1000):
            taken.append(n)
            yield b"Subject: x\r\n\r\n" if n == 0 else b"line %d\r\n" % n

    assert (
        b"".join(top_chunks(wire_chunks(chunks()), 2)) == b"Subject: x\r\n\r\nline 1\r\nline 2\r\n"
    )
    assert len(taken) <= 4
