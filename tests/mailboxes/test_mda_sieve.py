"""Sieve scripts at delivery, as transcripts: the script, the message, and what became of it
(folders, flags, spooled messages), through message_accept and message_deliver as SMTP and
the delivery worker call them."""

from __future__ import annotations

import email
from email import policy

import pytest

from delivery.accept import message_accept
from delivery.models import OutboundMessage
from mailboxes import services
from mailboxes.models import Message
from mailboxes.selectors import blob_read, folder_get
from tests.support.sievescripts import give_script

pytest.importorskip("mailboxes.sieve", reason="the Sieve language (issue 17) has not landed")
pytestmark = pytest.mark.django_db

MESSAGE = (
    b"From: Bob <bob@remote.test>\r\n"
    b"To: Alice <alice@example.org>\r\n"
    b"Subject: Weekly report\r\n"
    b"Message-ID: <report.1@remote.test>\r\n"
    b"\r\n"
    b"Numbers attached.\r\n"
)


@pytest.fixture
def script():
    """Give a mailbox an active script (and its domain a default one)."""
    return give_script


def accept(raw=MESSAGE, *, to=("alice@example.org",), sender="bob@remote.test"):
    return message_accept(raw=raw, mail_from=sender, recipients=list(to))


def folder_messages(mailbox, name):
    return list(Message.objects.filter(folder=folder_get(mailbox, name)).order_by("uid"))


def spooled():
    return list(OutboundMessage.objects.prefetch_related("recipients").order_by("id"))


def test_fileinto_with_flags_and_create(make_mailbox, script):
    alice = make_mailbox("alice@example.org")
    script(
        alice,
        'require ["fileinto", "imap4flags", "mailbox"];\n'
        'if header :contains "subject" "report" {\n'
        '  fileinto :create :flags ["\\\\Seen", "$Reports"] "Work/Reports";\n'
        '  fileinto "Archive";\n'
        "}\n",
    )
    result = accept()
    assert [r.status for r in result.recipients] == ["delivered"]
    assert folder_messages(alice, "INBOX") == []
    [filed] = folder_messages(alice, "Work/Reports")
    assert filed.seen and filed.keywords == "$Reports"
    [archived] = folder_messages(alice, "Archive")
    assert not archived.seen and archived.blob_id == filed.blob_id


def test_no_match_is_the_implicit_keep_and_spam_goes_to_junk(make_mailbox, script):
    alice = make_mailbox("alice@example.org")
    script(alice, 'require "fileinto"; if header :is "subject" "never" { fileinto "X"; }')
    accept()
    assert len(folder_messages(alice, "INBOX")) == 1
    # the spam verdict as message_deliver reads it (a queued retry, a DSN)
    services.message_deliver(
        raw=b"X-Spam: Yes\r\n" + MESSAGE, recipients=["alice@example.org"], mail_from="b@c.test"
    )
    assert len(folder_messages(alice, "Junk")) == 1


def test_the_domain_default_runs_before_the_users_script(make_mailbox, script):
    alice = make_mailbox("alice@example.org")
    script(
        alice,
        'require "fileinto"; fileinto "Mine";',
        default='require ["fileinto", "copy", "mailbox"]; fileinto :copy :create "Audit"; stop;',
    )
    services.folder_create(mailbox=alice, name="Mine")
    accept()
    # the default's stop ends the default only; both copies are filed, no implicit keep
    assert len(folder_messages(alice, "Audit")) == 1
    assert len(folder_messages(alice, "Mine")) == 1
    assert folder_messages(alice, "INBOX") == []


def test_a_domain_default_that_files_elsewhere_decides_alone(make_mailbox, script):
    # Pigeonhole's sieve_before, as `sieve-test -s default.sieve user.sieve` shows: the user's
    # script runs only while the message is kept (implicit keep, keep or :copy).
    alice = make_mailbox("alice@example.org")
    script(
        alice,
        'require "fileinto"; fileinto "Mine";',
        default='require ["fileinto", "mailbox"]; fileinto :create "Quarantine";',
    )
    services.folder_create(mailbox=alice, name="Mine")
    accept()
    assert len(folder_messages(alice, "Quarantine")) == 1
    assert folder_messages(alice, "Mine") == []
    assert folder_messages(alice, "INBOX") == []


