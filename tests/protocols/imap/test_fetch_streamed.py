"""FETCH of a large message streams its literals (protocols/imap/fetch.py Spans): every
section that is a range of the stored octets renders as a Span, and the response it makes
is byte for byte the one rendered from the whole message (BINARY in a literal8), over the
MIME corpus, with and without a cached structure. No sockets."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from protocols.imap import fetch, mime
from tests.protocols.imap.test_fetch import RAW

CORPUS = sorted((Path(__file__).parent / "corpus").rglob("*.eml"))
SECTIONS = (
    "BODY[]",
    "BODY.PEEK[]<0.10>",
    "BODY[]<5.100000000>",
    "BODY[]<100000000.5>",
    "BODY[HEADER]",
    "BODY[TEXT]<3.40>",
    "BODY[1]",
    "BODY[1.MIME]",
    "BODY[2]",
    "BODY[1.1]",
    "BODY[2.HEADER]",
    "BODY[3.TEXT]",
    "BODY[3.1]",
    "BODY[9]",
    "BODY[HEADER.FIELDS (SUBJECT FROM)]",
    "BODY[HEADER.FIELDS.NOT (SUBJECT)]<2.20>",
    "BODY[3.HEADER.FIELDS (SUBJECT)]",
    "BINARY[]",
    "BINARY[]<4.30>",
    "BINARY[1]",
    "BINARY[2]",
    "BINARY[3]",
    "BINARY[1.2]",
    "BINARY.SIZE[]",
    "BINARY.SIZE[3]",
    "RFC822",
    "RFC822.HEADER",
    "RFC822.TEXT",
)


def row_of(raw: bytes, cache=None):  # noqa: ANN001, ANN201
    return SimpleNamespace(
        uid=1, size=len(raw), modseq=1, internal_date=None, flags=[], mime_cache=cache
    )


def expand(rendered: fetch.Rendered, raw: bytes) -> bytes:
    """The bytes the session sends for a rendered response."""
    if rendered.pieces is None:
        return rendered.data
    out = []
    for piece in rendered.pieces:
        if isinstance(piece, fetch.Span):
            data = raw[piece.offset : piece.offset + piece.length]
            out.append(data if piece.binary else data.replace(b"\x00", b"\x80"))
        else:
            out.append(piece)
    return b"".join(out)


def render_both(raw: bytes, text: str, cache):  # noqa: ANN001, ANN201
    items = fetch.parse_items(text)
    whole = fetch.render(1, items, row_of(raw, cache), lambda: raw)
    loads, reads = [], []

    def load() -> bytes:
        loads.append(len(raw))
        return raw

    def read_range(offset: int, length: int) -> bytes:
        reads.append(length)
        return raw[offset : offset + length]

    streamed = fetch.render(1, items, row_of(raw, cache), load, read_range=read_range)
    return whole, streamed, loads, reads


def literal8(data: bytes) -> bytes:
    """A BINARY literal as a streamed response writes it: always literal8 (RFC 3516 4.3)."""
    return re.sub(rb"(BINARY\[[0-9.]*\](?:<\d+>)? )~?\{", rb"\1~{", data)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
@pytest.mark.parametrize("cached", [False, True], ids=["uncached", "cached"])
def test_streamed_sections_are_the_whole_message_renders(path, cached):
    raw = path.read_bytes()
    cache = mime.analyze(raw) if cached else None
    for text in SECTIONS:
        try:
            whole, streamed, loads, _reads = render_both(raw, text, cache)
        except mime.UnknownCTE:
            continue
        assert literal8(expand(streamed, raw)) == literal8(whole.data), text
        if cached and cache["tree"] is not None and streamed.pieces is not None:
            assert not loads, f"{text} read the whole message"


def test_with_a_cached_structure_sections_are_spans_and_nothing_reads_the_whole_message():
    cache = mime.analyze(RAW)
    expected_spans = {
        "BODY.PEEK[]<0.10>": [fetch.Span(0, 10)],
        "BODY[TEXT]": [
            fetch.Span(RAW.index(b"\r\n\r\n") + 4, len(RAW) - RAW.index(b"\r\n\r\n") - 4)
        ],
        "BINARY[3]": [
            fetch.Span(RAW.index(b"Subject: inner"), len(b"Subject: inner\r\n\r\ninner body"), True)
        ],
        "RFC822 BODY.PEEK[]<100.5>": [fetch.Span(0, len(RAW)), fetch.Span(100, 5)],
    }
    for text, spans in expected_spans.items():
        _whole, streamed, loads, reads = render_both(RAW, text, cache)
        assert [p for p in streamed.pieces if isinstance(p, fetch.Span)] == spans, text
        assert loads == [] and reads == []
    # HEADER.FIELDS reads the header's octets alone; BINARY of an encoded part its bytes whole
    _whole, streamed, loads, reads = render_both(RAW, "BODY.PEEK[HEADER.FIELDS (SUBJECT)]", cache)
    assert streamed.pieces is None and loads == [] and reads == [RAW.index(b"\r\n\r\n") + 4]
    _whole, streamed, loads, reads = render_both(RAW, "BINARY[2]", cache)
    assert streamed.pieces is None and loads == [len(RAW)]


def test_without_a_structure_binary_of_the_whole_message_reads_its_header_alone():
    raw = b"Subject: big\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + b"\x00\xff" * 5000
    _whole, streamed, loads, reads = render_both(raw, "BINARY.PEEK[]<10.20>", None)
    assert streamed.pieces == [
        b"* 1 FETCH (BINARY[]<10> ~{20}\r\n",
        fetch.Span(10, 20, True),
        b")\r\n",
    ]
    assert loads == [] and reads == [mime.MAX_HEADER_OCTETS]
    _whole, streamed, loads, _reads = render_both(raw, "BODY.PEEK[]", None)
    assert streamed.pieces == [
        b"* 1 FETCH (BODY[] {%d}\r\n" % len(raw),
        fetch.Span(0, len(raw)),
        b")\r\n",
    ]
    assert expand(streamed, raw).count(b"\x80\xff") == 5000  # NUL sent as 0x80 outside BINARY
    assert loads == []
    encoded = b"Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n"
    _whole, streamed, loads, _reads = render_both(encoded, "BINARY[]", None)
    assert streamed.pieces is None and loads == [len(encoded)]  # decoded: the whole message
