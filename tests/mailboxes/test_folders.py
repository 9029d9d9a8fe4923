"""folder_create, folder_rename, folder_delete, folder_set_subscribed, folder_claim_recent."""

from __future__ import annotations

import os

import pytest

from mailboxes import selectors, services
from mailboxes.exceptions import AlreadyExists, FolderError
from mailboxes.models import Blob, Folder, Mailbox, Message, SpecialUse
from mailboxes.selectors import blob_path, folder_get, folders_of, messages_in
from tests.mailboxes.conftest import make_raw

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(make_mailbox):
    return make_mailbox("alice@example.org")


def names(mailbox) -> list[str]:
    return [f.name for f in folders_of(mailbox)]


def test_create_makes_missing_parents(alice):
    folder = services.folder_create(mailbox=alice, name="Projects/2026/Q4")
    assert folder.name == "Projects/2026/Q4" and folder.uidnext == 1
    assert {"Projects", "Projects/2026", "Projects/2026/Q4"} <= set(names(alice))


def test_create_special_use(alice):
    folder = services.folder_create(mailbox=alice, name="Old", special_use=SpecialUse.ARCHIVE)
    assert folder.special_use == "\\Archive"
    with pytest.raises(FolderError):
        services.folder_create(mailbox=alice, name="X", special_use="\\Bogus")


@pytest.mark.parametrize(
    "name", ["", "a//b", "/a", "a/", "a/../b", "a*b", "a%b", "a\r\nb", "x" * 501]
)
def test_create_refuses_bad_names(alice, name):
    count = Folder.objects.count()
    with pytest.raises(FolderError):
        services.folder_create(mailbox=alice, name=name)
    assert Folder.objects.count() == count


def test_create_refuses_existing_names_and_inbox_in_any_case(alice):
    with pytest.raises(AlreadyExists):
        services.folder_create(mailbox=alice, name="Sent")
    with pytest.raises(AlreadyExists):
        services.folder_create(mailbox=alice, name="inbox")


def test_inbox_children_are_canonical(alice):
    folder = services.folder_create(mailbox=alice, name="inbox/Lists")
    assert folder.name == "INBOX/Lists"


def test_uidvalidity_never_repeats_after_delete_and_create(alice):
    first = services.folder_create(mailbox=alice, name="Temp")
    services.folder_delete(folder=first)
    second = services.folder_create(mailbox=alice, name="Temp")
    assert second.uidvalidity > first.uidvalidity


def test_rename_moves_children_and_gives_new_uidvalidity(alice):
    parent = services.folder_create(mailbox=alice, name="Work")
    child = services.folder_create(mailbox=alice, name="Work/Clients")
    services.message_append(folder=child, raw=make_raw())
    old_validity = Folder.objects.get(pk=child.pk).uidvalidity
    renamed = services.folder_rename(folder=parent, new_name="Job/Current")
    assert renamed.pk == parent.pk and renamed.name == "Job/Current"
    assert "Job" in names(alice)
    moved_child = Folder.objects.get(pk=child.pk)
    assert moved_child.name == "Job/Current/Clients"
    assert moved_child.uidvalidity > old_validity
    assert [m.uid for m in messages_in(moved_child)] == [1]  # messages stay with the folder
    assert not any(n.startswith("Work") for n in names(alice))


def test_rename_refusals(alice):
    work = services.folder_create(mailbox=alice, name="Work")
    services.folder_create(mailbox=alice, name="Work/Sub")
    services.folder_create(mailbox=alice, name="Other/Sub")
    with pytest.raises(AlreadyExists):
        services.folder_rename(folder=work, new_name="Sent")
    with pytest.raises(AlreadyExists):
        services.folder_rename(folder=work, new_name="INBOX")
    with pytest.raises(FolderError):
        services.folder_rename(folder=work, new_name="Work/Sub/Deeper")
    # The child "Work/Sub" would land on the existing "Other/Sub": refused, nothing changed.
    other = Folder.objects.get(mailbox=alice, name="Other")
    services.folder_delete(folder=Folder.objects.get(mailbox=alice, name="Other/Sub"))
    services.folder_delete(folder=other)
    services.folder_create(mailbox=alice, name="Other/Sub")
    with pytest.raises(AlreadyExists):
        services.folder_rename(folder=work, new_name="Other")
    assert {"Work", "Work/Sub", "Other", "Other/Sub"} <= set(names(alice))


