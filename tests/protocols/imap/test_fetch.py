"""FETCH items: parsing and rendering (protocols/imap/fetch.py), no sockets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from protocols.imap import fetch, mime
from protocols.imap import parser as p
from tests.protocols.imap import imapdata

RAW = (
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
    b"From: Fred Foobar <foobar@example.com>\r\n"
    b"To: mooch@example.org\r\n"
    b"Subject: afternoon meeting\r\n"
    b"Message-ID: <m1@example.com>\r\n"
    b"Content-Type: multipart/mixed; boundary=XX\r\n"
    b"\r\n"
    b"--XX\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Hello Joe, caf=C3=A9 at 3:30?\r\n"
    b"--XX\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"AAECAw==\r\n"
    b"--XX\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"Subject: inner\r\n"
    b"\r\n"
    b"inner body\r\n"
    b"--XX--\r\n"
)
HEADER = RAW[: RAW.index(b"\r\n\r\n") + 4]
TEXT = RAW[len(HEADER) :]


def make_row(**overrides):
    values = {
        "uid": 42,
        "size": len(RAW),
        "modseq": 17,
        "internal_date": datetime(2024, 3, 5, 6, 7, 8, tzinfo=UTC),
        "flags": ["\\Seen", "$Label1"],
        "mime_cache": None,
    }
    values.update(overrides)
    return SimpleNamespace(**values)


class Loader:
    def __init__(self, raw: bytes = RAW):
        self.raw = raw
        self.calls = 0

    def __call__(self) -> bytes:
        self.calls += 1
        return self.raw


def render(text: str, row=None, loader=None, **kwargs) -> tuple[list, fetch.Rendered, Loader]:
    loader = loader or Loader()
    rendered = fetch.render(7, fetch.parse_items(text), row or make_row(), loader, **kwargs)
    data = rendered.data
    assert data.startswith(b"* 7 FETCH (") and data.endswith(b")\r\n")
    return imapdata.read_many(data[len(b"* 7 FETCH (") : -3]), rendered, loader


def as_dict(values: list) -> dict:
    return {
        values[i].decode() if isinstance(values[i], bytes) else values[i]: values[i + 1]
        for i in range(0, len(values), 2)
    }


# --- Parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FLAGS", (fetch.Item("FLAGS"),)),
        ("(UID MODSEQ)", (fetch.Item("UID"), fetch.Item("MODSEQ"))),
        (
            "ALL",
            tuple(fetch.Item(n) for n in ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE")),
        ),
        ("fast", tuple(fetch.Item(n) for n in ("FLAGS", "INTERNALDATE", "RFC822.SIZE"))),
        (
            "FULL",
            tuple(
                fetch.Item(n) for n in ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY")
            ),
        ),
        ("BODY[]", (fetch.Item("BODY", fetch.Section()),)),
        ("BODY.PEEK[]<0.10>", (fetch.Item("BODY", fetch.Section(), True, (0, 10)),)),
        ("body[1.2.3]", (fetch.Item("BODY", fetch.Section((1, 2, 3))),)),
        ("BODY[1.2.HEADER]", (fetch.Item("BODY", fetch.Section((1, 2), "HEADER")),)),
        ("BODY[3.TEXT]", (fetch.Item("BODY", fetch.Section((3,), "TEXT")),)),
        ("BODY[2.mime]", (fetch.Item("BODY", fetch.Section((2,), "MIME")),)),
        (
            'BODY.PEEK[HEADER.FIELDS (From "To")]<5.100>',
            (
                fetch.Item(
                    "BODY", fetch.Section((), "HEADER.FIELDS", ("From", "To")), True, (5, 100)
                ),
            ),
        ),
        (
            "BODY[1.HEADER.FIELDS.NOT (X-A)]",
            (fetch.Item("BODY", fetch.Section((1,), "HEADER.FIELDS.NOT", ("X-A",))),),
        ),
        ("BINARY[1]", (fetch.Item("BINARY", fetch.Section((1,))),)),
        ("BINARY.PEEK[]<1.2>", (fetch.Item("BINARY", fetch.Section(), True, (1, 2)),)),
        ("BINARY.SIZE[2]", (fetch.Item("BINARY.SIZE", fetch.Section((2,))),)),
        (
            "RFC822 RFC822.HEADER RFC822.TEXT RFC822.SIZE",
            tuple(fetch.Item(n) for n in ("RFC822", "RFC822.HEADER", "RFC822.TEXT", "RFC822.SIZE")),
        ),
        (
            "ENVELOPE BODYSTRUCTURE BODY INTERNALDATE",
            tuple(fetch.Item(n) for n in ("ENVELOPE", "BODYSTRUCTURE", "BODY", "INTERNALDATE")),
        ),
    ],
)
def test_parse_items(text, expected):
    assert fetch.parse_items(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "BOGUS",
        "FLAGS[]",
        "BODY[0]",
        "BODY[1.]",
        "BODY[MIME]",  # MIME needs a part number
        "BODY[HEADER.FIELDS]",
        "BODY[HEADER.FIELDS ()]",
        "BODY[TEXT (X)]",
        "BODY[NOPE]",
        "BINARY.SIZE[1]<0.5>",
        "FLAGS<0.1>",
        "FLAGS  UID",
        "ALL FLAGS",
    ],
)
def test_parse_errors(text):
    with pytest.raises(fetch.FetchSyntaxError):
        fetch.parse_items(text)


def test_parses_the_command_parsers_items():
    command = p.parse_command(
        [b"a FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (From To)]<0.100> BINARY.SIZE[1] body[1.mime])"]
    )
    assert fetch.parse_items(command.items) == (
        fetch.Item("UID"),
        fetch.Item("BODY", fetch.Section((), "HEADER.FIELDS", ("From", "To")), True, (0, 100)),
        fetch.Item("BINARY.SIZE", fetch.Section((1,))),
        fetch.Item("BODY", fetch.Section((1,), "MIME")),
    )
    full = p.parse_command([b"a FETCH 1 FULL"])
    assert [i.name for i in fetch.parse_items(full.items)][-1] == "BODY"
    assert fetch.parse_items((p.FetchAtt("FAST"),)) == fetch.parse_items("FAST")


@pytest.mark.parametrize(
    ("text", "seen"),
    [
        ("BODY[]", True),
        ("BODY[1.MIME]", True),
        ("BODY.PEEK[]", False),
        ("BINARY[1]", True),
        ("BINARY.PEEK[1]", False),
        ("BINARY.SIZE[1]", False),
        ("RFC822", True),
        ("RFC822.TEXT", True),
        ("RFC822.HEADER", False),
        ("RFC822.SIZE", False),
        ("BODY BODYSTRUCTURE ENVELOPE FLAGS UID INTERNALDATE MODSEQ", False),
    ],
)
def test_which_items_set_seen(text, seen):
    # RFC 9051 6.4.5
    assert fetch.sets_seen(fetch.parse_items(text)) is seen


def test_with_item_adds_once():
    items = fetch.parse_items("FLAGS")
    assert fetch.with_item(items, "FLAGS") == items
    assert fetch.with_item(items, "UID") == (fetch.Item("FLAGS"), fetch.Item("UID"))


# --- Rendering ---------------------------------------------------------------------------


def test_row_items_do_not_read_the_blob():
    values, rendered, loader = render("UID FLAGS INTERNALDATE RFC822.SIZE MODSEQ")
    assert loader.calls == 0
    assert rendered.data == (
        b'* 7 FETCH (UID 42 FLAGS (\\Seen $Label1) INTERNALDATE "05-Mar-2024 06:07:08 +0000" '
        b"RFC822.SIZE %d MODSEQ (17))\r\n" % len(RAW)
    )


def test_internaldate_keeps_its_zone_and_pads_the_day():
    when = datetime(2024, 3, 5, 6, 7, 8, tzinfo=timezone(timedelta(hours=-7, minutes=-30)))
    assert fetch.internal_date_text(when) == b'"05-Mar-2024 06:07:08 -0730"'


def test_flags_can_be_given_explicitly():
    _values, rendered, _ = render("FLAGS", flags=["\\Recent"])
    assert rendered.data == b"* 7 FETCH (FLAGS (\\Recent))\r\n"


def test_structure_items_compute_and_return_a_cache_once():
    values, rendered, loader = render("ENVELOPE BODY BODYSTRUCTURE")
    assert loader.calls == 1
    data = as_dict(values)
    imapdata.check_envelope(data["ENVELOPE"])
    imapdata.check_body(data["BODY"], False)
    imapdata.check_body(data["BODYSTRUCTURE"], True)
    assert data["ENVELOPE"][1] == b"afternoon meeting"
    cache = json.loads(json.dumps(rendered.cache))
    # With the cache, the blob is not read again.
    values2, rendered2, loader2 = render("ENVELOPE BODY BODYSTRUCTURE", cache=cache)
    assert loader2.calls == 0
    assert rendered2.cache is None
    assert values2 == values


def test_cache_from_the_row_is_used():
    cache = mime.analyze(RAW)
    _values, rendered, loader = render("BODYSTRUCTURE", row=make_row(mime_cache=cache))
    assert loader.calls == 0 and rendered.cache is None


def test_cache_without_a_tree_reparses_for_sections():
    raw = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n" + b"--x\r\n\r\np\r\n" * 1200
    cache = json.loads(json.dumps(mime.analyze(raw)))
    assert cache["tree"] is None
    values, rendered, loader = render(
        "BODY.PEEK[1199] BODYSTRUCTURE",
        row=make_row(size=len(raw)),
        loader=Loader(raw),
        cache=cache,
    )
    assert values[:2] == [b"BODY[1199]", b"p"] and loader.calls == 1 and rendered.cache is None


def test_stale_cache_version_is_recomputed():
    _values, rendered, loader = render("ENVELOPE", cache={"v": -1, "envelope": "(junk)"})
    assert loader.calls == 1 and rendered.cache["v"] == mime.CACHE_VERSION


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("BODY[]", "BODY[]", RAW),
        ("BODY.PEEK[]", "BODY[]", RAW),
        ("RFC822", "RFC822", RAW),
        ("BODY[HEADER]", "BODY[HEADER]", HEADER),
        ("RFC822.HEADER", "RFC822.HEADER", HEADER),
        ("BODY[TEXT]", "BODY[TEXT]", TEXT),
        ("RFC822.TEXT", "RFC822.TEXT", TEXT),
        ("BODY[1]", "BODY[1]", b"Hello Joe, caf=C3=A9 at 3:30?"),
        (
            "BODY[1.MIME]",
            "BODY[1.MIME]",
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
        ),
        ("BODY[2]", "BODY[2]", b"AAECAw=="),
        ("BODY[3]", "BODY[3]", b"Subject: inner\r\n\r\ninner body"),
        ("BODY[3.HEADER]", "BODY[3.HEADER]", b"Subject: inner\r\n\r\n"),
        ("BODY[3.TEXT]", "BODY[3.TEXT]", b"inner body"),
        ("BODY[3.1]", "BODY[3.1]", b"inner body"),
        (
            "BODY[HEADER.FIELDS (subject TO)]",
            "BODY[HEADER.FIELDS (SUBJECT TO)]",
            b"To: mooch@example.org\r\nSubject: afternoon meeting\r\n\r\n",
        ),
        (
            'BODY[3.HEADER.FIELDS.NOT ("Subject")]',
            "BODY[3.HEADER.FIELDS.NOT (SUBJECT)]",
            b"\r\n",
        ),
        ("BODY[]<0.4>", "BODY[]<0>", b"Date"),
        ("BODY[]<6.3>", "BODY[]<6>", b"Mon"),
        ("BODY[1]<10.1000>", "BODY[1]<10>", b" caf=C3=A9 at 3:30?"),
        ("BODY[]<100000.5>", "BODY[]<100000>", b""),
        ("BODY.PEEK[TEXT]<0.0>", "BODY[TEXT]<0>", b""),
        ("BINARY[1]", "BINARY[1]", "Hello Joe, café at 3:30?".encode()),
        ("BINARY.PEEK[2]", "BINARY[2]", b"\x00\x01\x02\x03"),
        ("BINARY[2]<1.2>", "BINARY[2]<1>", b"\x01\x02"),
        ("BINARY[3]", "BINARY[3]", b"Subject: inner\r\n\r\ninner body"),
        ("BINARY[]", "BINARY[]", RAW),
    ],
)
def test_sections(text, key, expected):
    values, _rendered, loader = render(text)
    assert values == [key.encode(), expected]
    assert loader.calls == 1


def test_binary_with_nul_uses_literal8():
    _values, rendered, _ = render("BINARY[2]")
    assert rendered.data == b"* 7 FETCH (BINARY[2] ~{4}\r\n\x00\x01\x02\x03)\r\n"
    _values, rendered, _ = render("BODY[1]<0.5>")
    assert rendered.data == b"* 7 FETCH (BODY[1]<0> {5}\r\nHello)\r\n"


def test_binary_of_header_text_and_mime_is_not_decoded():
    # Beyond RFC 3516's grammar, as Dovecot does (imaptest fetch-binary-mime).
    values, _, _ = render("BINARY.PEEK[HEADER] BINARY.SIZE[TEXT] BINARY[1.MIME] BINARY[3.TEXT]")
    assert values == [
        b"BINARY[HEADER]",
        HEADER,
        b"BINARY.SIZE[TEXT]",
        len(TEXT),
        b"BINARY[1.MIME]",
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
        b"BINARY[3.TEXT]",
        b"inner body",
    ]
    items = fetch.parse_items("BINARY.SIZE[HEADER.FIELDS (Subject)]")
    assert items[0].section == fetch.Section((), "HEADER.FIELDS", ("Subject",))


def test_binary_size():
    values, _, _ = render("BINARY.SIZE[1] BINARY.SIZE[2] BINARY.SIZE[9]")
    assert values == [
        b"BINARY.SIZE[1]",
        len("Hello Joe, café at 3:30?".encode()),
        b"BINARY.SIZE[2]",
        4,
        b"BINARY.SIZE[9]",
        0,
    ]


def test_missing_sections_are_nil():
    values, _, _ = render("BODY[4] BODY[1.1] BODY[2.HEADER] BINARY[7] BODY[9]<0.10>")
    assert values == [
        b"BODY[4]",
        None,
        b"BODY[1.1]",
        None,
        b"BODY[2.HEADER]",
        None,
        b"BINARY[7]",
        None,
        b"BODY[9]<0>",
        None,
    ]


def test_unknown_transfer_encoding_raises_for_binary_only():
    raw = b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 f\r\n"
    loader = Loader(raw)
    row = make_row(size=len(raw))
    with pytest.raises(fetch.UnknownCTE):
        fetch.render(1, fetch.parse_items("BINARY[1]"), row, loader)
    out = fetch.render(1, fetch.parse_items("BODY[1]"), row, loader)
    assert out.data == b"* 1 FETCH (BODY[1] {13}\r\nbegin 644 f\r\n)\r\n"


def test_every_item_together_sizes_are_exact():
    text = (
        "UID FLAGS INTERNALDATE RFC822.SIZE MODSEQ ENVELOPE BODY BODYSTRUCTURE BODY[] "
        "BODY.PEEK[HEADER] BODY[TEXT] RFC822 RFC822.HEADER RFC822.TEXT BINARY[1] "
        "BINARY.SIZE[1] BODY[1.MIME]"
    )
    values, rendered, loader = render(text)
    assert loader.calls == 1
    data = as_dict(values)
    assert data["RFC822.SIZE"] == len(RAW) == len(data["BODY[]"]) == len(data["RFC822"])
    assert data["BODY[HEADER]"] + data["BODY[TEXT]"] == RAW
    assert data["RFC822.HEADER"] + data["RFC822.TEXT"] == RAW
    structure = data["BODYSTRUCTURE"]
    assert structure[0][6] == len(b"Hello Joe, caf=C3=A9 at 3:30?")
    assert structure[1][6] == len(b"AAECAw==")
    assert structure[2][6] == len(b"Subject: inner\r\n\r\ninner body")
    assert data["BINARY.SIZE[1]"] == len(data["BINARY[1]"])


def test_eight_bit_and_bare_lf_message_round_trips():
    raw = b"Subject: caf\xc3\xa9\nFrom: \xff <x@y>\n\nbody\xff\nline\n"
    values, _, _ = render(
        "RFC822.SIZE BODY[] ENVELOPE BODYSTRUCTURE", row=make_row(size=len(raw)), loader=Loader(raw)
    )
    data = as_dict(values)
    assert data["BODY[]"] == raw and data["RFC822.SIZE"] == len(raw)
    assert data["ENVELOPE"][1] == "café".encode()
    assert data["BODYSTRUCTURE"][6] == len(b"body\xff\nline\n")
    assert data["BODYSTRUCTURE"][7] == 2
