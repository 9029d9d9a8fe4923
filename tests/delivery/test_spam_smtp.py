"""The spam verdict on port 25, over real sockets: GTUBE, thresholds, DNS lists, headers."""

from __future__ import annotations

import smtplib
from email.parser import BytesHeaderParser
from email.policy import compat32

import pytest

from delivery.spam import GTUBE, reasons_of
from mailboxes import headers, selectors
from mailboxes.models import Message, SpecialUse
from mailboxes.services import sender_list_add
from mailhost import runner
from protocols.smtp import replies
from tests.support.servers import running
from tests.support.smtp import Transcript

pytestmark = pytest.mark.django_db(transaction=True)

CLEAN = (
    b"From: Bob <bob@remote.example>\r\n"
    b"To: Alice <alice@example.org>\r\n"
    b"Subject: Lunch on Friday\r\n"
    b"Date: Tue, 5 Mar 2024 10:00:00 +0000\r\n"
    b"Message-ID: <lunch1@remote.example>\r\n"
    b"\r\n"
    b"Shall we meet at noon?\r\n"
)
# No Date, no Message-ID, no To: 1 + 0.5 + 0.5 points; HELO "client.example.net" is fine.
SLOPPY = b"From: x@remote.example\r\nSubject: hi\r\n\r\nHello.\r\n"


@pytest.fixture
def mta(live_settings, transactional_db, make_mailbox):
    make_mailbox("alice@example.org")
    make_mailbox("bob@example.org")
    with running(runner.SMTP) as ports:
        yield ports["smtp"]


def send(port: int, raw: bytes, to=("alice@example.org",)) -> None:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.net") as client:
        client.sendmail("sender@remote.example", list(to), raw)


def stored(address: str) -> list[tuple[str, bytes]]:
    """(folder special use, raw bytes) of every message of a mailbox."""
    mailbox = selectors.mailbox_get(address)
    rows = Message.objects.filter(folder__mailbox=mailbox).select_related("folder", "blob")
    return [(m.folder.special_use, selectors.blob_read(m.blob)) for m in rows]


def spam_header(raw: bytes) -> tuple[str, float, list]:
    parsed = BytesHeaderParser(policy=compat32).parsebytes(headers.header_block(raw))
    score, reasons = reasons_of(headers.header_text(parsed["X-Spam-Score"]))
    return parsed["X-Spam"], score, [r.code for r in reasons]


def gtube_message() -> bytes:
    return CLEAN.replace(b"Shall we meet at noon?", b"Test " + GTUBE)


def test_a_clean_message_goes_to_inbox_marked_x_spam_no(mta):
    send(mta, CLEAN)
    [(use, raw)] = stored("alice@example.org")
    assert use == SpecialUse.NONE  # INBOX
    assert spam_header(raw) == ("No", 0.0, [])
    # Our headers sit below our Received line, above the sender's own.
    assert raw.startswith(b"Received: ")
    assert raw.index(b"X-Spam: No") < raw.index(b"From: Bob")


def test_gtube_is_refused_at_data_above_the_reject_score_and_nothing_is_stored(mta):
    client = Transcript(mta)
    client.ehlo()
    client.command("MAIL FROM:<sender@remote.example>", replies.S250_SENDER_OK)
    client.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
    client.command("DATA", replies.S354_START_DATA)
    client.send(gtube_message() + b".\r\n")
    client.expect(replies.S550_SPAM_REJECTED)
    client.command("QUIT", replies.S221_BYE)
    client.close()
    assert str(replies.S550_SPAM_REJECTED).startswith("550 5.7.1 ")
    assert stored("alice@example.org") == []


def test_gtube_is_junked_when_under_the_reject_score(mta, settings):
    settings.MAILHOST_SPAM_REJECT_SCORE = 5000
    send(mta, gtube_message())
    [(use, raw)] = stored("alice@example.org")
    assert use == SpecialUse.JUNK
    flag, score, codes = spam_header(raw)
    assert (flag, score, codes) == ("Yes", 1000.0, ["GTUBE"])
    assert b'GTUBE=1000.0 "it contains the GTUBE test string"' in raw


def test_thresholds_decide_inbox_junk_and_refusal(mta, settings):
    # SLOPPY scores 2.0: MISSING_DATE 1, MISSING_MESSAGE_ID 0.5, MISSING_TO 0.5.
    settings.MAILHOST_SPAM_JUNK_SCORE = 2.1
    send(mta, SLOPPY)
    settings.MAILHOST_SPAM_JUNK_SCORE = 2.0
    send(mta, SLOPPY)
    uses = sorted(use for use, _ in stored("alice@example.org"))
    assert uses == sorted([SpecialUse.NONE, SpecialUse.JUNK])
    _, score, codes = spam_header(stored("alice@example.org")[0][1])
    assert score == 2.0
    assert sorted(codes) == ["MISSING_DATE", "MISSING_MESSAGE_ID", "MISSING_TO"]
    settings.MAILHOST_SPAM_REJECT_SCORE = 2.0
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(mta, SLOPPY)
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error.decode() == "5.7.1 Message refused as spam"
    assert len(stored("alice@example.org")) == 2


