"""message_append, messages_store_flags, messages_expunge, messages_copy, messages_move."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from mailboxes import services
from mailboxes.exceptions import NotFound, QuotaExceeded
from mailboxes.models import Blob, Expunged, Folder, Mailbox, Message
from mailboxes.selectors import blob_path, blob_read, folder_get, messages_in
from tests.mailboxes.conftest import make_raw

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(make_mailbox):
    return make_mailbox("alice@example.org")


def fresh(folder: Folder) -> Folder:
    return Folder.objects.get(pk=folder.pk)


def used(mailbox: Mailbox) -> int:
    return Mailbox.objects.get(pk=mailbox.pk).used_bytes


def fill(folder: Folder, count: int, **kwargs) -> list[Message]:
    return [
        services.message_append(folder=folder, raw=make_raw(f"m{n}"), **kwargs)
        for n in range(count)
    ]


# --- append ---------------------------------------------------------------------------------


def test_append_with_flags_keywords_and_date(alice):
    drafts = folder_get(alice, "Drafts")
    when = datetime(2021, 5, 6, 7, 8, 9, tzinfo=UTC)
    raw = make_raw("draft")
    message = services.message_append(
        folder=drafts,
        raw=raw,
        flags=["\\Seen", "\\draft", "$Label1", "$label1", "\\Recent", "bad(kw", "Work"],
        internal_date=when,
    )
    assert (message.uid, message.modseq) == (1, 2)
    assert message.flags == ["\\Seen", "\\Draft", "$Label1", "Work"]
    assert message.internal_date == when
    assert message.subject == "draft"
    folder = fresh(drafts)
    assert (folder.uidnext, folder.highestmodseq, folder.message_count) == (2, 2, 1)
    assert (folder.unseen_count, folder.total_size) == (0, len(raw))
    assert used(alice) == len(raw)


def test_append_over_quota_is_refused_and_leaves_no_file(make_mailbox, blob_files):
    mailbox = make_mailbox("small@example.org", quota=300)
    inbox = folder_get(mailbox, "INBOX")
    services.message_append(folder=inbox, raw=make_raw(body=b"x" * 100))
    with pytest.raises(QuotaExceeded):
        services.message_append(folder=inbox, raw=make_raw(body=b"y" * 200))
    assert Message.objects.count() == 1 and Blob.objects.count() == 1
    files = [f for _, _, names in os.walk(blob_files) for f in names]
    assert len(files) == 1


def test_append_to_a_deleted_folder(alice, blob_dir):
    folder = services.folder_create(mailbox=alice, name="Gone")
    services.folder_delete(folder=folder)
    with pytest.raises(NotFound):
        services.message_append(folder=folder, raw=make_raw())
    assert not [f for _, _, names in os.walk(blob_dir) for f in names]


# --- flags ------------------------------------------------------------------------------------


def test_store_add_remove_replace(alice, published, django_capture_on_commit_callbacks):
    inbox = folder_get(alice, "INBOX")
    fill(inbox, 3)  # uids 1..3, modseqs 2..4
    with django_capture_on_commit_callbacks(execute=True):
        result = services.messages_store_flags(
            folder=inbox, uids=[1, 2], flags=["\\Seen", "$Work"], mode="add"
        )
    assert result.changed == [(1, ["\\Seen", "$Work"], 5), (2, ["\\Seen", "$Work"], 5)]
    assert result.modified == []
    assert fresh(inbox).highestmodseq == 5 and fresh(inbox).unseen_count == 1
    assert published[-1].kind == "flags" and published[-1].uids == (1, 2)
    assert published[-1].modseq == 5

    # Adding what is there changes nothing: no new MODSEQ.
    again = services.messages_store_flags(folder=inbox, uids=[1], flags=["\\seen"], mode="add")
    assert again.changed == [] and fresh(inbox).highestmodseq == 5

    removed = services.messages_store_flags(
        folder=inbox, uids=[1, 2, 3], flags=["\\Seen", "$work"], mode="remove"
    )
    assert removed.changed == [(1, [], 6), (2, [], 6)]
    assert fresh(inbox).unseen_count == 3

    replaced = services.messages_store_flags(
        folder=inbox, uids=[2, 3], flags=["\\Flagged", "\\Answered", "Later"], mode="replace"
    )
    assert replaced.changed == [
        (2, ["\\Answered", "\\Flagged", "Later"], 7),
        (3, ["\\Answered", "\\Flagged", "Later"], 7),
    ]
    rows = {m.uid: (m.modseq, m.flags) for m in messages_in(inbox)}
    assert rows == {
        1: (6, []),
        2: (7, ["\\Answered", "\\Flagged", "Later"]),
        3: (7, ["\\Answered", "\\Flagged", "Later"]),
    }


def test_store_unchangedsince(alice):
    inbox = folder_get(alice, "INBOX")
    fill(inbox, 3)  # modseqs 2, 3, 4
    result = services.messages_store_flags(
        folder=inbox, uids=[1, 2, 3], flags=["\\Flagged"], mode="add", unchangedsince=3
    )
    assert [uid for uid, _, _ in result.changed] == [1, 2]
    assert result.modified == [3]
    assert not Message.objects.get(folder=inbox, uid=3).flagged


def test_store_unknown_uids_and_bad_mode(alice):
    inbox = folder_get(alice, "INBOX")
    fill(inbox, 1)
    assert (
        services.messages_store_flags(
            folder=inbox, uids=[7, 8], flags=["\\Seen"], mode="add"
        ).changed
        == []
    )
    assert services.messages_store_flags(folder=inbox, uids=[], flags=[], mode="add").changed == []
    with pytest.raises(ValueError):
        services.messages_store_flags(folder=inbox, uids=[1], flags=[], mode="toggle")


def test_store_many_messages_uses_few_queries(alice, django_assert_max_num_queries):
    inbox = folder_get(alice, "INBOX")
    fill(inbox, 40)
    with django_assert_max_num_queries(8):
        result = services.messages_store_flags(
            folder=inbox, uids=range(1, 41), flags=["\\Seen"], mode="add"
        )
    assert len(result.changed) == 40
    assert fresh(inbox).unseen_count == 0


# --- expunge ------------------------------------------------------------------------------------


def test_expunge_removes_deleted_leaves_tombstones_and_frees_blobs(
    blob_files, alice, published, django_capture_on_commit_callbacks
):
    inbox = folder_get(alice, "INBOX")
    messages = fill(inbox, 4)
    services.messages_store_flags(folder=inbox, uids=[2, 3], flags=["\\Deleted"], mode="add")
    services.messages_store_flags(folder=inbox, uids=[3], flags=["\\Seen"], mode="add")
    before = fresh(inbox)
    paths = {m.uid: blob_path(m.blob) for m in messages}
    with django_capture_on_commit_callbacks(execute=True):
        expunged = services.messages_expunge(folder=inbox)
    assert expunged == [2, 3]
    after = fresh(inbox)
    assert after.highestmodseq == before.highestmodseq + 1
    assert [m.uid for m in messages_in(inbox)] == [1, 4]
    assert (after.message_count, after.unseen_count) == (2, 2)
    sizes = {m.uid: m.size for m in messages}
    assert after.total_size == sizes[1] + sizes[4]
    assert used(alice) == sizes[1] + sizes[4]
    assert list(Expunged.objects.filter(folder=inbox).values_list("uid", "modseq")) == [
        (2, after.highestmodseq),
        (3, after.highestmodseq),
    ]
    assert not os.path.exists(paths[2]) and not os.path.exists(paths[3])
    assert os.path.exists(paths[1])
    assert Blob.objects.count() == 2
    assert published[-1].kind == "expunge" and published[-1].uids == (2, 3)


def test_expunge_of_inline_blobs_removes_their_rows(
    alice, blob_dir, settings, django_capture_on_commit_callbacks
):
    settings.MAILHOST_BLOB_INLINE_MAX = 64 * 1024
    inbox = folder_get(alice, "INBOX")
    messages = fill(inbox, 3)
    services.messages_store_flags(folder=inbox, uids=[1, 3], flags=["\\Deleted"], mode="add")
    assert all(Blob.name_is_inline(m.blob.name) for m in messages)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.messages_expunge(folder=inbox) == [1, 3]
    assert list(Blob.objects.values_list("pk", flat=True)) == [messages[1].blob_id]
    assert blob_read(messages[1].blob_id) == make_raw("m1")
    assert not any(blob_dir.rglob("*"))  # never a file to delete


def test_expunge_only_given_uids(alice):
    inbox = folder_get(alice, "INBOX")
    fill(inbox, 3, flags=["\\Deleted"])
    assert services.messages_expunge(folder=inbox, uids=[1, 3, 99]) == [1, 3]
    assert [m.uid for m in messages_in(inbox)] == [2]


def test_expunge_nothing_changes_nothing(alice):
    inbox = folder_get(alice, "INBOX")
    fill(inbox, 2)
    modseq = fresh(inbox).highestmodseq
    assert services.messages_expunge(folder=inbox) == []
    assert fresh(inbox).highestmodseq == modseq


def test_expunge_keeps_a_blob_still_used_by_a_copy(
    blob_files, alice, django_capture_on_commit_callbacks
):
    inbox = folder_get(alice, "INBOX")
    archive = folder_get(alice, "Archive")
    [message] = fill(inbox, 1, flags=["\\Deleted"])
    services.messages_copy(source=inbox, uids=[1], target=archive)
    with django_capture_on_commit_callbacks(execute=True):
        services.messages_expunge(folder=inbox)
    assert os.path.exists(blob_path(message.blob))
    assert Message.objects.get(folder=archive).blob_id == message.blob_id


# --- copy and move --------------------------------------------------------------------------------


def test_copy_shares_blobs_keeps_flags_and_counts_usage(alice):
    inbox = folder_get(alice, "INBOX")
    archive = folder_get(alice, "Archive")
    messages = fill(inbox, 3)
    services.messages_store_flags(folder=inbox, uids=[2], flags=["\\Seen", "Tag"], mode="add")
    services.message_append(folder=archive, raw=make_raw("already there"))
    size = sum(m.size for m in messages)
    before = used(alice)
    pairs = services.messages_copy(source=inbox, uids=[3, 2, 2, 42], target=archive)
    assert pairs == [(2, 2), (3, 3)]
    copies = {m.uid: m for m in messages_in(archive)}
    assert copies[2].blob_id == messages[1].blob_id and copies[3].blob_id == messages[2].blob_id
    assert copies[2].flags == ["\\Seen", "Tag"] and copies[2].subject == "m1"
    assert copies[2].modseq == copies[3].modseq == fresh(archive).highestmodseq
    target = fresh(archive)
    assert (target.uidnext, target.message_count, target.unseen_count) == (4, 3, 2)
    assert Blob.objects.count() == 4
    assert used(alice) == before + messages[1].size + messages[2].size
    assert fresh(inbox).message_count == 3  # the source is untouched
    assert size > 0


def test_copy_refused_over_quota(make_mailbox):
    mailbox = make_mailbox("small@example.org", quota=400)
    inbox = folder_get(mailbox, "INBOX")
    services.message_append(folder=inbox, raw=make_raw(body=b"x" * 150))
    with pytest.raises(QuotaExceeded):
        services.messages_copy(source=inbox, uids=[1], target=folder_get(mailbox, "Archive"))


def test_copy_to_another_mailbox_is_refused(alice, make_mailbox):
    bob = make_mailbox("bob@example.org")
    inbox = folder_get(alice, "INBOX")
    fill(inbox, 1)
    with pytest.raises(NotFound):
        services.messages_copy(source=inbox, uids=[1], target=folder_get(bob, "INBOX"))


def test_move(alice, published, django_capture_on_commit_callbacks):
    inbox = folder_get(alice, "INBOX")
    trash = folder_get(alice, "Trash")
    messages = fill(inbox, 3)
    services.messages_store_flags(folder=inbox, uids=[1], flags=["\\Seen"], mode="add")
    before = used(alice)
    with django_capture_on_commit_callbacks(execute=True):
        pairs = services.messages_move(source=inbox, uids=[1, 3], target=trash)
    assert pairs == [(1, 1), (3, 2)]
    assert [m.uid for m in messages_in(inbox)] == [2]
    moved = list(messages_in(trash))
    assert [m.blob_id for m in moved] == [messages[0].blob_id, messages[2].blob_id]
    assert moved[0].seen and not moved[1].seen
    assert used(alice) == before
    source, target = fresh(inbox), fresh(trash)
    assert (source.message_count, source.unseen_count, source.total_size) == (
        1,
        1,
        messages[1].size,
    )
    assert (target.message_count, target.unseen_count, target.uidnext) == (2, 1, 3)
    assert list(Expunged.objects.filter(folder=inbox).values_list("uid", flat=True)) == [1, 3]
    assert Blob.objects.count() == 3
    assert [e.kind for e in published[-2:]] == ["exists", "expunge"]
    assert published[-1].uids == (1, 3) and published[-2].uids == (1, 2)


def test_move_works_in_a_full_mailbox(make_mailbox):
    """Moving to Trash does not change usage: it must work when the quota is used up."""
    raw = make_raw(body=b"x" * 200)
    mailbox = make_mailbox("full@example.org", quota=len(raw))
    inbox = folder_get(mailbox, "INBOX")
    services.message_append(folder=inbox, raw=raw)
    assert services.messages_move(source=inbox, uids=[1], target=folder_get(mailbox, "Trash")) == [
        (1, 1)
    ]
    assert used(mailbox) == len(raw)


def test_move_within_the_same_folder_renumbers(alice):
    inbox = folder_get(alice, "INBOX")
    fill(inbox, 2)
    assert services.messages_move(source=inbox, uids=[1], target=inbox) == [(1, 3)]
    assert [m.uid for m in messages_in(inbox)] == [2, 3]
    folder = fresh(inbox)
    assert (folder.message_count, folder.uidnext) == (2, 4)


def test_every_write_bumps_modseq(alice):
    inbox = folder_get(alice, "INBOX")
    archive = folder_get(alice, "Archive")
    seen = [fresh(inbox).highestmodseq]

    def step():
        value = fresh(inbox).highestmodseq
        assert value > seen[-1]
        seen.append(value)

    services.message_deliver(raw=make_raw(), recipients=["alice@example.org"])
    step()
    services.message_append(folder=inbox, raw=make_raw())
    step()
    services.messages_store_flags(folder=inbox, uids=[1], flags=["\\Deleted"], mode="add")
    step()
    services.messages_copy(source=archive, uids=[], target=inbox)  # nothing: no bump
    assert fresh(inbox).highestmodseq == seen[-1]
    services.message_append(folder=archive, raw=make_raw())
    services.messages_copy(source=archive, uids=[1], target=inbox)
    step()
    services.messages_move(source=inbox, uids=[2], target=archive)
    step()
    services.messages_expunge(folder=inbox)
    step()


def test_folder_keywords_lists_each_keyword_once(alice):
    from mailboxes.selectors import folder_keywords

    inbox = folder_get(alice, "INBOX")
    fill(inbox, 2, flags=["$Todo", "\\Seen"])
    fill(inbox, 1, flags=["$Done", "$Todo"])
    fill(inbox, 2)
    assert folder_keywords(inbox.id) == ["$Done", "$Todo"]
    assert folder_keywords(folder_get(alice, "Trash").id) == []


# --- what a reader means (the webmail, POP3) --------------------------------------------------


def test_mark_read_unread_flag_unflag_answered(alice, monkeypatch):
    inbox = folder_get(alice, "INBOX")
    fill(inbox, 3)  # uids 1..3, modseqs 2..4
    trained = []
    monkeypatch.setattr(services, "spam_train", lambda **kwargs: trained.append(kwargs))
    assert services.messages_mark_read(folder=inbox, uids=[1, 2]).changed == [
        (1, ["\\Seen"], 5),
        (2, ["\\Seen"], 5),
    ]
    assert fresh(inbox).unseen_count == 1
    assert services.messages_flag(folder=inbox, uids=[2, 3]).changed == [
        (2, ["\\Seen", "\\Flagged"], 6),
        (3, ["\\Flagged"], 6),
    ]
    assert services.messages_mark_unread(folder=inbox, uids=[2]).changed == [(2, ["\\Flagged"], 7)]
    assert services.messages_unflag(folder=inbox, uids=[2, 3]).changed == [
        (2, [], 8),
        (3, [], 8),
    ]
    answered = services.messages_mark_answered(folder=inbox, uids=[3])
    assert answered.changed == [(3, ["\\Answered"], 9)] and answered.answered == [3]
    assert [t["spam"] for t in trained] == [False]  # a message answered was wanted
    rows = {m.uid: m.flags for m in messages_in(inbox)}
    assert rows == {1: ["\\Seen"], 2: [], 3: ["\\Answered"]}
    assert fresh(inbox).unseen_count == 2


def test_append_with_a_flags_value(alice):
    from mailboxes.flags import Flags, SystemFlag

    drafts = folder_get(alice, "Drafts")
    message = services.message_append(
        folder=drafts, raw=make_raw("d"), flags=Flags.of(SystemFlag.DRAFT, SystemFlag.SEEN)
    )
    assert message.flags == ["\\Seen", "\\Draft"]
    assert fresh(drafts).unseen_count == 0


def test_delete_and_folder_empty_remove_whatever_the_flags(
    alice, published, django_capture_on_commit_callbacks
):
    trash = folder_get(alice, "Trash")
    fill(trash, 4)
    services.messages_mark_read(folder=trash, uids=[4])
    with django_capture_on_commit_callbacks(execute=True):
        assert services.messages_delete(folder=trash, uids=[2, 9]) == [2]
    assert published[-1].kind == "expunge" and published[-1].uids == (2,)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.folder_empty(folder=trash) == [1, 3, 4]
    assert published[-1].kind == "expunge" and published[-1].uids == (1, 3, 4)
    after = fresh(trash)
    assert (after.message_count, after.unseen_count, after.total_size) == (0, 0, 0)
    assert used(alice) == 0
    assert services.folder_empty(folder=trash) == []


def test_view_selectors_rows_and_tombstones(alice):
    from mailboxes import selectors

    inbox = folder_get(alice, "INBOX")
    fill(inbox, 5)  # uids 1..5, modseqs 2..6
    services.messages_delete(folder=inbox, uids=[2])  # modseq 7
    services.messages_delete(folder=inbox, uids=[4, 5])  # modseq 8
    assert selectors.folder_uids_between(inbox.pk, 1, 5) == [1, 3]
    assert selectors.folder_uids_between(inbox.pk, 3, 100) == [3]
    assert sorted(selectors.folder_expunged_since(inbox.pk, 6)) == [(2, 7), (4, 8), (5, 8)]
    assert sorted(selectors.folder_expunged_since(inbox.pk, 7)) == [(4, 8), (5, 8)]
    assert selectors.folder_vanished_since(inbox.pk, 6) == [2, 4, 5]
    assert selectors.folder_vanished_since(inbox.pk, 8) == []


def held(mailbox: Mailbox) -> tuple[int, int]:
    """(used_messages, message rows): the counter the message limit reads, and the truth."""
    counted = Mailbox.objects.get(pk=mailbox.pk).used_messages
    return counted, Message.objects.filter(folder__mailbox=mailbox).count()


def test_the_message_count_follows_every_write(alice, make_mailbox):
    inbox, archive = folder_get(alice, "INBOX"), folder_get(alice, "Archive")
    services.message_deliver(raw=make_raw(), recipients=["alice@example.org"])
    fill(inbox, 2)
    services.messages_append(folder=archive, messages=[(make_raw(), [], None)] * 2)
    assert held(alice) == (5, 5)
    services.messages_copy(source=inbox, uids=[1, 2], target=archive)
    services.messages_move(source=inbox, uids=[3], target=folder_get(alice, "Trash"))
    assert held(alice) == (7, 7)
    services.messages_store_flags(folder=archive, uids=[1, 2], flags=["\\Deleted"], mode="add")
    assert held(alice) == (7, 7)  # \Deleted counts until expunged
    services.messages_expunge(folder=fresh(archive))
    assert held(alice) == (5, 5)
    services.message_replace(source=inbox, uid=1, target=inbox, raw=make_raw(subject="new"))
    assert held(alice) == (5, 5)
    work = services.folder_create(mailbox=alice, name="Work")
    fill(work, 3)
    services.folder_delete(folder=work)
    assert held(alice) == (5, 5)
    bob = make_mailbox("bob@example.org")
    services.folder_acl_set(folder=folder_get(bob, "INBOX"), identifier=alice.address, rights="lri")
    services.messages_move(source=inbox, uids=[2], target=folder_get(bob, "INBOX"), shared=True)
    assert held(alice) == (4, 4) and held(bob) == (1, 1)


def test_the_message_limit_refuses_append_copy_and_deliver(make_mailbox):
    mailbox = make_mailbox("small@example.org", quota_messages=2)
    inbox, archive = folder_get(mailbox, "INBOX"), folder_get(mailbox, "Archive")
    fill(inbox, 1)
    with pytest.raises(QuotaExceeded):  # MULTIAPPEND: all or none
        services.messages_append(folder=inbox, messages=[(make_raw(), [], None)] * 2)
    assert held(mailbox) == (1, 1)
    fill(archive, 1)
    with pytest.raises(QuotaExceeded):
        services.messages_copy(source=inbox, uids=[1], target=archive)
    with pytest.raises(QuotaExceeded):
        fill(inbox, 1)
    [result] = services.message_deliver(raw=make_raw(), recipients=["small@example.org"])
    assert result.status == "over_quota"
    assert held(mailbox) == (2, 2)
