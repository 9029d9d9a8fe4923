"""Training the per-mailbox classifier by what the user does, and trusting known senders."""

from __future__ import annotations

import imaplib
import smtplib
import time

import pytest

from delivery import housekeeping
from delivery.accept import message_accept
from delivery.models import KnownSender, SpamToken, SpamTraining
from delivery.spam import classifier, verdict
from delivery.spam.classifier import Totals
from delivery.spam.selectors import classifier_totals
from mailboxes import selectors, services
from mailboxes.models import Message, SpecialUse
from mailhost import runner
from tests.support.servers import running

SPAMMY = [
    "cheap replica watches casino bonus, claim your prize now",
    "exclusive casino bonus: winner claim prize, limited offer on replica watches",
    "you are a winner! claim the casino prize and cheap pills today",
    "limited offer cheap pills replica watches casino jackpot winner",
]
HAMMY = [
    "the agenda for tuesday's project review and the quarterly budget",
    "minutes of the project meeting; budget review moves to thursday",
    "draft of the quarterly report for the review, comments welcome",
]


def message(body: str, *, subject: str = "", sender: str = "news@remote.example") -> bytes:
    subject = subject or body.split(",")[0][:40]
    return (
        f"From: {sender}\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
        f"Date: Tue, 5 Mar 2024 10:00:00 +0000\r\nMessage-ID: <{abs(hash(body))}@remote.example>"
        f"\r\n\r\n{body}\r\n"
    ).encode()


def folder_of(address: str, subject: str) -> str:
    mailbox = selectors.mailbox_get(address)
    row = Message.objects.filter(folder__mailbox=mailbox, subject=subject).select_related("folder")
    return row.order_by("-id").first().folder.name


# --- End to end: IMAP MOVE / COPY+EXPUNGE into Junk, then new mail ---------------------------


@pytest.mark.django_db(transaction=True)
def test_moves_into_junk_over_imap_teach_the_classifier_and_similar_mail_goes_to_junk(
    live_settings, make_mailbox
):
    live_settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = True
    make_mailbox("alice@example.org", "secret")
    with running(runner.SMTP, runner.IMAP) as ports:

        def send(raw: bytes) -> None:
            with smtplib.SMTP("127.0.0.1", ports["smtp"], local_hostname="mx.remote.example") as s:
                s.sendmail("news@remote.example", ["alice@example.org"], raw)

        for body in SPAMMY:
            send(message(body, sender="deals@casino.example"))
        for body in HAMMY:
            send(message(body, sender="colleague@work.example"))
        probe = "casino winner: claim your cheap replica prize"
        send(message(probe, subject="before training", sender="offers@prizes.example"))
        assert folder_of("alice@example.org", "before training") == "INBOX"

        imap = imaplib.IMAP4("127.0.0.1", ports["imap"])
        imap.login("alice@example.org", "secret")
        imap.select("INBOX")
        # UIDs 1-4 are the spam: three by MOVE (RFC 6851), one by COPY, STORE and EXPUNGE.
        assert imap.uid("MOVE", "1:3", "Junk")[0] == "OK"
        assert imap.uid("COPY", "4", "Junk")[0] == "OK"
        imap.uid("STORE", "4", "+FLAGS.SILENT", r"(\Deleted)")
        imap.expunge()
        # One ham the user takes out of Junk ("not junk").
        wrongly = message(HAMMY[0], subject="wrongly junked", sender="colleague@work.example")
        imap.append("Junk", None, None, wrongly)
        imap.select("Junk")
        _, data = imap.uid("SEARCH", "SUBJECT", "wrongly")
        assert imap.uid("MOVE", data[0].decode(), "INBOX")[0] == "OK"
        imap.logout()

        alice = selectors.mailbox_get("alice@example.org")
        assert classifier_totals([alice.pk])[alice.pk] == Totals(spam=4, ham=1)
        send(message(probe, subject="after training", sender="offers@prizes.example"))
        ham = message("project review: the budget agenda for thursday", subject="agenda")
        send(ham.replace(b"news@remote.example", b"boss@work.example"))
    assert folder_of("alice@example.org", "after training") == "Junk"
    assert folder_of("alice@example.org", "agenda") == "INBOX"
    junked = Message.objects.get(subject="after training")
    raw = selectors.blob_read(junked.blob_id)
    assert b"X-Spam: Yes" in raw and b"BAYES_SPAM=6.0" in raw