def test_the_junk_decision_is_per_mailbox_and_an_allow_list_prevents_refusal(mta, settings):
    alice = selectors.mailbox_get("alice@example.org")
    # The From the reader sees (the envelope sender is another address).
    sender_list_add(mailbox=alice, pattern="bob@remote.example", action="allow")
    send(mta, gtube_message(), to=("alice@example.org", "bob@example.org"))
    [(alice_use, raw)] = stored("alice@example.org")
    [(bob_use, _)] = stored("bob@example.org")
    assert (alice_use, bob_use) == (SpecialUse.NONE, SpecialUse.JUNK)
    # Two mailboxes, two verdicts: the shared bytes carry the message's reasons only.
    assert spam_header(raw) == ("Yes", 1000.0, ["GTUBE"])


def test_a_forged_x_spam_yes_from_outside_does_not_junk(mta):
    send(mta, b"X-Spam: Yes\r\n" + CLEAN)
    [(use, _)] = stored("alice@example.org")
    assert use == SpecialUse.NONE


def test_dns_block_and_allow_lists(mta, settings, dns_server):
    dns_server.add("1.0.0.127.bl.test", "A", "127.0.0.2")
    dns_server.add("1.0.0.127.error.test", "A", "127.255.255.254")  # "query refused" code
    dns_server.servfail.add("1.0.0.127.broken.test")
    settings.MAILHOST_DNSBL_ZONES = (("bl.test", 6.0), ("error.test", 6.0), ("broken.test", 6.0))
    send(mta, CLEAN)
    [(use, raw)] = stored("alice@example.org")
    assert use == SpecialUse.JUNK
    assert spam_header(raw) == ("Yes", 6.0, ["DNSBL_bl.test"])
    assert b"is on the block list bl.test (127.0.0.2)" in raw
    assert ("1.0.0.127.bl.test", "A") in dns_server.queries
    assert ("1.0.0.127.broken.test", "A") in dns_server.queries

    dns_server.add("1.0.0.127.wl.test", "A", "127.0.10.0")
    settings.MAILHOST_DNSWL_ZONES = (("wl.test", -3.0),)
    send(mta, CLEAN)
    newest = sorted(stored("alice@example.org"), key=lambda item: len(item[1]))[-1]
    assert newest[0] == SpecialUse.NONE
    assert spam_header(newest[1])[1:] == (3.0, ["DNSBL_bl.test", "DNSWL_wl.test"])


def test_dns_lists_are_off_by_default(mta, settings, dns_server):
    assert settings.MAILHOST_DNSBL_ZONES == () and settings.MAILHOST_DNSWL_ZONES == ()
    send(mta, CLEAN)
    assert dns_server.queries  # the SPF/DMARC checks ask; no DNS list is asked
    assert not [name for name, _ in dns_server.queries if name.startswith("1.0.0.127.")]


def test_submissions_get_no_verdict(live_settings, transactional_db, make_mailbox):
    from delivery.accept import message_accept

    alice = make_mailbox("alice@example.org")
    make_mailbox("bob@example.org")
    result = message_accept(
        raw=gtube_message().replace(b"Bob <bob@remote.example>", b"alice@example.org"),
        mail_from="alice@example.org",
        recipients=["bob@example.org"],
        authenticated_mailbox=alice,
    )
    assert result.accepted
    [(use, raw)] = stored("bob@example.org")
    assert use == SpecialUse.NONE and b"X-Spam" not in raw


def test_authentication_results_count_and_dmarc_quarantine_junks_despite_the_allow_list(
    mta, settings, dns_server
):
    from mailboxes import services

    dns_server.add_txt("remote.example", "v=spf1 -all")
    dns_server.add_txt("_dmarc.remote.example", "v=DMARC1; p=quarantine")
    alice = selectors.mailbox_get("alice@example.org")
    services.sender_list_add(mailbox=alice, pattern="bob@remote.example", action="allow")
    settings.MAILHOST_SPAM_JUNK_SCORE = 50  # the policy, not the score, sends it to Junk
    send(mta, CLEAN)
    [(use, raw)] = stored("alice@example.org")
    assert use == SpecialUse.JUNK
    flag, score, codes = spam_header(raw)
    assert (flag, codes) == ("No", ["SPF_FAIL", "DMARC_QUARANTINE", "ALLOW_LISTED"])
    assert score == 3.0 + 6.0 - 100.0
    assert b"remote.example's DMARC policy says to treat it as junk" in raw
    assert raw.index(b"X-Spam: ") < raw.index(b"Authentication-Results: mx.test.example;")


def test_spf_pass_and_dmarc_pass_take_points_away(mta, dns_server):
    dns_server.add_txt("remote.example", "v=spf1 ip4:127.0.0.1 -all")
    dns_server.add_txt("_dmarc.remote.example", "v=DMARC1; p=reject")
    send(mta, CLEAN)
    [(use, raw)] = stored("alice@example.org")
    assert use == SpecialUse.NONE
    assert spam_header(raw) == ("No", -1.0, ["DMARC_PASS"])
