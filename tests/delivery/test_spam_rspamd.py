"""The rspamd backend against a real rspamd (Debian's package), started by the tests."""

from __future__ import annotations

import imaplib
import smtplib

import pytest

from delivery.models import SpamTraining
from delivery.spam import reasons_of
from mailboxes import headers, selectors
from mailboxes.models import Message, SpecialUse
from mailhost import runner
from tests.support.rspamd import MISSING, running_rspamd
from tests.support.servers import running

pytestmark = [
    pytest.mark.skipif(bool(MISSING), reason=MISSING or "rspamd is installed"),
    pytest.mark.django_db(transaction=True),
]

SPAMMY = [
    "Claim your casino prize now, winner of cheap replica watches, limited offer {n} today",
    "Casino jackpot winner {n}: claim the prize, cheap replica watches, limited offer today",
    "Limited offer {n}: cheap replica watches and a casino prize for every winner, claim now",
    "Winner {n}! Your casino prize waits: claim now, cheap replica watches, limited offer",
    "Cheap replica watches, limited offer {n}: claim your casino prize today, every winner",
]
HAM = "Minutes of the project meeting: the budget review moves to Thursday, agenda attached"


def message(body: str, *, n: int, sender: str, date: bool = True) -> bytes:
    lines = [
        f"From: {sender}",
        "To: alice@example.org",
        f"Subject: {body[:30]}",
        f"Message-ID: <m{n}.{len(body)}@remote.example>",
    ]
    if date:
        lines.append("Date: Tue, 5 Mar 2024 10:00:00 +0000")
    return ("\r\n".join(lines) + "\r\n\r\n" + body.format(n=n) + "\r\n").encode()


@pytest.fixture(scope="module")
def rspamd(tmp_path_factory):
    with running_rspamd(tmp_path_factory.mktemp("rspamd")) as server:
        yield server


@pytest.fixture
def servers(live_settings, make_mailbox, rspamd):
    live_settings.MAILHOST_SPAM_BACKEND = "rspamd"
    live_settings.MAILHOST_RSPAMD_URL = rspamd.url
    live_settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = True
    make_mailbox("alice@example.org", "secret")
    with running(runner.SMTP, runner.IMAP) as ports:
        yield ports


def send(ports, raw: bytes) -> Message:
    with smtplib.SMTP("127.0.0.1", ports["smtp"], local_hostname="mx.remote.example") as client:
        client.sendmail("news@remote.example", ["alice@example.org"], raw)
    return Message.objects.order_by("-id").select_related("folder").first()


def verdict_of(row: Message) -> tuple[str, float, dict[str, float]]:
    raw = selectors.blob_read(row.blob_id)
    parsed = headers.BytesHeaderParser(policy=headers.compat32).parsebytes(
        headers.header_block(raw)
    )
    score, reasons = reasons_of(headers.header_text(parsed["X-Spam-Score"]))
    return parsed["X-Spam"], score, {r.code: r.score for r in reasons}


def test_rspamd_scores_the_message_with_its_own_symbols(servers):
    row = send(servers, message(HAM, n=1, sender="colleague@work.example", date=False))
    flag, score, codes = verdict_of(row)
    # rspamd's MISSING_DATE rule (1 point in its Lua rules), with its description as words.
    assert flag == "No" and codes.get("MISSING_DATE") == 1.0 and score >= 1.0
    raw = selectors.blob_read(row.blob_id)
    assert b'MISSING_DATE=1.0 "Message date is missing"' in raw
    assert row.folder.name == "INBOX"


def test_moves_to_junk_teach_rspamd_and_similar_mail_then_goes_to_junk(servers, rspamd, settings):
    # rspamd weighs BAYES_SPAM by its certainty (5.1 points at 100%): after a few examples
    # it is not yet sure (1.8 to 3.5 points here, as the Received fields vary), so the junk
    # threshold sits above what these messages score without it (DATE_IN_PAST, 1 point).
    settings.MAILHOST_SPAM_JUNK_SCORE = 1.5
    learned_before = rspamd.stat()["learned"]
    before = send(servers, message(SPAMMY[0], n=6, sender="offers@prizes.example"))
    assert "BAYES_SPAM" not in verdict_of(before)[2] and before.folder.name == "INBOX"
    rows = [send(servers, message(b, n=i, sender=f"deals{i}@casino.example"))
            for i, b in enumerate(SPAMMY)]  # fmt: skip
    ham = send(servers, message(HAM, n=9, sender="colleague@work.example"))
    assert {r.folder.name for r in [*rows, ham]} == {"INBOX"}, [verdict_of(r) for r in rows]

    imap = imaplib.IMAP4("127.0.0.1", servers["imap"])
    imap.login("alice@example.org", "secret")
    imap.select("INBOX")
    uids = ",".join(str(r.uid) for r in rows)
    assert imap.uid("MOVE", uids, "Junk")[0] == "OK"
    # The ham goes into Junk and back out ("not junk"): rspamd relearns it as ham.
    assert imap.uid("MOVE", str(ham.uid), "Junk")[0] == "OK"
    imap.select("Junk")
    _, found = imap.uid("SEARCH", "SUBJECT", "Minutes")
    assert imap.uid("MOVE", found[0].decode(), "INBOX")[0] == "OK"
    imap.logout()

    trained = sorted(SpamTraining.objects.values_list("spam", "trained"))
    assert trained == [(False, False)] + [(True, True)] * len(SPAMMY)
    assert rspamd.stat()["learned"] >= learned_before + len(SPAMMY) + 1  # accepted by rspamd

    probe = send(servers, message(SPAMMY[0], n=7, sender="offers@prizes.example"))
    flag, score, codes = verdict_of(probe)
    assert 0 < codes.get("BAYES_SPAM", 0) <= 5.1, codes
    assert (flag, score >= 1.5) == ("Yes", True), (score, codes)
    assert probe.folder.special_use == SpecialUse.JUNK


def test_an_unreachable_rspamd_never_holds_mail_up(servers, settings, caplog):
    from bench.mailhost_process import free_port

    settings.MAILHOST_RSPAMD_URL = f"http://127.0.0.1:{free_port()}"
    row = send(servers, message(HAM, n=3, sender="colleague@work.example"))
    assert row.folder.name == "INBOX"
    assert verdict_of(row)[:2] == ("No", 0.0)
    assert "spam_backend_unavailable backend=rspamd" in caplog.text


def test_the_envelope_reaches_rspamd(rspamd, settings):
    from delivery.spam import rspamd as client

    settings.MAILHOST_RSPAMD_URL = rspamd.url
    raw = message(HAM, n=11, sender="colleague@work.example")
    envelope = dict(raw=raw, client_ip="192.0.2.7", helo="mx.work.example")
    told = client.check(**envelope, mail_from="colleague@work.example", recipients=[
        "alice@example.org"
    ], queue_id="Q1")  # fmt: skip
    assert {"FROM_EQ_ENVFROM", "TO_MATCH_ENVRCPT_ALL"} <= set(told["symbols"]), told["symbols"]
    untold = client.check(**envelope, mail_from="", recipients=[])
    assert not {"FROM_EQ_ENVFROM", "TO_MATCH_ENVRCPT_ALL"} & set(untold["symbols"])