@pytest.mark.parametrize(
    ("default", "mine"),
    [
        ("keep;", 1),  # an explicit keep still keeps: the user's script runs
        ("discard;", 0),  # discarded: it does not
        ('require ["fileinto", "copy", "mailbox"]; fileinto :copy :create "Audit"; stop;', 1),
    ],
)
def test_the_users_script_runs_while_the_default_keeps(make_mailbox, script, default, mine):
    alice = make_mailbox("alice@example.org")
    script(alice, 'require "fileinto"; fileinto "Mine";', default=default)
    services.folder_create(mailbox=alice, name="Mine")
    accept()
    assert len(folder_messages(alice, "Mine")) == mine


def test_a_domain_default_alone_runs_for_mailboxes_without_a_script(make_mailbox):
    alice = make_mailbox("alice@example.org")
    services.domain_set_sieve_default(
        domain=alice.domain,
        text='require ["fileinto", "mailbox"];\n'
        'if header :contains "subject" "report" { fileinto :create "Reports"; }',
    )
    accept()
    assert len(folder_messages(alice, "Reports")) == 1


def test_editheader_gives_the_mailbox_its_own_copy(make_mailbox, script):
    alice = make_mailbox("alice@example.org")
    bob = make_mailbox("bob@example.org")
    script(alice, 'require "editheader"; addheader "X-Filtered" "yes"; deleteheader "subject";')
    accept(to=("alice@example.org", "bob@example.org"))
    [mine] = folder_messages(alice, "INBOX")
    [theirs] = folder_messages(bob, "INBOX")
    edited = blob_read(mine.blob)
    assert edited.startswith(b"X-Filtered: yes\r\n") and b"Subject:" not in edited
    assert b"Subject: Weekly report" in blob_read(theirs.blob)
    assert mine.blob_id != theirs.blob_id and mine.subject == ""


def gone_after_upload(mailbox) -> None:  # noqa: ANN001
    """A script "missing" that exists while the including script is uploaded (uploads check
    includes, RFC 6609 as Pigeonhole does) and is deleted before mail arrives: a run-time
    failure."""
    services.sievescript_put(mailbox=mailbox, name="missing", text="keep;")


def test_a_runtime_failure_files_into_inbox_and_says_why(
    make_mailbox, script, caplog, django_capture_on_commit_callbacks
):
    alice = make_mailbox("alice@example.org")
    gone_after_upload(alice)
    script(alice, 'require ["include", "fileinto"]; include :personal "missing"; fileinto "X";')
    services.sievescript_delete(mailbox=alice, name="missing")
    caplog.set_level("INFO", logger="mailboxes")
    with django_capture_on_commit_callbacks(execute=True):
        result = accept()
    assert result.accepted
    [kept] = folder_messages(alice, "INBOX")
    stored = blob_read(kept.blob)
    assert stored.startswith(b"X-Sieve-Error: user script")
    assert b"missing" in stored.split(b"\r\n", 1)[0]
    assert any(
        r.getMessage().startswith(f"sieve error mailbox={alice.id} reason=") for r in caplog.records
    )


def test_the_cpu_limit_counts_the_scripts_thread_only(make_mailbox, script, settings):
    """Other threads of the process (deliveries, sessions) burning CPU while a script runs do
    not count against it: measured with process_time(), a busy server filed into INBOX."""
    import threading
    import time

    from mailboxes import mda

    settings.MAILHOST_SIEVE_CPU_LIMIT_MS = 50
    alice = make_mailbox("alice@example.org")
    script(alice, 'require ["fileinto", "mailbox"]; fileinto :create "Filed";')
    running = mda._run_all

    def slow_beside_a_busy_thread(*args, **kwargs):
        def burn() -> None:
            end = time.thread_time() + 0.3
            while time.thread_time() < end:
                pass

        burner = threading.Thread(target=burn)
        burner.start()
        burner.join()  # 300 ms of CPU in another thread, while this script is "running"
        return running(*args, **kwargs)

    mda._run_all = slow_beside_a_busy_thread
    try:
        accept()
    finally:
        mda._run_all = running
    kept = folder_messages(alice, "INBOX")
    assert kept == [], blob_read(kept[0].blob)[:200]
    assert len(folder_messages(alice, "Filed")) == 1


