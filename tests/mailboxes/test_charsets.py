"""mailboxes.charsets.part_charset: a hostile Content-Type never fails the reader of a part."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import compat32

from delivery.spam.tokens import text_of
from mailboxes.charsets import part_charset

# RFC 2231 continuations numbered and unnumbered at once: the standard library's
# decode_params sorts None against 0 and raises TypeError.
HOSTILE = (
    b"From: a@example.net\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset*=utf-8''x; charset*0=a; charset*1=b\r\n\r\n"
    b"hello hostile world\r\n"
)


def test_part_charset_never_raises():
    part = message_from_bytes(HOSTILE, policy=compat32)
    assert part_charset(part, "utf-8") in {"utf-8", "x", "ab"}


def test_the_spam_tokenizer_reads_the_text():
    assert "hostile world" in text_of(HOSTILE).text


CONTENT_TYPES = [
    "text/plain; charset=utf-8",
    "text/plain; charset=UTF-8",
    'text/plain; charset="ISO-8859-1"; format=flowed',
    "text/plain",
    "text/html; charset*=utf-8''%75tf-8",
    "text/plain; charset*=utf-8''x; charset*0=a; charset*1=b",
    "text/plain; charset*0=iso-8859; charset*1=-1",
    "text/plain; charset=",
    "text/plain; charset=caf\u00e9",
    "multipart/mixed; boundary=x",
    ";;;",
    "",
]


def test_part_charset_kept_by_content_type_is_the_parts_own():
    # part_charset keeps its reading by the Content-Type field's text: the same answer as
    # the part's own get_content_charset, asked once or again, for parts with that field.
    for _ in range(2):
        for value in CONTENT_TYPES:
            part = message_from_bytes(
                b"Content-Type: " + value.encode("utf-8") + b"\r\n\r\nbody", policy=compat32
            )
            try:
                expected = part.get_content_charset() or "default"
            except Exception:
                expected = "default"
            assert part_charset(part, "default") == expected, value
    assert part_charset(message_from_bytes(b"Subject: x\r\n\r\nb", policy=compat32), "d") == "d"


def test_part_charset_of_webmails_message_part():
    """webmail's MessagePart (no email policy) is asked for its own charset parameter."""
    from mailboxes import mime
    from webmail.mime import MessagePart

    raw = b"Content-Type: text/plain; charset=ISO-8859-1\r\n\r\nCaf\xe9\r\n"
    part = MessagePart(raw, mime.parse(raw))
    assert part_charset(part, "utf-8") == "iso-8859-1"
    bare = b"Content-Type: text/plain\r\n\r\nx\r\n"
    assert part_charset(MessagePart(bare, mime.parse(bare)), "utf-8") == "utf-8"
