"""Carrying out Sieve plans in the delivery transaction (mailboxes.services with
mailboxes.mda.MailboxPlan): several folders per mailbox with flags, :create, copies with
bytes of their own, discard, spooled messages, the vacation rate table, quota, and the
implicit keep of a failed script."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from delivery.models import OutboundMessage
from mailboxes import mda, services
from mailboxes.models import Blob, Folder, Mailbox, Message, SieveVacationReply
from mailboxes.selectors import blob_read, folder_get
from tests.mailboxes.conftest import make_raw

pytestmark = pytest.mark.django_db


def deliver(raw, recipients, plans, **kwargs):
    return services.message_deliver(raw=raw, recipients=recipients, plans=plans, **kwargs)


def messages(mailbox, name):
    return list(Message.objects.filter(folder=folder_get(mailbox, name)).order_by("uid"))


def test_several_folders_with_flags_keywords_and_create(
    make_mailbox, published, django_capture_on_commit_callbacks
):
    alice = make_mailbox("alice@example.org")
    services.folder_create(mailbox=alice, name="Lists")
    raw = make_raw("Filed twice")
    plan = mda.MailboxPlan(
        mailbox_id=alice.id,
        filings=(
            mda.Filing(folder="Lists", flags=("\\Seen", "$label1")),
            mda.Filing(folder="Projects/2026", create=True, flags=("\\Flagged", "Important")),
            mda.Filing(folder="Lists", flags=("\\Answered",)),  # the same folder: one copy
        ),
    )
    with django_capture_on_commit_callbacks(execute=True):
        [result] = deliver(raw, ["alice@example.org"], {alice.id: plan})
    assert result.status == "delivered" and result.mailbox_ids == (alice.id,)
    assert messages(alice, "INBOX") == []  # no implicit keep in this plan
    [listed] = messages(alice, "Lists")
    assert (listed.seen, listed.answered, listed.flagged) == (True, True, False)
    assert listed.keywords == "$label1"
    [project] = messages(alice, "Projects/2026")
    assert (project.seen, project.flagged, project.keywords) == (False, True, "Important")
    assert folder_get(alice, "Projects") is not None  # the parent was made too
    assert listed.blob_id == project.blob_id and Blob.objects.count() == 1
    lists = folder_get(alice, "Lists")
    assert (lists.message_count, lists.unseen_count) == (1, 0)
    assert Mailbox.objects.get(pk=alice.pk).used_bytes == 2 * len(raw)
    assert {e.folder_id for e in published if e.kind == "exists"} == {
        lists.id,
        folder_get(alice, "Projects/2026").id,
    }


def test_a_missing_folder_without_create_files_into_inbox(make_mailbox):
    alice = make_mailbox("alice@example.org")
    plan = mda.MailboxPlan(alice.id, filings=(mda.Filing(folder="Nowhere"),))
    deliver(make_raw(), ["alice@example.org"], {alice.id: plan})
    assert len(messages(alice, "INBOX")) == 1
    assert folder_get(alice, "Nowhere") is None


def test_special_use_and_mailboxid_choose_the_folder(make_mailbox):
    alice = make_mailbox("alice@example.org")
    archive = folder_get(alice, "Archive")
    services.folder_rename(folder=archive, new_name="Old stuff")  # the use stays with it
    plan = mda.MailboxPlan(
        alice.id,
        filings=(
            mda.Filing(folder="Archive", special_use="\\Archive"),
            mda.Filing(folder="ignored", folder_id=folder_get(alice, "Sent").id),
        ),
    )
    deliver(make_raw(), ["alice@example.org"], {alice.id: plan})
    assert Message.objects.filter(folder=archive).count() == 1
    assert len(messages(alice, "Sent")) == 1


def test_a_copy_with_its_own_bytes_gets_its_own_blob(make_mailbox):
    alice = make_mailbox("alice@example.org")
    bob = make_mailbox("bob@example.org")
    raw = make_raw("Edited")
    edited = b"X-Edited: yes\r\n" + raw
    plan = mda.MailboxPlan(alice.id, filings=(mda.Filing(folder="INBOX", raw=edited),))
    deliver(raw, ["alice@example.org", "bob@example.org"], {alice.id: plan})
    [mine] = messages(alice, "INBOX")
    [theirs] = messages(bob, "INBOX")
    assert blob_read(mine.blob) == edited and blob_read(theirs.blob) == raw
    assert mine.size == len(edited) and mine.subject == "Edited"
    assert Mailbox.objects.get(pk=alice.pk).used_bytes == len(edited)


def test_discard_delivers_nothing_and_stores_no_bytes(make_mailbox):
    alice = make_mailbox("alice@example.org")
    plan = mda.MailboxPlan(alice.id, filings=())
    [result] = deliver(make_raw(), ["alice@example.org"], {alice.id: plan})
    assert result.status == "delivered"
    assert Message.objects.count() == 0 and Blob.objects.count() == 0


def test_a_failed_script_files_into_inbox_with_the_reason(make_mailbox):
    alice = make_mailbox("alice@example.org")
    raw = make_raw("Broken filter")
    info = mda.DeliveryInfo(raw=raw, mail_from="bob@remote.example")
    plan = mda.failed_plan(alice.id, info, "user script: division by zero\nat line 3")
    deliver(raw, ["alice@example.org"], {alice.id: plan})
    [kept] = messages(alice, "INBOX")
    stored = blob_read(kept.blob)
    assert stored.startswith(b"X-Sieve-Error: user script: division by zero at line 3\r\n")
    assert stored.endswith(raw)


def test_failed_plan_of_a_junk_mailbox_keeps_into_junk(make_mailbox):
    alice = make_mailbox("alice@example.org")
    raw = make_raw("Spam and a broken filter")
    info = mda.DeliveryInfo(raw=raw, mail_from="", junk_mailbox_ids=frozenset({alice.id}))
    deliver(raw, ["alice@example.org"], {alice.id: mda.failed_plan(alice.id, info, "x")})
    assert len(messages(alice, "Junk")) == 1 and messages(alice, "INBOX") == []


def test_outgoing_messages_are_spooled_in_the_same_transaction(make_mailbox):
    alice = make_mailbox("alice@example.org")
    redirect = mda.Outgoing(
        "redirect", b"Subject: x\r\n\r\nbody\r\n", "SRS0=x@example.org", ("c@far.test",)
    )
    reply = mda.Outgoing("vacation", b"Subject: Auto\r\n\r\naway\r\n", "", ("bob@remote.example",))
    plan = mda.MailboxPlan(alice.id, filings=(), outgoing=(redirect, reply))
    deliver(make_raw(), ["alice@example.org"], {alice.id: plan})
    spooled = {m.mail_from: m for m in OutboundMessage.objects.all()}
    assert set(spooled) == {"SRS0=x@example.org", ""}
    [to] = spooled["SRS0=x@example.org"].recipients.all()
    assert to.address == "c@far.test" and to.notify == ""
    [back] = spooled[""].recipients.all()
    assert back.address == "bob@remote.example" and back.notify == "NEVER"
    assert blob_read(spooled[""].blob) == b"Subject: Auto\r\n\r\naway\r\n"


def test_a_rolled_back_delivery_spools_nothing(make_mailbox):
    alice = make_mailbox("alice@example.org")
    out = mda.Outgoing("redirect", b"Subject: x\r\n\r\n", "a@example.org", ("c@far.test",))
    plan = mda.MailboxPlan(alice.id, filings=(mda.Filing(),), outgoing=(out,))
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        deliver(make_raw(), ["alice@example.org"], {alice.id: plan})
        raise RuntimeError("the commit fails")
    assert OutboundMessage.objects.count() == 0 and Message.objects.count() == 0


def test_vacation_is_sent_once_per_sender_per_period(make_mailbox):
    alice = make_mailbox("alice@example.org")
    reply = mda.Outgoing(
        "vacation",
        b"Subject: Auto\r\n\r\naway\r\n",
        "",
        ("bob@remote.example",),
        vacation=("bob@remote.example", "h1", 7 * 86400),
    )
    plan = mda.MailboxPlan(alice.id, filings=(mda.Filing(keep=True),), outgoing=(reply,))
    for n in range(3):
        deliver(make_raw(f"n{n}"), ["alice@example.org"], {alice.id: plan})
    assert OutboundMessage.objects.count() == 1
    assert len(messages(alice, "INBOX")) == 3
    # another handle (another vacation text) answers again
    other = mda.Outgoing(
        "vacation",
        reply.raw,
        "",
        reply.recipients,
        vacation=("bob@remote.example", "h2", 7 * 86400),
    )
    deliver(
        make_raw("n4"), ["alice@example.org"], {alice.id: mda.MailboxPlan(alice.id, (), (other,))}
    )
    assert OutboundMessage.objects.count() == 2
    # once the period is over, the same sender is answered again
    SieveVacationReply.objects.update(sent_at=timezone.now() - timedelta(days=8))
    deliver(make_raw("n5"), ["alice@example.org"], {alice.id: plan})
    assert OutboundMessage.objects.count() == 3


def test_a_plan_over_quota_does_nothing(make_mailbox):
    raw = make_raw("Too big for two copies")
    alice = make_mailbox("alice@example.org", quota=len(raw) + 10)
    out = mda.Outgoing("redirect", b"Subject: x\r\n\r\n", "a@example.org", ("c@far.test",))
    plan = mda.MailboxPlan(
        alice.id, filings=(mda.Filing(), mda.Filing(folder="Sent")), outgoing=(out,)
    )
    [result] = deliver(raw, ["alice@example.org"], {alice.id: plan})
    assert result.status == "over_quota"
    assert Message.objects.count() == 0 and OutboundMessage.objects.count() == 0
    assert Folder.objects.get(mailbox=alice, name="INBOX").message_count == 0


def test_duplicates_are_remembered_until_they_expire(make_mailbox):
    alice = make_mailbox("alice@example.org")
    plan = mda.MailboxPlan(alice.id, filings=(mda.Filing(),), duplicates=(("k" * 64, 60),))
    deliver(make_raw(), ["alice@example.org"], {alice.id: plan})
    from mailboxes.models import SieveDuplicate

    [row] = SieveDuplicate.objects.all()
    assert row.mailbox_id == alice.id and row.expires_at > timezone.now()


def test_expired_duplicates_and_year_old_vacation_rows_are_dropped(make_mailbox):
    from mailboxes.models import SieveDuplicate

    alice = make_mailbox("alice@example.org")
    old = timezone.now() - timedelta(days=1)
    SieveDuplicate.objects.create(mailbox=alice, key="old", expires_at=old)
    plan = mda.MailboxPlan(alice.id, filings=(mda.Filing(),), duplicates=(("new", 60),))
    deliver(make_raw(), ["alice@example.org"], {alice.id: plan})
    assert set(SieveDuplicate.objects.values_list("key", flat=True)) == {"new"}
    SieveVacationReply.objects.create(
        mailbox=alice, sender="old@x.test", handle="h", sent_at=timezone.now() - timedelta(days=400)
    )
    assert mda.vacation_due(mailbox_id=alice.id, sender="new@x.test", handle="h", seconds=60)
    assert set(SieveVacationReply.objects.values_list("sender", flat=True)) == {"new@x.test"}


def test_a_plan_beyond_the_message_limit_does_nothing(make_mailbox):
    # keep + fileinto: two copies, and room for one (RFC 9208 5.2 counts every folder)
    alice = make_mailbox("alice@example.org", quota_messages=1)
    plan = mda.MailboxPlan(alice.id, filings=(mda.Filing(), mda.Filing(folder="Archive")))
    [result] = deliver(make_raw("Two copies"), ["alice@example.org"], {alice.id: plan})
    assert result.status == "over_quota"
    assert Message.objects.count() == 0
    Mailbox.objects.filter(pk=alice.pk).update(quota_messages=2)
    [result] = deliver(make_raw("Two copies"), ["alice@example.org"], {alice.id: plan})
    assert result.status == "delivered"
    assert Mailbox.objects.get(pk=alice.pk).used_messages == Message.objects.count() == 2
