""" "Why is this junk?" and the Junk / Not junk buttons.

The verdict is read from the stored header: our Authentication-Results (RFC 8601) and the
spam scorer's X-Spam / X-Spam-Score. Messages reach Junk through the real delivery agent
(X-Spam: Yes files into Junk)."""

from __future__ import annotations

import pytest

from delivery.inbound.results import ARCResult, AuthResults, DMARCResult, SPFResult
from delivery.models import SpamTraining
from mailboxes import selectors, services
from mailboxes.models import Message, SenderListEntry
from tests.webmail.conftest import deliver, folder, make_raw
from webmail import junk

HOST = "mx.test.example"


def auth_header(policy: str = "quarantine", authserv_id: str = HOST) -> bytes:
    """The Authentication-Results field delivery.inbound writes for a spoof of paypal.com
    from 192.0.2.7 (its own dataclasses and formatter: the webmail reads what it writes)."""
    results = AuthResults(
        authserv_id,
        SPFResult("fail", "mailfrom", "paypal.com", "service@paypal.com"),
        SPFResult("none", "helo"),
        (),
        ARCResult("none"),
        DMARCResult("fail", "paypal.com", policy=policy, disposition="quarantine"),
        "192.0.2.7",
    )
    return results.header()


SPAM_HEADER = (
    b"X-Spam: Yes\r\n"
    b"X-Spam-Score: 9.5 (DMARC_FAIL_QUARANTINE=6.0, SPF_FAIL=3.0, URI_SHORTENER=0.7,"
    b" KNOWN_SENDER=-0.2)\r\n"
)
DMARC_WORDS = "Claims to be from paypal.com but paypal.com's DMARC policy sends it to Junk."
SPF_WORDS = "Sent from 192.0.2.7, which paypal.com does not allow to send its mail."


def spoofed_raw(**kwargs) -> bytes:
    kwargs.setdefault("sender", "PayPal <service@paypal.com>")
    kwargs.setdefault("subject", "Your account is limited")
    outside = b"Authentication-Results: other.example; dmarc=pass header.from=paypal.com\r\n"
    return auth_header() + outside + SPAM_HEADER + make_raw(**kwargs)


def test_parse_spam_score():
    assert junk.parse_spam_score("9.5 (GTUBE=1000, A_B=-1.5)") == (
        9.5,
        [("GTUBE", 1000.0), ("A_B", -1.5)],
    )
    assert junk.parse_spam_score("-2 HAM(-2.0) X:1") == (-2.0, [("HAM", -2.0), ("X", 1.0)])
    assert junk.parse_spam_score("") == (None, [])


def test_explain_in_plain_words_from_our_header_only():
    found = junk.explain(spoofed_raw(), authserv_id=HOST)
    assert found.spam is True and found.score == 9.5
    # Spam reasons first, largest score first, in the words delivery.inbound gives the
    # authentication reasons; then the authentication reasons the scorer did not list.
    assert [(f.code, f.tone, f.words) for f in found.findings] == [
        ("DMARC_FAIL_QUARANTINE", junk.BAD, DMARC_WORDS),
        ("SPF_FAIL", junk.BAD, SPF_WORDS),
        ("URI_SHORTENER", junk.BAD, "Uri shortener."),
        ("KNOWN_SENDER", junk.GOOD, "Known sender."),
        ("DKIM_NONE", junk.INFO, "Is not signed (DKIM)."),
    ]
    # The other server's "dmarc=pass" is not believed; nor is a field under another id.
    assert not any("really comes from" in f.words.lower() for f in found.findings)
    other = junk.explain(auth_header(authserv_id="mx.other") + make_raw(), authserv_id=HOST)
    assert other.findings == [] and other.spam is None


def test_explain_dmarc_reject_in_the_issues_words():
    found = junk.explain(auth_header("reject") + make_raw(), authserv_id=HOST)
    assert found.findings[0].words == (
        "Claims to be from paypal.com but paypal.com's DMARC policy rejects it."
    )


@pytest.fixture
def host(settings):
    settings.MAILHOST_HOSTNAME = HOST


def test_junk_message_page_says_why(web, alice, host):
    deliver(spoofed_raw())
    junk_folder = folder(alice, "Junk")
    assert junk_folder.message_count == 1
    page = web.get(f"/m/{junk_folder.pk}/1/").content.decode()
    assert 'data-test="why-junk"' in page
    assert "paypal.com&#x27;s DMARC policy sends it to Junk" in page
    assert 'data-test="notjunk"' in page and 'data-test="junk"' not in page


def test_inbox_message_has_junk_button_and_no_explanation(web, alice, inbox, host):
    deliver(make_raw())
    page = web.get(f"/m/{inbox.pk}/1/").content.decode()
    assert 'data-test="junk"' in page
    assert 'data-test="why-junk"' not in page and 'data-test="notjunk"' not in page
    sent = folder(alice, "Sent")
    listing = web.get(f"/f/{sent.pk}/").content.decode()
    assert 'value="junk"' not in listing


