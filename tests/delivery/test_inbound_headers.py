"""What the world may not tell us: a forged `X-Spam: No` and an Authentication-Results field
claiming our authserv-id are removed on port 25; others' Authentication-Results stay, the
body keeps its bytes, and DKIM is verified on the message as it arrived."""

from __future__ import annotations

import dataclasses
import smtplib

import pytest

from delivery.inbound import AuthResults, strip_untrusted
from mailboxes.models import Message
from mailboxes.selectors import blob_read
from mailhost import runner
from tests.support.dkimkeys import publish, sign
from tests.support.servers import running

HOST = "mx.receiver.test"
FORGED = (
    b"Authentication-Results: mx.receiver.test; dkim=pass header.d=bank.test;\r\n"
    b"\tdmarc=pass header.from=bank.test\r\n"
    b"X-Spam: No\r\n"
    b"X-Spam-Score: -100\r\n"
    b"x-spam-flag: NO\r\n"
    b"Authentication-Results: (comment) MX.Receiver.Test.;\r\n\tspf=pass\r\n"
    b"Authentication-Results:\r\n mx.receiver.test; arc=pass\r\n"
    b"Authentication-Results: relay.elsewhere.test; spf=pass smtp.mailfrom=a@bank.test\r\n"
    b"X-Spammy-Looking-But-Ours: kept? no, every X-Spam* goes\r\n"
    b"X-Mailer: kept\r\n"
)
MESSAGE = (
    b"From: Jane <jane@origin.test>\r\n"
    b"To: bob@example.org\r\n"
    b"Subject: trust me\r\n"
    b"\r\n"
    b"X-Spam: No\r\n"  # in the body: not a header, left alone
    b"Authentication-Results: mx.receiver.test; dkim=pass\r\n"
)


def test_strip_untrusted_removes_only_what_claims_us():
    stripped = strip_untrusted(FORGED + MESSAGE, authserv_id=HOST)
    head, _, body = stripped.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"Authentication-Results: relay.elsewhere.test; spf=pass smtp.mailfrom=a@bank.test",
        b"X-Mailer: kept",
        b"From: Jane <jane@origin.test>",
        b"To: bob@example.org",
        b"Subject: trust me",
    ]
    assert body == MESSAGE.partition(b"\r\n\r\n")[2]
    lf_only = strip_untrusted((FORGED + MESSAGE).replace(b"\r\n", b"\n"), authserv_id=HOST)
    assert lf_only == stripped.replace(b"\r\n", b"\n")


def test_a_header_naming_neither_field_is_returned_as_it_came():
    """Nearly every message: nothing to remove, so no pass over the header's lines and no
    copy of the message; a body line that names them changes nothing."""
    assert strip_untrusted(MESSAGE, authserv_id=HOST) is MESSAGE
    spam_like = b"X-Spammer: kept? no\r\n" + MESSAGE
    assert strip_untrusted(spam_like, authserv_id=HOST) == MESSAGE


@pytest.fixture
def receiver(live_settings, transactional_db, dns_server, make_mailbox):
    bob = make_mailbox("bob@example.org")
    live_settings.MAILHOST_HOSTNAME = HOST
    dns_server.add_txt("origin.test", "v=spf1 ip4:127.0.0.1 -all")
    publish(dns_server, "origin.test")
    with running(runner.SMTP) as ports:
        yield bob, ports["smtp"]


def test_forged_verdicts_from_outside_are_removed(receiver):
    bob, port = receiver
    # The forged fields sit above the signature, so removing them cannot break it; the
    # signature itself covers a forged field below it, which must be verified as received.
    signed = sign(MESSAGE.replace(b"Subject:", b"X-Spam-Status: No\r\nSubject:"), "origin.test")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("mail.origin.test")
        client.sendmail("jane@origin.test", ["bob@example.org"], FORGED + signed)
    [row] = Message.objects.all()
    raw = blob_read(row.blob)
    head = raw.partition(b"\r\n\r\n")[0]
    # Every X-Spam* field from outside is gone; the two left are our spam verdict's, on top.
    spam_fields = [line for line in head.split(b"\r\n") if line.lower().startswith(b"x-spam")]
    assert [f.split(b":")[0] for f in spam_fields] == [b"X-Spam", b"X-Spam-Score"]
    assert spam_fields[0] == b"X-Spam: No" and head.index(b"X-Spam: No") < head.index(b"From: ")
    assert b"-100" not in head and b"x-spam-flag" not in head.lower() and b"Spammy" not in head
    assert head.count(b"Authentication-Results: mx.receiver.test;") == 1  # ours only
    assert b"Authentication-Results: relay.elsewhere.test;" in head
    ours = AuthResults.from_header(raw, HOST)
    assert ours is not None
    assert ours.dkim[0].result == "pass"  # verified before X-Spam-Status was removed
    assert (ours.spf.result, ours.dmarc.result) == ("pass", "none")
    assert raw.endswith(MESSAGE.partition(b"\r\n\r\n")[2])