# --- The service, its durability and its rules ----------------------------------------------


@pytest.fixture
def alice(make_mailbox):
    return make_mailbox("alice@example.org")


def deliver(raw: bytes, to: str = "alice@example.org") -> Message:
    services.message_deliver(raw=raw, recipients=[to])
    return Message.objects.order_by("-id").first()


def folder(mailbox, use: str):
    if use == "INBOX":
        return selectors.folder_get(mailbox, "INBOX")
    return selectors.folder_by_special_use(mailbox, use)


@pytest.mark.django_db
def test_training_left_by_a_crash_after_the_commit_is_done_by_housekeeping(alice):
    # A django_db test never commits, so on_commit never runs: as when the process dies
    # between the move's commit and the training.
    m = deliver(message(SPAMMY[0]))
    services.messages_move(
        source=folder(alice, "INBOX"), uids=[m.uid], target=folder(alice, SpecialUse.JUNK)
    )
    assert list(SpamTraining.objects.values_list("spam", "trained")) == [(True, None)]
    assert not SpamToken.objects.exists()
    housekeeping.housekeep()
    assert list(SpamTraining.objects.values_list("spam", "trained")) == [(True, True)]
    assert classifier_totals([alice.pk])[alice.pk] == Totals(spam=1, ham=0)
    tokens = SpamToken.objects.filter(mailbox=alice).exclude(token=0)
    assert tokens.count() > 10 and set(tokens.values_list("spam", "ham")) == {(1, 0)}
    housekeeping.housekeep()  # twice is harmless
    assert classifier_totals([alice.pk])[alice.pk] == Totals(spam=1, ham=0)


@pytest.mark.django_db
def test_out_of_junk_retrains_as_ham_once_and_trusts_the_sender(alice):
    m = deliver(message(SPAMMY[0], sender="friend@remote.example"))
    inbox, junk = folder(alice, "INBOX"), folder(alice, SpecialUse.JUNK)
    [(_, in_junk)] = services.messages_move(source=inbox, uids=[m.uid], target=junk)
    housekeeping.housekeep()
    services.messages_move(source=junk, uids=[in_junk], target=inbox)
    housekeeping.housekeep()
    assert classifier_totals([alice.pk])[alice.pk] == Totals(spam=0, ham=1)
    tokens = SpamToken.objects.filter(mailbox=alice).exclude(token=0)
    assert set(tokens.values_list("spam", "ham")) == {(0, 1)}
    assert list(KnownSender.objects.values_list("address", "source")) == [
        ("friend@remote.example", "not_junk")
    ]


@pytest.mark.django_db
def test_deleting_junk_to_trash_and_moves_elsewhere_do_not_train(alice):
    m = deliver(message(SPAMMY[0]))
    inbox, junk = folder(alice, "INBOX"), folder(alice, SpecialUse.JUNK)
    trash, archive = folder(alice, SpecialUse.TRASH), folder(alice, SpecialUse.ARCHIVE)
    [(_, uid)] = services.messages_copy(source=inbox, uids=[m.uid], target=archive)
    assert not SpamTraining.objects.exists()
    services.messages_move(source=archive, uids=[uid], target=junk)
    housekeeping.housekeep()
    junk_uid = Message.objects.get(folder=junk).uid
    services.messages_move(source=junk, uids=[junk_uid], target=trash)
    housekeeping.housekeep()
    assert list(SpamTraining.objects.values_list("spam", "trained")) == [(True, True)]


@pytest.mark.django_db
def test_spam_train_takes_message_ids_as_the_webmail_gives_them(alice):
    m = deliver(message(SPAMMY[1]))
    other = deliver(message(HAMMY[0]))
    services.spam_train(mailbox=alice, message_ids=[m.pk], spam=True)
    services.spam_train(mailbox=alice.pk, message_ids=[other.pk], spam=False)
    services.spam_train(mailbox=alice, message_ids=[other.pk], spam=False)  # again: no change
    housekeeping.housekeep()
    assert classifier_totals([alice.pk])[alice.pk] == Totals(spam=1, ham=1)