def test_junk_without_a_verdict_and_a_blocked_sender(web, alice, inbox, host):
    services.sender_list_add(mailbox=alice, pattern="carol@remote.example", action="block")
    deliver(make_raw())
    web.post(f"/f/{inbox.pk}/bulk/", {"action": "junk", "uid": ["1"]})
    junk_folder = folder(alice, "Junk")
    page = web.get(f"/m/{junk_folder.pk}/1/").content.decode()
    assert "carol@remote.example is on the block list" in page
    services.sender_list_remove(mailbox=alice, entry_id=SenderListEntry.objects.get().pk)
    page = web.get(f"/m/{junk_folder.pk}/1/").content.decode()
    assert 'data-test="no-verdict"' in page


def trained() -> list[tuple[int, int, bool]]:
    """What the moves asked the spam filter to learn: (mailbox id, blob id, spam) of each
    SpamTraining row (delivery.spam trains them once the move commits)."""
    rows = SpamTraining.objects.order_by("id").values_list("mailbox_id", "blob_id", "spam")
    return list(rows)


def test_not_junk_moves_to_inbox_trusts_sender_and_trains_ham(web, alice, bob, inbox, host):
    deliver(spoofed_raw(sender="Ann <Ann@Friends.Example>"), "alice@example.org", "bob@example.org")
    junk_folder = folder(alice, "Junk")
    response = web.post(
        f"/f/{junk_folder.pk}/bulk/",
        {"action": "notjunk", "uid": ["1"], "next": f"/m/{junk_folder.pk}/1/"},
    )
    assert response.status_code == 302 and response["Location"] == f"/f/{junk_folder.pk}/"
    moved = Message.objects.get(folder=inbox)
    assert folder(alice, "Junk").message_count == 0
    assert selectors.sender_lists([alice.pk, bob.pk], "ann@friends.example") == {
        alice.pk: "allow",
        bob.pk: None,
    }
    assert trained() == [(alice.pk, moved.blob_id, False)]
    page = web.get(f"/f/{junk_folder.pk}/", follow=True).content.decode()
    assert "Mail from ann@friends.example will not go to Junk again." in page


def test_junk_button_moves_to_junk_and_trains_spam(web, alice, inbox, host):
    deliver(make_raw())
    web.post(f"/f/{inbox.pk}/bulk/", {"action": "junk", "uid": ["1"]})
    moved = Message.objects.get(folder=folder(alice, "Junk"))
    assert trained() == [(alice.pk, moved.blob_id, True)]
    assert not SenderListEntry.objects.exists()


def test_not_junk_only_from_junk(web, alice, inbox, host):
    deliver(make_raw())
    response = web.post(f"/f/{inbox.pk}/bulk/", {"action": "notjunk", "uid": ["1"]}, follow=True)
    assert b"Only messages in Junk" in response.content
    assert inbox.messages.count() == 1 and trained() == []


def test_explains_the_header_delivery_spam_writes_with_its_own_words(settings):
    from delivery.spam import Reason, render_headers

    settings.MAILHOST_SPAM_JUNK_SCORE = 5.0
    written = render_headers(
        9.0,
        [
            Reason("DNSBL_bl.test", 6.0, "the sending server 192.0.2.7 is on bl.test (127.0.0.2)"),
            Reason("BAYES_LIKELY_SPAM", 3.0, "your junk filter learned that mail like this is"),
        ],
    )
    explained = junk.explain(written + b"Subject: x\r\n\r\nbody\r\n", authserv_id=HOST)
    assert explained.spam is True and explained.score == 9.0
    assert [(f.code, f.score, f.words) for f in explained.findings] == [
        ("DNSBL_bl.test", 6.0, "The sending server 192.0.2.7 is on bl.test (127.0.0.2)."),
        ("BAYES_LIKELY_SPAM", 3.0, "Your junk filter learned that mail like this is."),
    ]


def test_junk_by_the_mailboxs_own_filter_says_so(web, alice, host):
    """A message whose shared verdict is "No" but that this mailbox's filter junked."""
    deliver(b"X-Spam: No\r\nX-Spam-Score: -1.0 (DMARC_PASS=-1.0)\r\n" + make_raw())
    inbox_folder = folder(alice, "INBOX")
    web.post(f"/f/{inbox_folder.pk}/bulk/", {"action": "junk", "uid": ["1"]})
    page = web.get(f"/m/{folder(alice, 'Junk').pk}/1/").content.decode()
    assert 'data-code="mailbox"' in page
    assert "your junk filter (which learns from what you move to Junk)" in page
