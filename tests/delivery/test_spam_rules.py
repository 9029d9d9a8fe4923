"""The builtin scorer's rules one by one, on byte literals (no socket, no DNS lists)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from delivery.spam import Reason, SpamVerdict, dnsbl, reasons_of, render_headers, verdict

CLEAN = (
    b"From: Bob <bob@remote.example>\r\nTo: alice@example.org\r\nSubject: Lunch\r\n"
    b"Date: Tue, 5 Mar 2024 10:00:00 +0000\r\nMessage-ID: <l1@remote.example>\r\n\r\nHi.\r\n"
)


def codes(raw: bytes, *, helo: str = "mx.remote.example", auth=None) -> dict[str, float]:  # noqa: ANN001
    result = verdict(
        raw=raw, auth=auth, client_ip="192.0.2.1", helo=helo, mail_from="", mailbox_ids=[]
    )
    return {r.code: r.score for r in result.reasons}


pytestmark = pytest.mark.django_db


def test_a_clean_message_has_no_reasons():
    assert codes(CLEAN) == {}


@pytest.mark.parametrize(
    ("change", "code", "points"),
    [
        ((b"Subject: Lunch", b"Subject: YOU HAVE WON A PRIZE"), "SUBJECT_ALL_CAPS", 1.0),
        (
            (b"From: Bob <bob@remote.example>", b'From: "service@paypal.com" <x@evil.example>'),
            "FROM_NAME_OTHER_DOMAIN",
            2.0,
        ),
        ((b"Hi.", b"See http://203.0.113.9/login now"), "URL_BARE_IP", 1.5),
        ((b"Date: Tue, 5 Mar 2024 10:00:00 +0000\r\n", b""), "MISSING_DATE", 1.0),
        ((b"Message-ID: <l1@remote.example>\r\n", b""), "MISSING_MESSAGE_ID", 0.5),
        ((b"To: alice@example.org\r\n", b""), "MISSING_TO", 0.5),
        ((b"From: Bob <bob@remote.example>\r\n", b""), "MISSING_FROM", 2.0),
        (
            (b"\r\n\r\nHi.", b"\r\nContent-Type: text/html\r\n\r\n<p>Hi.</p>"),
            "HTML_ONLY",
            0.5,
        ),
    ],
)
def test_each_heuristic(change, code, points):
    assert codes(CLEAN.replace(*change)) == {code: points}


def test_the_helo_rule_takes_names_and_address_literals():
    assert codes(CLEAN, helo="[192.0.2.1]") == {}
    assert codes(CLEAN, helo="[IPv6:2001:db8::1]") == {}
    assert codes(CLEAN, helo="localhost") == {"HELO_NOT_FQDN": 1.0}
    assert codes(CLEAN, helo="[not-an-address]") == {"HELO_NOT_FQDN": 1.0}


@dataclass
class Part:
    result: str
    domain: str = ""
    disposition: str = "none"


@dataclass
class Auth:  # the shape of delivery.inbound's AuthResults that the scorer reads
    spf: Part = field(default_factory=lambda: Part("none"))
    dkim: tuple = ()
    dmarc: Part = field(default_factory=lambda: Part("none"))


def test_authentication_results():
    assert codes(CLEAN, auth=Auth(spf=Part("fail", "remote.example"))) == {"SPF_FAIL": 3.0}
    assert codes(CLEAN, auth=Auth(spf=Part("softfail"))) == {"SPF_SOFTFAIL": 1.0}
    assert codes(CLEAN, auth=Auth(dkim=(Part("fail"), Part("pass")))) == {"DKIM_VALID": -0.5}
    assert codes(CLEAN, auth=Auth(dkim=(Part("fail"),))) == {"DKIM_INVALID": 1.0}
    fail = Part("fail", "bank.example", "quarantine")
    assert codes(CLEAN, auth=Auth(dmarc=fail)) == {"DMARC_QUARANTINE": 6.0}
    assert codes(CLEAN, auth=Auth(dmarc=Part("fail", "b.example", "reject"))) == {
        "DMARC_REJECT": 10.0
    }
    assert codes(CLEAN, auth=Auth(dmarc=Part("fail"))) == {"DMARC_FAIL": 1.5}
    assert codes(CLEAN, auth=Auth(dmarc=Part("pass", "remote.example"))) == {"DMARC_PASS": -1.0}


def test_dnsbl_query_names_rfc_5782():
    assert dnsbl.query_name("192.0.2.99", "bl.test") == "99.2.0.192.bl.test"
    assert dnsbl.query_name("::ffff:192.0.2.99", "bl.test") == "99.2.0.192.bl.test"
    v6 = dnsbl.query_name("2001:db8:1:2:3:4:567:89ab", "bl.test")
    assert v6 == "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test"
    assert dnsbl.query_name("", "bl.test") is None


def test_the_header_reads_back_and_stays_ascii(settings):
    settings.MAILHOST_SPAM_JUNK_SCORE = 5.0
    reasons = [Reason("X", 6.0, 'a "quoted" word, \\\\ and ümlaut'), Reason("Y", -0.5, "fine")]
    header = render_headers(5.5, reasons)
    assert header.isascii()
    name, _, value = header.decode().partition("\r\nX-Spam-Score: ")
    assert name == "X-Spam: Yes"
    score, back = reasons_of(value.replace("\r\n\t", " "))
    assert score == 5.5 and [(r.code, r.score) for r in back] == [("X", 6.0), ("Y", -0.5)]
    assert back[0].words == "a ?quoted? word, ?? and ?mlaut"


def test_per_mailbox_decisions(settings):
    settings.MAILHOST_SPAM_JUNK_SCORE = 5.0
    settings.MAILHOST_SPAM_REJECT_SCORE = 15.0
    base = [Reason("R", 4.0, "")]
    result = SpamVerdict(
        base,
        {
            1: [],
            2: [Reason("BAYES_SPAM", 6.0, "")],
            3: [Reason("BLOCK_LISTED", 100.0, "")],
            4: [Reason("ALLOW_LISTED", -100.0, "")],
        },
    )
    assert result.junk_mailbox_ids == {2, 3}
    assert (result.score_for(1), result.score_for(2)) == (4.0, 10.0)
    assert result.score == 4.0 and not result.reject  # several mailboxes: the message's
    single = SpamVerdict([Reason("GTUBE", 1000.0, "")], {7: []})
    assert single.reject and single.is_spam
    allowed = SpamVerdict(
        [Reason("GTUBE", 1000.0, "")], {7: [], 8: [Reason("ALLOW_LISTED", -100, "")]}
    )
    assert not allowed.reject and allowed.junk_mailbox_ids == {7}


def test_x_spam_says_what_happened_to_the_one_mailbox(settings):
    settings.MAILHOST_SPAM_JUNK_SCORE = 5.0
    gtube = [Reason("GTUBE", 1000.0, "")]
    allowed = SpamVerdict(gtube, {7: [Reason("ALLOW_LISTED", -100.0, "")]})
    assert not allowed.is_spam and allowed.headers().startswith(b"X-Spam: No\r\n")
    blocked = SpamVerdict([], {7: [Reason("BLOCK_LISTED", 100.0, "")]})
    assert blocked.is_spam and blocked.headers().startswith(b"X-Spam: Yes\r\n")


def test_a_verdict_works_its_score_and_junk_out_once(settings, monkeypatch):
    """Port 25 asks a verdict for its headers, its Junk mailboxes, is_spam and the log line's
    score: each mailbox's score is summed once, not at each question."""
    settings.MAILHOST_SPAM_JUNK_SCORE = 5.0
    summed = []
    result = SpamVerdict([Reason("R", 4.0, "")], {7: [Reason("BAYES_SPAM", 6.0, "")]})
    score_for = SpamVerdict.score_for
    monkeypatch.setattr(
        SpamVerdict, "score_for", lambda self, m: summed.append(m) or score_for(self, m)
    )
    assert result.headers().startswith(b"X-Spam: Yes\r\nX-Spam-Score: 10.0")
    assert result.is_spam and result.junk_mailbox_ids == {7} and result.score == 10.0
    assert summed == [7]