@pytest.mark.django_db
def test_a_mailbox_trusts_whom_it_wrote_to(alice, make_mailbox):
    bob = make_mailbox("bob@example.org")
    message_accept(
        raw=b"From: alice@example.org\r\nTo: pen.pal@remote.example\r\nSubject: hi\r\n\r\nhi\r\n",
        mail_from="alice@example.org",
        recipients=["pen.pal@remote.example"],
        authenticated_mailbox=alice,
    )
    assert list(KnownSender.objects.values_list("mailbox_id", "address", "source")) == [
        (alice.pk, "pen.pal@remote.example", "wrote_to")
    ]
    result = verdict(
        raw=message("hello again", sender="Pen.Pal@remote.example"),
        auth=None,
        client_ip="192.0.2.1",
        helo="mx.remote.example",
        mail_from="pen.pal@remote.example",
        mailbox_ids=[alice.pk, bob.pk],
    )
    assert [r.code for r in result.reasons_for(alice.pk)] == ["KNOWN_SENDER_UNVERIFIED"]
    assert result.score_for(alice.pk) == -1.5 and result.score_for(bob.pk) == 0.0


# --- The classifier alone -------------------------------------------------------------------


def test_fisher_combining_separates_spam_and_ham_clues():
    totals = Totals(spam=10, ham=10)
    spammy = [(9, 0)] * 20 + [(5, 5)] * 30
    hammy = [(0, 9)] * 20 + [(5, 5)] * 30
    assert classifier.spam_probability(spammy, totals)[0] > 0.99
    assert classifier.spam_probability(hammy, totals)[0] < 0.01
    assert classifier.spam_probability([(5, 5)] * 50, totals) == (0.5, 0)  # no clues
    # A token seen once is pulled towards 0.5 (Robinson's s and x).
    once, often = (classifier.token_probability(n, 0, totals) for n in (1, 10))
    assert 0.5 < once < often < 1.0 and round(once, 3) == round(1.225 / 1.45, 3)
    assert not Totals(spam=1, ham=5).ready and Totals(spam=2, ham=1).ready


@pytest.mark.django_db(transaction=True)
def test_a_large_move_into_junk_is_trained_in_the_background(alice, monkeypatch):
    from delivery.spam import services as spam_services

    monkeypatch.setattr(spam_services, "TRAIN_INLINE", 5)
    for n in range(12):
        deliver(message(f"{SPAMMY[n % len(SPAMMY)]} number {n}"))
    inbox, junk = folder(alice, "INBOX"), folder(alice, SpecialUse.JUNK)
    uids = list(Message.objects.filter(folder=inbox).values_list("uid", flat=True))
    services.messages_move(source=inbox, uids=uids, target=junk)
    deadline = time.monotonic() + 20
    while classifier_totals([alice.pk]).get(alice.pk) != Totals(spam=12, ham=0):
        assert time.monotonic() < deadline, classifier_totals([alice.pk])
        time.sleep(0.05)


@pytest.mark.django_db
def test_an_unreachable_rspamd_leaves_training_pending_and_is_asked_once(alice, settings, caplog):
    from bench.mailhost_process import free_port

    settings.MAILHOST_SPAM_BACKEND = "rspamd"
    settings.MAILHOST_RSPAMD_URL = f"http://127.0.0.1:{free_port()}"
    rows = [deliver(message(f"{SPAMMY[0]} {n}")) for n in range(3)]
    services.spam_train(mailbox=alice, message_ids=[r.pk for r in rows], spam=True)
    housekeeping.housekeep()
    assert list(SpamTraining.objects.values_list("trained", flat=True)) == [None] * 3
    assert caplog.text.count("spam_train deferred") == 1  # not one timeout per row
    assert not SpamToken.objects.exists()  # the builtin counts are not touched