def test_a_script_that_does_not_compile_files_into_inbox(make_mailbox, script):
    alice = make_mailbox("alice@example.org")
    # Uploads are validated; a script stored under an older, laxer parser is not.
    from mailboxes.models import SieveScript

    SieveScript.objects.create(mailbox=alice, name="old", text="this is not sieve;", active=True)
    accept()
    [kept] = folder_messages(alice, "INBOX")
    assert blob_read(kept.blob).startswith(b"X-Sieve-Error: user script")


def test_discard(make_mailbox, script):
    alice = make_mailbox("alice@example.org")
    script(alice, "discard;")
    result = accept()
    assert result.accepted and Message.objects.count() == 0


def test_redirect_to_a_remote_address_is_spooled_with_srs_and_delivered_to(make_mailbox, script):
    from mailboxes import srs

    alice = make_mailbox("alice@example.org")
    script(alice, 'redirect "carol@far.test";')
    accept()
    assert folder_messages(alice, "INBOX") == []
    [out] = spooled()
    assert out.mail_from.startswith("SRS0=") and out.mail_from.endswith("@example.org")
    assert srs.reverse(out.mail_from.rpartition("@")[0]) == "bob@remote.test"
    assert [r.address for r in out.recipients.all()] == ["carol@far.test"]
    raw = blob_read(out.blob)
    assert b"Delivered-To: alice@example.org\r\n" in raw and raw.endswith(MESSAGE)


def test_redirect_copy_keeps_and_a_local_target_keeps_the_sender(make_mailbox, script):
    alice = make_mailbox("alice@example.org")
    make_mailbox("dave@example.org")
    script(alice, 'require "copy"; redirect :copy "dave@example.org";')
    accept()
    assert len(folder_messages(alice, "INBOX")) == 1
    [out] = spooled()
    assert out.mail_from == "bob@remote.test"


def test_a_redirect_loop_keeps_the_message(make_mailbox, script):
    alice = make_mailbox("alice@example.org")
    script(alice, 'redirect "carol@far.test";')
    accept(b"Delivered-To: alice@example.org\r\n" + MESSAGE)
    assert spooled() == []
    assert len(folder_messages(alice, "INBOX")) == 1


def test_too_many_hops_keeps_the_message(make_mailbox, script, settings):
    settings.MAILHOST_SIEVE_MAX_HOPS = 3
    alice = make_mailbox("alice@example.org")
    script(alice, 'redirect "carol@far.test";')
    hops = b"".join(b"Delivered-To: u%d@elsewhere.test\r\n" % n for n in range(3))
    accept(hops + MESSAGE)
    assert spooled() == [] and len(folder_messages(alice, "INBOX")) == 1


def test_more_redirects_than_allowed_is_a_failure_not_a_loss(make_mailbox, script, settings):
    settings.MAILHOST_SIEVE_MAX_REDIRECTS = 2
    alice = make_mailbox("alice@example.org")
    script(alice, 'redirect "a@far.test"; redirect "b@far.test"; redirect "c@far.test";')
    accept()
    assert spooled() == []
    [kept] = folder_messages(alice, "INBOX")
    assert blob_read(kept.blob).startswith(b"X-Sieve-Error:")


VACATION = 'require "vacation"; vacation :days 7 :subject "Away" "Back on Monday.";'


def test_vacation_answers_a_sender_once_in_three_messages(make_mailbox, script):
    alice = make_mailbox("alice@example.org")
    script(alice, VACATION)
    for n in range(3):
        accept(MESSAGE.replace(b"report.1", b"report.%d" % n))
    assert len(folder_messages(alice, "INBOX")) == 3
    [reply] = spooled()
    assert reply.mail_from == ""
    assert [r.address for r in reply.recipients.all()] == ["bob@remote.test"]
    parsed = email.message_from_bytes(blob_read(reply.blob), policy=policy.default)
    assert parsed["Subject"] == "Away" and parsed["To"] == "bob@remote.test"
    assert parsed["Auto-Submitted"].startswith("auto-replied")
    assert parsed["In-Reply-To"] == "<report.0@remote.test>"
    # another sender gets their own reply
    accept(sender="erin@remote.test")
    assert len(spooled()) == 2


@pytest.mark.parametrize(
    ("extra", "sender"),
    [
        (b"List-Id: <weekly.remote.test>\r\n", "bob@remote.test"),
        (b"Precedence: bulk\r\n", "bob@remote.test"),
        (b"Auto-Submitted: auto-generated\r\n", "bob@remote.test"),
        (b"", ""),
        (b"", "MAILER-DAEMON@remote.test"),
    ],
)
def test_vacation_never_answers_lists_machines_or_null_senders(make_mailbox, script, extra, sender):
    alice = make_mailbox("alice@example.org")
    script(alice, VACATION)
    accept(extra + MESSAGE, sender=sender)
    assert spooled() == [] and len(folder_messages(alice, "INBOX")) == 1


