"""Parsing stored messages for display, sanitizing HTML, and building what compose sends."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import pytest

from webmail import compose, mime, sanitize
from webmail.views.common import content_disposition


def test_rfc2231_continuations_and_charset():
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        b"x\r\n--b\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment;\r\n filename*0*=iso-8859-1''Gr%FC;\r\n"
        b" filename*1*=%DFe.bin\r\n\r\nzz\r\n--b--\r\n"
    )
    assert [a.filename for a in mime.read(raw).attachments] == ["Grüße.bin"]


def test_name_parameter_of_content_type_is_a_fallback():
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        b'x\r\n--b\r\nContent-Type: image/png; name="=?iso-8859-1?q?caf=E9.png?="\r\n\r\n'
        b"png\r\n--b--\r\n"
    )
    assert [a.filename for a in mime.read(raw).attachments] == ["café.png"]


def test_path_components_are_stripped_from_names():
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        b"x\r\n--b\r\nContent-Type: text/plain\r\n"
        b'Content-Disposition: attachment; filename="../../etc/passwd"\r\n\r\nx\r\n--b--\r\n'
    )
    assert [a.filename for a in mime.read(raw).attachments] == ["passwd"]
    assert mime.part_filename_from_upload("C:\\Users\\me\\doc.txt") == "doc.txt"
    assert mime.part_filename_from_upload("") == "attachment"


def test_nameless_parts_get_a_name():
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        b"x\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nhi\r\n--b--\r\n"
    )
    parsed = mime.read(raw)
    assert [(a.path, a.filename) for a in parsed.attachments] == [("2", "part-2.eml")]


def test_part_paths_follow_imap_numbering():
    message = mime.parse(
        b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
        b"Content-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n"
        b"Content-Type: text/plain\r\n\r\nplain\r\n--i\r\nContent-Type: text/html\r\n\r\n"
        b"<p>html</p>\r\n--i--\r\n--o\r\nContent-Type: application/pdf\r\n\r\npdf\r\n--o--\r\n"
    )
    assert mime.part_at(message, "1.1").get_content_type() == "text/plain"
    assert mime.part_at(message, "1.2").get_content_type() == "text/html"
    assert mime.part_at(message, "2").get_content_type() == "application/pdf"
    for bad in ("0", "3", "1.3", "2.1", "", "a", "1..1"):
        assert mime.part_at(message, bad) is None, bad
    single = mime.parse(b"Subject: x\r\n\r\nbody\r\n")
    assert mime.part_at(single, "1") is single
    assert mime.part_at(single, "2") is None


def test_html_to_text():
    text = mime.html_to_text("<style>p{}</style><p>One &amp; two</p><div>three<br>four</div>")
    assert text == "One & two\nthree\nfour"


@pytest.mark.parametrize(
    ("html", "absent", "present"),
    [
        ("<p onmouseover=alert(1)>x</p>", "onmouseover", "<p>x</p>"),
        ("<a href='javascript:alert(1)'>x</a>", "javascript", ">x</a>"),
        ("<img src='data:image/svg+xml;base64,PHN2Zz4='>", "svg", "<img>"),
        ("<img src='data:image/png;base64,iVBO'>", "", "data:image/png;base64,iVBO"),
        ("<object data=x></object><embed src=x>", "object", ""),
        ("<math><mi xlink:href=javascript:alert(1)>x</mi></math>", "javascript", ""),
        ("<table background='http://t.example/b.png'><tr><td>x</td></tr></table>", "t.example", ""),
        ("<p style='color:red'>x</p>", "", 'style="color:red"'),
        ("<base href='http://evil.example/'><a href='/x'>x</a>", "<base", ""),
        ("<meta http-equiv=refresh content='0;url=http://evil.example'>", "refresh", ""),
        ("<link rel=stylesheet href=http://evil.example/x.css>", "evil", ""),
    ],
)
def test_sanitize_cases(html, absent, present):
    cleaned = sanitize.clean(html, cid_url=lambda c: None, allow_remote=False).html
    if absent:
        assert absent not in cleaned
    assert present in cleaned


def test_sanitize_counts_and_strips_css_urls():
    result = sanitize.clean(
        "<p style=\"background:url('https://t.example/x.png') no-repeat\">x</p>"
        '<img src="//t.example/y.png">',
        cid_url=lambda c: None,
        allow_remote=False,
    )
    assert "t.example" not in result.html and result.blocked_images == 2
    allowed = sanitize.clean(
        '<img src="https://t.example/y.png">', cid_url=lambda c: None, allow_remote=True
    )
    assert 'src="https://t.example/y.png"' in allowed.html and allowed.blocked_images == 0


def test_unknown_cid_is_dropped():
    cleaned = sanitize.clean('<img src="cid:nope">', cid_url=lambda c: None, allow_remote=False)
    assert cleaned.html == "<img>"


@pytest.mark.parametrize(
    ("text", "valid", "invalid"),
    [
        ("bob@example.org", ["bob@example.org"], []),
        (
            '"Doe, John" <john@example.org>, ann@example.org',
            ["john@example.org", "ann@example.org"],
            [],
        ),
        (
            "a@b.example; c@d.example\ne@f.example",
            ["a@b.example", "c@d.example", "e@f.example"],
            [],
        ),
        ("bob", [], ["bob"]),
        ("bob@localhost", [], ["bob@localhost"]),
        ("x@@y.example", [], ["x@@y.example"]),
        ("Ann <ann@exa mple.org>", [], ["Ann <ann@exa mple.org>"]),
        ("", [], []),
        ("josé@exämple.org", ["josé@exämple.org"], []),
    ],
)
def test_split_addresses(text, valid, invalid):
    pairs, bad = compose.split_addresses(text)
    assert [a for _, a in pairs] == valid
    assert bad == invalid


def test_build_message(alice_like):
    draft = compose.Draft(
        to='"Doe, John" <john@example.org>',
        cc="ann@example.org",
        bcc="hidden@example.org",
        subject="Grüße",
        body="Line with ünïcode\r\nsecond line",
        in_reply_to="<a@x>",
        references="<z@x> <a@x>",
        attachments=[
            compose.Upload("r é.pdf", "application/pdf", b"%PDF"),
            compose.Upload("inner.eml", "message/rfc822", b"Subject: inner\r\n\r\nbody\r\n"),
        ],
    )
    raw, message_id = compose.build(mailbox=alice_like, draft=draft, include_bcc=False)
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert message["Message-ID"] == message_id and message_id.endswith("@example.org>")
    assert message["To"] == '"Doe, John" <john@example.org>'
    assert message["Bcc"] is None
    assert message["Subject"] == "Grüße"
    assert message["In-Reply-To"] == "<a@x>" and message["References"] == "<z@x> <a@x>"
    body = message.get_body(("plain",))
    assert body["Content-Transfer-Encoding"] == "quoted-printable"
    assert body.get_content().replace("\r\n", "\n") == "Line with ünïcode\nsecond line\n"
    parts = list(message.iter_attachments())
    assert [p.get_filename() for p in parts] == ["r é.pdf", "inner.eml"]
    assert parts[1].get_content_type() == "message/rfc822"
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    with_bcc, _ = compose.build(mailbox=alice_like, draft=draft, include_bcc=True)
    assert b"Bcc: hidden@example.org" in with_bcc


@pytest.fixture
def alice_like():
    class Domain:
        name = "example.org"

    class Mailbox:
        display_name = "Alice"
        address = "alice@example.org"
        domain = Domain()

    return Mailbox()


def test_content_disposition():
    assert content_disposition("a.pdf", attachment=True) == 'attachment; filename="a.pdf"'
    assert content_disposition('we"ird;.txt', attachment=False) == (
        "inline; filename=\"weird.txt\"; filename*=UTF-8''we%22ird%3B.txt"
    )
    assert content_disposition("日本.txt", attachment=True) == (
        "attachment; filename=\".txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"
    )