@pytest.mark.django_db
def test_a_reply_teaches_ham(alice):
    wanted = deliver(message(HAMMY[1], sender="colleague@work.example"))
    junked = deliver(message(SPAMMY[1]))
    inbox, junk = folder(alice, "INBOX"), folder(alice, SpecialUse.JUNK)
    [(_, in_junk)] = services.messages_move(source=inbox, uids=[junked.uid], target=junk)
    services.messages_store_flags(folder=inbox, uids=[wanted.uid], flags=["\\Seen"], mode="add")
    assert not SpamTraining.objects.filter(spam=False).exists()  # reading says nothing
    services.messages_store_flags(folder=inbox, uids=[wanted.uid], flags=["\\Answered"], mode="add")
    services.messages_store_flags(
        folder=inbox, uids=[wanted.uid], flags=["\\Answered", "\\Seen"], mode="replace"
    )  # already answered: nothing more
    services.messages_store_flags(folder=junk, uids=[in_junk], flags=["\\Answered"], mode="add")
    housekeeping.housekeep()
    assert classifier_totals([alice.pk])[alice.pk] == Totals(spam=1, ham=1)
    assert list(KnownSender.objects.values_list("address", flat=True)) == ["colleague@work.example"]


@pytest.mark.django_db(transaction=True)
def test_a_reply_flagged_over_imap_teaches_ham_after_the_store_answers(live_settings, make_mailbox):
    # IMAP's STORE hands the training to the reply trainer's thread: the OK does not wait.
    live_settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = True
    alice = make_mailbox("alice@example.org", "secret")
    deliver(message(HAMMY[1], sender="colleague@work.example"))
    deliver(message(SPAMMY[1], sender="deals@casino.example"))
    with running(runner.IMAP) as ports:
        imap = imaplib.IMAP4("127.0.0.1", ports["imap"])
        imap.login("alice@example.org", "secret")
        imap.select("INBOX")
        assert imap.uid("MOVE", "2", "Junk")[0] == "OK"
        assert imap.uid("STORE", "1", "+FLAGS.SILENT", r"(\Answered)")[0] == "OK"
        imap.select("Junk")
        assert imap.uid("STORE", "1:*", "+FLAGS.SILENT", r"(\Answered)")[0] == "OK"
        imap.logout()
        assert services.reply_trainer.drain()
    assert classifier_totals([alice.pk])[alice.pk] == Totals(spam=1, ham=1)
    assert list(SpamTraining.objects.order_by("id").values_list("spam", "trained")) == [
        (True, True),
        (False, False),
    ]
    assert list(KnownSender.objects.values_list("address", flat=True)) == ["colleague@work.example"]


@pytest.mark.django_db
def test_mail_filed_in_sent_trusts_its_recipients(alice):
    sent = folder(alice, SpecialUse.SENT)
    raw = (
        b"From: alice@example.org\r\nTo: Ann <Ann@Friends.Example>, bob@work.example\r\n"
        b"Cc: carol@work.example\r\nSubject: hi\r\n\r\nhi\r\n"
    )
    services.message_append(folder=sent, raw=raw)
    services.message_append(folder=folder(alice, "INBOX"), raw=raw.replace(b"bob", b"dave"))
    assert sorted(KnownSender.objects.values_list("address", "source")) == [
        ("ann@friends.example", "wrote_to"),
        ("bob@work.example", "wrote_to"),
        ("carol@work.example", "wrote_to"),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_known_sender_committed_is_not_written_again(alice, django_assert_num_queries):
    """Every submission records its recipients; a pair this process saw committed costs no
    INSERT the next time, and a pair whose transaction rolled back is written again."""
    from django.db import transaction

    from delivery.spam.services import known_senders_add

    with pytest.raises(RuntimeError), transaction.atomic():
        known_senders_add(mailbox_id=alice.pk, addresses=["Pal@Remote.Example"], source="wrote_to")
        raise RuntimeError("rolled back")
    assert not KnownSender.objects.exists()
    with django_assert_num_queries(1):
        known_senders_add(mailbox_id=alice.pk, addresses=["pal@remote.example"], source="wrote_to")
    with django_assert_num_queries(0):
        known_senders_add(mailbox_id=alice.pk, addresses=[" PAL@remote.example"], source="wrote_to")
    with django_assert_num_queries(1):  # the new one only
        known_senders_add(
            mailbox_id=alice.pk,
            addresses=["pal@remote.example", "other@remote.example"],
            source="wrote_to",
        )
    assert sorted(KnownSender.objects.values_list("address", flat=True)) == [
        "other@remote.example",
        "pal@remote.example",
    ]
