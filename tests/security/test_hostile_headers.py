"""Hostile header fields: each class is parsed in linear time, within limits, and fails
cleanly (issue 14). Delivered over real SMTP (smtplib on port 25), read back over the webmail
message view (Django's test client) and IMAP's ENVELOPE/BODYSTRUCTURE, each under a time bound.

A message whose header fields are hostile but otherwise well formed is accepted (250) and
stored unchanged with whatever summary could be parsed: refusing it would bounce mail that
real senders produce by accident (huge recipient lists), and a 4xx would be retried forever.
"""

from __future__ import annotations

import smtplib
import time

import pytest
from django.test import Client

from mailboxes import headers, selectors
from protocols.imap import mime

pytestmark = pytest.mark.django_db(transaction=True)

TIME_BOUND = 1.0  # seconds per parse of one hostile message


def _message(field: bytes) -> bytes:
    return (
        b"From: Carol <carol@remote.example>\r\n"
        b"To: alice@example.org\r\n"
        b"Subject: hostile header\r\n"
        b"Message-ID: <%d.hostile@remote.example>\r\n"
        % len(field)
        + field
        + b"\r\n\r\nbody text\r\n"
    )


def _folded(name: bytes, pieces: list[bytes], sep: bytes) -> bytes:
    """A field folded every few pieces, as a sender keeping lines under 998 octets would."""
    lines = [sep.join(pieces[i : i + 20]) for i in range(0, len(pieces), 20)]
    return name + b": " + (sep + b"\r\n ").join(lines)


HOSTILE = {
    "10,000 RFC 2231 parameters": (
        b"MIME-Version: 1.0\r\n"
        + _folded(
            b"Content-Type",
            [b"text/plain"] + [b"title*%d*=%%41%%42" % i for i in range(10_000)],
            b"; ",
        )
    ),
    "10,000 RFC 2231 disposition parameters": (
        b"MIME-Version: 1.0\r\nContent-Type: application/pdf\r\n"
        + _folded(
            b"Content-Disposition",
            [b"attachment"] + [b"filename*%d*=%%41" % i for i in range(10_000)],
            b"; ",
        )
    ),
    "10,000 address groups": _folded(
        b"Cc", [b"g%d: m%d@remote.example;" % (i, i) for i in range(10_000)], b", "
    ),
    "20,000-deep nested comment in From": (
        b"Reply-To: " + b"(" * 20_000 + b"x" + b")" * 20_000 + b" carol@remote.example\r\n"
        b"Sender: " + b"(" * 20_000 + b" carol@remote.example"
    ),
    "20,000 unbalanced parentheses and angles": (
        b"Cc: "
        + b"(" * 20_000
        + b"\r\nBcc: "
        + b"<" * 20_000
        + b"\r\nIn-Reply-To: "
        + b"<(" * 10_000
    ),
    "100,000 repeated To fields": b"\r\n".join(
        b"To: r%d@remote.example" % i for i in range(100_000)
    ),
    "10,000 encoded words": _folded(
        b"X-Long", [b"=?utf-8?q?=C3=A9?=" for _ in range(10_000)], b" "
    ),
}
# The From field itself is hostile in one case: the 451 at DATA.
FROM_COMMENT = (
    b"From: " + b"(" * 20_000 + b"x" + b")" * 20_000 + b" carol@remote.example\r\n"
    b"To: alice@example.org\r\nSubject: nested comment\r\n\r\nbody text\r\n"
)


def _fold_long_lines(raw: bytes) -> bytes:
    """Lines within 998 octets (RFC 5322 2.1.1): a long line of a header field is folded
    (CRLF and a space) every 900 octets; white space is allowed inside comments and lists."""
    out = []
    for line in raw.split(b"\r\n"):
        while len(line) > 900:
            out.append(line[:900])
            line = b" " + line[900:]
        out.append(line)
    return b"\r\n".join(out)


def _cases() -> dict[str, bytes]:
    cases = {name: _message(field) for name, field in HOSTILE.items()}
    cases["20,000-deep nested comment as From"] = FROM_COMMENT
    return {name: _fold_long_lines(raw) for name, raw in cases.items()}


CASES = _cases()


@pytest.mark.parametrize("raw", CASES.values(), ids=CASES.keys())
def test_parsers_are_bounded(raw):
    for parse in (headers.summarize, mime.analyze):
        # CPU time of this thread: the bound is against quadratic parsing, not a loaded machine
        # (on an idle one the worst case takes 0.05 s of CPU; a CI machine running both passes
        # side by side once stretched it to 1.3 s of wall time).
        started = time.thread_time()
        parse(raw)
        assert time.thread_time() - started < TIME_BOUND, parse.__qualname__


@pytest.fixture
def alice(make_mailbox):
    return make_mailbox("alice@example.org", password="secret")


@pytest.mark.parametrize("raw", CASES.values(), ids=CASES.keys())
def test_accepted_over_smtp_and_shown_in_webmail(raw, alice, live_settings):
    from mailhost import runner
    from tests.support.servers import running

    with running(runner.SMTP) as ports:
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=30) as client:
            client.ehlo("remote.example")
            started = time.perf_counter()
            refused = client.sendmail("carol@remote.example", ["alice@example.org"], raw)
            elapsed = time.perf_counter() - started
    assert refused == {}
    assert elapsed < TIME_BOUND * 3  # the whole transaction: DATA, checks, store, sync
    inbox = selectors.folder_get(alice, "INBOX")
    web = Client()
    assert web.post("/login/", {"address": "alice@example.org", "password": "secret"}).status_code
    for suffix in ("", "frame/", "raw/"):
        started = time.perf_counter()
        response = web.get(f"/m/{inbox.pk}/1/{suffix}")
        assert response.status_code == 200, suffix
        assert time.perf_counter() - started < TIME_BOUND, suffix
    assert web.get(f"/f/{inbox.pk}/").status_code == 200


def test_a_summary_that_cannot_be_parsed_is_degraded_not_a_4xx(
    alice, live_settings, monkeypatch, caplog
):
    from mailboxes.models import Message
    from mailhost import runner
    from tests.support.servers import running

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003
        raise RecursionError("a parser bug on hostile input")

    monkeypatch.setattr(headers, "_summary", broken)
    raw = _message(b"X-Note: fine")
    with running(runner.SMTP) as ports:
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=30) as client:
            assert client.sendmail("carol@remote.example", ["alice@example.org"], raw) == {}
    message = Message.objects.get()
    assert (message.subject, message.from_address) == ("", "")
    assert any(r.getMessage().startswith("headers degraded ") for r in caplog.records)
