"""message_deliver: the delivery agent (MDA)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from mailboxes import services
from mailboxes.models import Blob, Folder, Mailbox, Message
from mailboxes.selectors import blob_path, blob_read, folder_get
from tests.mailboxes.conftest import make_raw

pytestmark = pytest.mark.django_db


def inbox(mailbox):
    return folder_get(mailbox, "INBOX")


@pytest.mark.usefixtures("blob_files")
def test_one_blob_for_many_recipients(make_mailbox, published, django_capture_on_commit_callbacks):
    alice = make_mailbox("alice@example.org")
    bob = make_mailbox("bob@example.org")
    raw = make_raw("Team news")
    with django_capture_on_commit_callbacks(execute=True):
        results = services.message_deliver(
            raw=raw, recipients=["alice@example.org", "BOB@example.org", "bob+x@example.org"]
        )
    assert [r.status for r in results] == ["delivered"] * 3
    assert [r.mailbox_ids for r in results] == [(alice.id,), (bob.id,), (bob.id,)]
    assert all(r.accepted for r in results)
    assert Blob.objects.count() == 1
    blob = Blob.objects.get()
    assert blob.size == len(raw)
    assert blob_read(blob) == raw
    assert os.path.exists(blob_path(blob))
    # bob is named twice, gets the message once.
    assert Message.objects.count() == 2
    for mailbox in (alice, bob):
        folder = inbox(mailbox)
        message = Message.objects.get(folder=folder)
        assert (message.uid, message.modseq, message.blob_id) == (1, 2, blob.id)
        assert message.subject == "Team news"
        assert message.from_address == "bob@remote.example"
        assert message.message_id == "<Team.news@remote.example>"
        assert message.size == len(raw) and not message.seen
        assert (folder.uidnext, folder.highestmodseq) == (2, 2)
        assert (folder.message_count, folder.unseen_count, folder.total_size) == (1, 1, len(raw))
        assert Mailbox.objects.get(pk=mailbox.pk).used_bytes == len(raw)
    exists = [e for e in published if e.kind == "exists"]
    assert {(e.mailbox_id, e.folder_id, e.uids, e.modseq) for e in exists} == {
        (alice.id, inbox(alice).id, (1,), 2),
        (bob.id, inbox(bob).id, (1,), 2),
    }


def test_small_message_is_stored_in_its_blob_row(make_mailbox, blob_dir, settings):
    """Up to MAILHOST_BLOB_INLINE_MAX the bytes go into the Blob row, committed with the
    messages (no file, so no file or directory sync); above it, into a file."""
    settings.MAILHOST_BLOB_INLINE_MAX = 2048
    make_mailbox("alice@example.org")
    make_mailbox("bob@example.org")
    small, big = make_raw("small"), make_raw("big", body=b"x" * 2048)
    for raw in (small, big):
        services.message_deliver(raw=raw, recipients=["alice@example.org", "bob@example.org"])
    inline, filed = Blob.objects.order_by("pk")
    assert Blob.name_is_inline(inline.name) and bytes(inline.data) == small
    assert blob_path(inline) is None and blob_read(inline) == small
    assert filed.data is None and blob_read(filed) == big
    assert [p.name for p in blob_dir.rglob("*") if p.is_file()] == [filed.name.rsplit("/")[-1]]
    assert Message.objects.filter(blob=inline).count() == 2


def test_uids_and_modseqs_grow(make_mailbox):
    alice = make_mailbox("alice@example.org")
    for n in range(3):
        services.message_deliver(raw=make_raw(f"m{n}"), recipients=["alice@example.org"])
    rows = list(Message.objects.filter(folder=inbox(alice)).values_list("uid", "modseq"))
    assert rows == [(1, 2), (2, 3), (3, 4)]
    folder = inbox(alice)
    assert (folder.uidnext, folder.highestmodseq, folder.message_count) == (4, 4, 3)


def test_internal_date(make_mailbox):
    alice = make_mailbox("alice@example.org")
    when = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    services.message_deliver(raw=make_raw(), recipients=["alice@example.org"], internal_date=when)
    assert Message.objects.get(folder=inbox(alice)).internal_date == when


def test_spam_goes_to_junk(make_mailbox):
    alice = make_mailbox("alice@example.org")
    services.message_deliver(raw=make_raw("buy", spam=True), recipients=["alice@example.org"])
    junk = folder_get(alice, "Junk")
    assert Message.objects.filter(folder=junk).count() == 1
    assert not Message.objects.filter(folder=inbox(alice)).exists()
    assert Folder.objects.get(pk=junk.pk).message_count == 1
    # X-Spam: No and no header go to INBOX.
    services.message_deliver(
        raw=b"X-Spam: No\r\nSubject: ok\r\n\r\nhi\r\n", recipients=["alice@example.org"]
    )
    assert Message.objects.filter(folder=inbox(alice)).count() == 1


def test_spam_without_a_junk_folder_goes_to_inbox(make_mailbox):
    alice = make_mailbox("alice@example.org")
    services.folder_delete(folder=folder_get(alice, "Junk"))
    services.message_deliver(raw=make_raw("buy", spam=True), recipients=["alice@example.org"])
    assert Message.objects.filter(folder=inbox(alice)).count() == 1


def test_over_quota_recipient_is_refused_the_others_get_it(make_mailbox):
    raw = make_raw(body=b"x" * 1000 + b"\r\n")
    alice = make_mailbox("alice@example.org", quota=len(raw) + 10)
    bob = make_mailbox("bob@example.org", quota=len(raw) // 2)
    carol = make_mailbox("carol@example.org")
    results = services.message_deliver(
        raw=raw, recipients=["alice@example.org", "bob@example.org", "carol@example.org"]
    )
    assert [(r.address, r.status) for r in results] == [
        ("alice@example.org", "delivered"),
        ("bob@example.org", "over_quota"),
        ("carol@example.org", "delivered"),
    ]
    assert not results[1].accepted and results[1].mailbox_ids == ()
    assert not Message.objects.filter(folder__mailbox=bob).exists()
    assert Mailbox.objects.get(pk=bob.pk).used_bytes == 0
    # alice is now full: the next one is refused for her.
    again = services.message_deliver(raw=raw, recipients=["alice@example.org"])
    assert again[0].status == "over_quota"
    assert Mailbox.objects.get(pk=alice.pk).used_bytes == len(raw)
    assert Message.objects.filter(folder__mailbox=carol).count() == 1


def test_everyone_over_quota_leaves_no_blob(make_mailbox, blob_dir):
    make_mailbox("alice@example.org", quota=10)
    results = services.message_deliver(raw=make_raw(), recipients=["alice@example.org"])
    assert results[0].status == "over_quota"
    assert not Blob.objects.exists()
    assert [f for _, _, files in os.walk(blob_dir) for f in files] == []


def test_per_recipient_results(make_mailbox):
    alice = make_mailbox("alice@example.org")
    services.alias_create(address="fwd@example.org", destinations=["x@remote.example"])
    services.alias_create(
        address="both@example.org", destinations=["alice@example.org", "y@remote.example"]
    )
    results = services.message_deliver(
        raw=make_raw(),
        recipients=[
            "nobody@example.org",
            "someone@remote.example",
            "fwd@example.org",
            "both@example.org",
            "garbage",
        ],
    )
    assert [(r.status, r.mailbox_ids, r.forward) for r in results] == [
        ("unknown", (), ()),
        ("not_hosted", (), ()),
        ("delivered", (), ("x@remote.example",)),
        ("delivered", (alice.id,), ("y@remote.example",)),
        ("not_hosted", (), ()),
    ]


def test_alias_to_a_full_mailbox_and_a_remote_still_forwards(make_mailbox):
    make_mailbox("alice@example.org", quota=10)
    services.alias_create(
        address="both@example.org", destinations=["alice@example.org", "y@remote.example"]
    )
    [result] = services.message_deliver(raw=make_raw(), recipients=["both@example.org"])
    assert (result.status, result.mailbox_ids, result.forward) == (
        "delivered",
        (),
        ("y@remote.example",),
    )


def test_no_local_recipient_writes_nothing(make_mailbox, blob_dir):
    make_mailbox("alice@example.org")
    results = services.message_deliver(raw=make_raw(), recipients=["x@remote.example"])
    assert results[0].status == "not_hosted"
    assert not Blob.objects.exists()
    assert not blob_dir.exists() or not any(blob_dir.rglob("*"))


def test_given_blob_is_shared(make_mailbox):
    alice = make_mailbox("alice@example.org")
    raw = make_raw()
    blob = services.blob_store(raw)
    services.message_deliver(raw=raw, recipients=["alice@example.org"], blob=blob)
    assert Blob.objects.count() == 1
    assert Message.objects.get(folder=inbox(alice)).blob_id == blob.id


@pytest.mark.parametrize("count", [1, 5])
def test_query_count_is_bounded(make_mailbox, django_assert_max_num_queries, count):
    """The SMTP hot path: resolution is 1 query a recipient plus 1 per domain, filing a fixed
    few plus one UPDATE per mailbox."""
    for n in range(count):
        make_mailbox(f"user{n}@example.org")
    recipients = [f"user{n}@example.org" for n in range(count)]
    services.message_deliver(raw=make_raw("warm"), recipients=recipients)
    # domain + 1 mailbox per recipient, then lock mailboxes (with their folder ids) + 1
    # UPDATE ... RETURNING per folder + blob + messages + usage; no savepoint.
    with django_assert_max_num_queries(1 + count + 1 + count + 3):
        results = services.message_deliver(raw=make_raw("counted"), recipients=recipients)
    assert all(r.accepted for r in results)