def test_vacation_only_when_the_user_is_a_visible_recipient(make_mailbox, script):
    alice = make_mailbox("alice@example.org")
    script(alice, VACATION)
    accept(MESSAGE.replace(b"To: Alice <alice@example.org>", b"To: team@remote.test"))
    assert spooled() == []
    script_addresses = (
        'require "vacation"; vacation :addresses ["team@remote.test"] "Back on Monday.";'
    )
    script(alice, script_addresses)
    accept(MESSAGE.replace(b"To: Alice <alice@example.org>", b"To: team@remote.test"))
    assert len(spooled()) == 1


def test_reject_sends_an_mdn_to_the_sender(make_mailbox, script):
    alice = make_mailbox("alice@example.org")
    script(alice, 'require "reject"; reject "I do not take reports.";')
    result = accept()
    assert result.accepted  # reject is never refused in the SMTP dialogue here
    assert Message.objects.count() == 0
    [notice] = spooled()
    assert notice.mail_from == ""
    assert [r.address for r in notice.recipients.all()] == ["bob@remote.test"]
    raw = blob_read(notice.blob)
    assert b"report-type=disposition-notification" in raw
    assert b"I do not take reports." in raw


def test_ereject_for_one_recipient_is_refused_at_smtp_time(make_mailbox, script):
    alice = make_mailbox("alice@example.org")
    script(alice, 'require "ereject"; ereject "No reports, please.";')
    result = accept()
    [outcome] = result.recipients
    assert (outcome.status, outcome.reason) == ("rejected", "No reports, please.")
    assert not result.accepted and spooled() == [] and Message.objects.count() == 0


def test_ereject_among_several_recipients_sends_a_dsn(make_mailbox, script):
    alice = make_mailbox("alice@example.org")
    bob = make_mailbox("bob@example.org")
    script(alice, 'require "ereject"; ereject "No reports, please.";')
    result = accept(to=("alice@example.org", "bob@example.org"))
    assert [r.status for r in result.recipients] == ["delivered", "delivered"]
    assert len(folder_messages(bob, "INBOX")) == 1 and folder_messages(alice, "INBOX") == []
    [dsn] = spooled()
    raw = blob_read(dsn.blob)
    assert dsn.mail_from == "" and b"report-type=delivery-status" in raw
    assert b"Status: 5.7.1" in raw and b"No reports, please." in raw


def test_duplicate_discards_the_second_copy(make_mailbox, script):
    alice = make_mailbox("alice@example.org")
    script(alice, 'require "duplicate"; if duplicate { discard; }')
    accept()
    accept()
    assert len(folder_messages(alice, "INBOX")) == 1
    accept(MESSAGE.replace(b"report.1", b"report.2"))
    assert len(folder_messages(alice, "INBOX")) == 2


def test_notify_mailto_sends_a_notification(make_mailbox, script):
    alice = make_mailbox("alice@example.org")
    script(alice, 'require "enotify"; notify :message "Report in" "mailto:pager@far.test";')
    accept()
    assert len(folder_messages(alice, "INBOX")) == 1
    [note] = spooled()
    parsed = email.message_from_bytes(blob_read(note.blob), policy=policy.default)
    assert parsed["Auto-Submitted"] == "auto-notified" and parsed["To"] == "pager@far.test"
    assert "Report in" in parsed.get_content()
    assert blob_read(note.blob).startswith(b"DKIM-Signature:")


def test_the_queued_local_retry_runs_the_script_too(make_mailbox, script):
    """A recipient queued for a later local attempt (quota) is delivered by the worker
    through message_deliver, which runs the script itself."""
    alice = make_mailbox("alice@example.org")
    script(alice, 'require ["fileinto", "mailbox"]; fileinto :create "Later";')
    services.message_deliver(raw=MESSAGE, recipients=["alice@example.org"], mail_from="x@y.test")
    assert len(folder_messages(alice, "Later")) == 1