def test_dns_lists_that_do_not_answer_cost_at_most_the_check_timeout(settings, caplog):
    import socket
    import time

    from delivery import dns

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a resolver that never answers
    silent.bind(("127.0.0.1", 0))
    try:
        settings.MAILHOST_DNS_SERVERS = [("127.0.0.1", silent.getsockname()[1])]
        settings.MAILHOST_DNS_TIMEOUT = 1.5
        settings.MAILHOST_INBOUND_CHECK_TIMEOUT = 0.3
        settings.MAILHOST_DNSBL_ZONES = (("bl.test", 6.0), ("other.test", 6.0))
        dns.forget_resolvers()
        started = time.monotonic()
        assert codes(CLEAN) == {}
        assert time.monotonic() - started < 1.0
        assert "dnsbl_lookup_failed zone=bl.test error=timeout" in caplog.text
        time.sleep(1.7)  # the abandoned lookups end (and log) while the test still listens
    finally:
        silent.close()
        dns.forget_resolvers()


def test_a_bare_ip_link_is_found_in_any_case():
    assert codes(CLEAN.replace(b"Hi.", b"See HTTPS://[2001:db8::1]/x")) == {"URL_BARE_IP": 1.5}


def test_a_text_without_a_link_is_not_searched_for_one(monkeypatch):
    from delivery.spam import builtin

    searched = []
    monkeypatch.setattr(builtin, "_URL_IP", SimpleNamespace(search=searched.append))
    assert codes(CLEAN.replace(b"Hi.", b"Hi. " * 500)) == {}
    assert searched == []