def test_the_stored_header_reads_back_as_the_same_results(receiver, dns_server):
    bob, port = receiver
    dns_server.add_txt("_dmarc.origin.test", "v=DMARC1; p=quarantine")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("mail.origin.test")
        client.sendmail("jane@spammer.test", ["bob@example.org"], MESSAGE)
    [row] = Message.objects.all()
    back = AuthResults.from_header(blob_read(row.blob), HOST)
    assert (back.dmarc.result, back.dmarc.policy, back.dmarc.disposition) == (
        "fail",
        "quarantine",
        "quarantine",
    )
    assert back.dmarc.domain == "origin.test"
    assert (
        "DMARC_FAIL_QUARANTINE",
        "claims to be from origin.test but origin.test's DMARC policy sends it to Junk",
    ) in back.reasons()


def test_our_header_words_each_spf_result_and_cleans_its_comments():
    """The field's text, word for word: each SPF result's sentence (an unknown result shown
    as it is), a comment's line breaks and tabs as one space, its backslashes and
    parentheses quoted, and a message without a signature said to have none."""
    from delivery.inbound.results import DKIMResult, DMARCResult, SPFResult

    def spf_text(result: str, domain: str = "origin.test") -> str:
        results = AuthResults(
            authserv_id=HOST,
            spf=SPFResult(result, "mailfrom", domain, f"a@{domain}" if domain else ""),
            spf_helo=SPFResult("none", "helo"),
            client_ip="192.0.2.1",
        )
        return results.header_value().split(";\r\n\t")[2]

    assert [spf_text(r) for r in ("pass", "fail", "softfail", "neutral")] == [
        "spf=pass (192.0.2.1 is designated by origin.test) smtp.mailfrom=a@origin.test",
        "spf=fail (192.0.2.1 is not designated by origin.test) smtp.mailfrom=a@origin.test",
        "spf=softfail (192.0.2.1 is probably not designated by origin.test)"
        " smtp.mailfrom=a@origin.test",
        "spf=neutral (192.0.2.1 is neither permitted nor denied by origin.test)"
        " smtp.mailfrom=a@origin.test",
    ]
    assert [spf_text(r, "") for r in ("none", "temperror", "permerror", "odd")] == [
        "spf=none (192.0.2.1 the sender publishes no SPF record)",
        "spf=temperror (192.0.2.1 the sender's SPF could not be checked now)",
        "spf=permerror (192.0.2.1 the sender's SPF record is broken)",
        "spf=odd (192.0.2.1 odd)",
    ]
    results = AuthResults(
        authserv_id=HOST,
        spf=SPFResult("none", "mailfrom"),
        spf_helo=SPFResult("none", "helo", "{helo}.test"),
        dkim=(
            DKIMResult(
                "fail", "origin.test", "s1", "abc", "body\r\n\t \thash (bh) \\ x\x0b\u00a0y"
            ),
        ),
        dmarc=DMARCResult("none", "origin.test", reason="no\nrecord\t\there"),
    )
    assert results.header_value() == (
        "mx.receiver.test;\r\n"
        "\tdkim=fail (body   hash \\(bh\\) \\\\ x\x0b\u00a0y) header.d=origin.test header.s=s1"
        " header.b=abc;\r\n"
        "\tspf=none;\r\n"
        "\tspf=none smtp.helo={helo}.test;\r\n"
        "\tdmarc=none (no record here) header.from=origin.test;\r\n"
        "\tarc=none"
    )
    unsigned = dataclasses.replace(results, dkim=())
    assert unsigned.header_value().split(";\r\n\t")[1] == "dkim=none"