def test_spamtest_reads_our_score_and_environment_names_the_host(make_mailbox, script, settings):
    alice = make_mailbox("alice@example.org")
    script(
        alice,
        'require ["spamtest", "relational", "comparator-i;ascii-numeric", "fileinto",'
        ' "environment"];\n'
        'if spamtest :value "ge" :comparator "i;ascii-numeric" "5" { fileinto "Junk"; }\n'
        f'elsif environment :is "host" "{settings.MAILHOST_HOSTNAME}" {{ fileinto "Archive"; }}\n',
    )
    services.message_deliver(
        raw=b"X-Spam-Score: 7.5\r\n" + MESSAGE, recipients=["alice@example.org"], mail_from="b@c.t"
    )
    assert len(folder_messages(alice, "Junk")) == 1
    services.message_deliver(raw=MESSAGE, recipients=["alice@example.org"], mail_from="b@c.t")
    assert len(folder_messages(alice, "Archive")) == 1


def test_include_personal_reads_the_mailboxs_other_stored_script(make_mailbox):
    alice = make_mailbox("alice@example.org")
    services.sievescript_put(
        mailbox=alice,
        name="lists",
        text='require ["fileinto", "mailbox"]; fileinto :create "Reports";',
    )
    give_script(alice, 'require "include"; include :personal "lists";')
    accept()
    assert len(folder_messages(alice, "Reports")) == 1 and folder_messages(alice, "INBOX") == []


def test_vacation_does_not_answer_junk(make_mailbox, script):
    alice = make_mailbox("alice@example.org")
    script(alice, VACATION)
    services.message_deliver(
        raw=b"X-Spam: Yes\r\n" + MESSAGE, recipients=["alice@example.org"], mail_from="b@c.test"
    )
    assert spooled() == [] and len(folder_messages(alice, "Junk")) == 1


def test_a_bug_in_the_interpreter_still_files_into_inbox(make_mailbox, script, monkeypatch):
    """Fault injection: whatever the interpreter raises, the message is kept."""
    from mailboxes import sieve

    alice = make_mailbox("alice@example.org")
    script(alice, "discard;")

    def broken(script, context):  # noqa: ANN001, ANN202
        raise RuntimeError("interpreter bug")

    monkeypatch.setattr(sieve, "run", broken)
    assert accept().accepted
    [kept] = folder_messages(alice, "INBOX")
    assert blob_read(kept.blob).startswith(b"X-Sieve-Error: internal error: RuntimeError")


def test_actions_and_failures_are_counted_in_metrics(
    make_mailbox, script, django_capture_on_commit_callbacks
):
    from prometheus_client import REGISTRY

    def count(action: str) -> float:
        value = REGISTRY.get_sample_value("mailhost_sieve_actions_total", {"action": action})
        return value or 0.0

    alice = make_mailbox("alice@example.org")
    before = {a: count(a) for a in ("fileinto", "redirect", "error")}
    script(alice, 'require "fileinto"; fileinto "Archive"; redirect "carol@far.test";')
    with django_capture_on_commit_callbacks(execute=True):
        accept()
    gone_after_upload(alice)
    script(alice, 'require "include"; include :personal "missing";')
    services.sievescript_delete(mailbox=alice, name="missing")
    with django_capture_on_commit_callbacks(execute=True):
        accept()
    assert count("fileinto") == before["fileinto"] + 1
    assert count("redirect") == before["redirect"] + 1
    assert count("error") == before["error"] + 1


def test_the_implicit_keep_follows_each_mailboxs_junk_verdict(make_mailbox, script):
    """The spam verdict decides per mailbox (allow lists, classifiers): Junk for those in
    junk_mailbox_ids, INBOX for the others, scripts or not."""
    alice = make_mailbox("alice@example.org")
    bob = make_mailbox("bob@example.org")
    carol = make_mailbox("carol@example.org")
    for mailbox in (alice, bob):
        script(mailbox, 'require "fileinto"; if header :is "subject" "never" { fileinto "X"; }')
    services.message_deliver(
        raw=MESSAGE,
        recipients=["alice@example.org", "bob@example.org", "carol@example.org"],
        mail_from="b@c.test",
        junk_mailbox_ids={alice.id, carol.id},
    )
    assert len(folder_messages(alice, "Junk")) == 1 and folder_messages(alice, "INBOX") == []
    assert len(folder_messages(bob, "INBOX")) == 1 and folder_messages(bob, "Junk") == []
    assert len(folder_messages(carol, "Junk")) == 1