def test_rename_inbox_moves_its_messages_and_leaves_it_empty(alice):
    """RFC 9051 6.3.6: renaming INBOX moves its messages to a new folder; INBOX stays."""
    inbox = folder_get(alice, "INBOX")
    child = services.folder_create(mailbox=alice, name="INBOX/Keep")
    for n in range(3):
        services.message_append(folder=inbox, raw=make_raw(f"m{n}"))
    before = Mailbox.objects.get(pk=alice.pk).used_bytes
    target = services.folder_rename(folder=inbox, new_name="Old Mail")
    assert target.name == "Old Mail" and target.pk != inbox.pk
    assert [m.subject for m in messages_in(target)] == ["m0", "m1", "m2"]
    assert not messages_in(inbox).exists()
    kept = Folder.objects.get(pk=inbox.pk)
    assert kept.name == "INBOX" and kept.message_count == 0 and kept.uidnext == 4
    assert Folder.objects.get(pk=child.pk).name == "INBOX/Keep"  # inferiors stay
    assert Mailbox.objects.get(pk=alice.pk).used_bytes == before
    # INBOX may even be renamed below itself.
    services.message_append(folder=inbox, raw=make_raw("later"))
    below = services.folder_rename(folder=inbox, new_name="INBOX/Older")
    assert [m.subject for m in messages_in(below)] == ["later"]


def test_delete_removes_messages_usage_and_unused_blobs(
    blob_files, alice, django_capture_on_commit_callbacks
):
    folder = services.folder_create(mailbox=alice, name="Doomed")
    message = services.message_append(folder=folder, raw=make_raw())
    path = blob_path(message.blob)
    with django_capture_on_commit_callbacks(execute=True):
        services.folder_delete(folder=folder)
    assert not Folder.objects.filter(pk=folder.pk).exists()
    assert not Message.objects.exists() and not Blob.objects.exists()
    assert not os.path.exists(path)
    assert Mailbox.objects.get(pk=alice.pk).used_bytes == 0


def test_delete_refusals(alice):
    with pytest.raises(FolderError):
        services.folder_delete(folder=folder_get(alice, "INBOX"))
    parent = services.folder_create(mailbox=alice, name="Parent/Child")
    with pytest.raises(FolderError):
        services.folder_delete(folder=Folder.objects.get(mailbox=alice, name="Parent"))
    services.folder_delete(folder=parent)
    services.folder_delete(folder=Folder.objects.get(mailbox=alice, name="Parent"))


def test_subscribe(alice):
    folder = folder_get(alice, "Archive")
    services.folder_set_subscribed(folder=folder, subscribed=False)
    assert "Archive" not in selectors.subscriptions_of(alice)


def test_claim_recent(alice):
    inbox = folder_get(alice, "INBOX")
    services.message_deliver(raw=make_raw(), recipients=["alice@example.org"])
    services.message_deliver(raw=make_raw(), recipients=["alice@example.org"])
    assert services.folder_claim_recent(folder=inbox) == (1, 3)
    assert services.folder_claim_recent(folder=inbox) == (3, 3)  # the next session sees none
    services.message_deliver(raw=make_raw(), recipients=["alice@example.org"])
    assert services.folder_claim_recent(folder=inbox) == (3, 4)


def test_claim_recent_with_nothing_left_opens_no_transaction(alice, monkeypatch):
    # Every selected session claims after each arrival it announces, and all but the first
    # find nothing left: that answer needs no write transaction (no writer lock on SQLite).
    from django.db import transaction

    inbox = folder_get(alice, "INBOX")
    services.message_deliver(raw=make_raw(), recipients=["alice@example.org"])
    assert services.folder_claim_recent(folder=inbox, upto=2) == (1, 2)

    def no_transaction(*args, **kwargs):
        raise AssertionError("a write transaction for nothing to claim")

    monkeypatch.setattr(transaction, "atomic", no_transaction)
    assert services.folder_claim_recent(folder=inbox, upto=2) == (2, 2)
    assert services.folder_claim_recent(folder=inbox) == (2, 2)


@pytest.mark.django_db(transaction=True)
def test_migration_moves_folder_subscriptions_to_their_own_rows():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("mailboxes", "0009_merge_sieve_scripts_sender_list_pattern")]
    after = [("mailboxes", "0010_subscriptions")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old_apps = executor.loader.project_state(before).apps
        OldDomain = old_apps.get_model("mailboxes", "Domain")
        OldMailbox = old_apps.get_model("mailboxes", "Mailbox")
        OldFolder = old_apps.get_model("mailboxes", "Folder")
        domain = OldDomain.objects.create(name="migrate.example")
        box = OldMailbox.objects.create(domain=domain, local_part="a", local_key="a")
        for name, subscribed, validity in (
            ("INBOX", True, 1),
            ("Old", False, 2),
            ("Lists", True, 3),
        ):
            OldFolder.objects.create(
                mailbox=box, name=name, subscribed=subscribed, uidvalidity=validity
            )
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        new_apps = executor.loader.project_state(after).apps
        Subscription = new_apps.get_model("mailboxes", "Subscription")
        names = set(Subscription.objects.filter(mailbox_id=box.id).values_list("name", flat=True))
        assert names == {"INBOX", "Lists"}
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
