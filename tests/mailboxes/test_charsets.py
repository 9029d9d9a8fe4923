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
