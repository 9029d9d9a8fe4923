"""The message list and the actions on many messages."""

from __future__ import annotations

import pytest

from mailboxes import services
from mailboxes.models import Expunged, Message
from tests.webmail.conftest import deliver, folder, make_raw
from webmail.views.common import PAGE_SIZE

pytestmark = pytest.mark.django_db


def fill(count: int) -> None:
    for n in range(count):
        deliver(make_raw(subject=f"message {n}"))


def uids_on(response) -> list[int]:
    return [r["uid"] for r in response.context["rows"]]


def test_root_goes_to_the_inbox(web, inbox):
    response = web.get("/")
    assert response.status_code == 302
    assert response["Location"] == f"/f/{inbox.pk}/"


def test_list_shows_newest_first_with_columns(web, inbox):
    deliver(make_raw(subject="first", sender="Carol <carol@remote.example>"))
    deliver(
        make_raw(subject="second", attachments=(("a.pdf", "application/pdf", b"%PDF"),)),
    )
    services.messages_store_flags(folder=inbox, uids=[1], flags=["\\Flagged"], mode="add")
    response = web.get(f"/f/{inbox.pk}/")
    assert response.status_code == 200
    rows = response.context["rows"]
    assert [r["subject"] for r in rows] == ["second", "first"]
    assert rows[0]["attachment"] and not rows[1]["attachment"]
    assert rows[1]["flagged"] and rows[1]["who"] == "Carol"
    assert not rows[0]["seen"]
    body = response.content.decode()
    assert "msg unread" in body and "Has attachments" in body and 'title="Flagged"' in body
    assert "2 messages" in body and "2 unread" in body


def test_sent_folder_shows_recipients(web, alice):
    sent = folder(alice, "Sent")
    services.message_append(
        folder=sent, raw=make_raw(to="Dora <dora@remote.example>"), flags=["\\Seen"]
    )
    response = web.get(f"/f/{sent.pk}/")
    assert response.context["rows"][0]["who"] == "To: Dora"


def test_keyset_pages_walk_the_whole_folder(web, inbox):
    fill(PAGE_SIZE * 2 + 5)
    total = PAGE_SIZE * 2 + 5
    first = web.get(f"/f/{inbox.pk}/")
    assert uids_on(first) == list(range(total, total - PAGE_SIZE, -1))
    assert first.context["has_older"] and not first.context["has_newer"]
    second = web.get(f"/f/{inbox.pk}/?before={first.context['older_uid']}")
    assert uids_on(second) == list(range(total - PAGE_SIZE, total - 2 * PAGE_SIZE, -1))
    assert second.context["has_older"] and second.context["has_newer"]
    third = web.get(f"/f/{inbox.pk}/?before={second.context['older_uid']}")
    assert uids_on(third) == [5, 4, 3, 2, 1]
    assert not third.context["has_older"]
    back = web.get(f"/f/{inbox.pk}/?after={third.context['newer_uid']}")
    assert uids_on(back) == uids_on(second)
    assert back.context["has_newer"] and back.context["has_older"]


def test_page_queries_do_not_grow_with_the_folder(web, inbox, django_assert_max_num_queries):
    fill(PAGE_SIZE + 10)
    with django_assert_max_num_queries(12):
        web.get(f"/f/{inbox.pk}/?before=40")


def test_bad_page_parameter(web, inbox):
    assert web.get(f"/f/{inbox.pk}/?before=abc").status_code == 400


def test_folder_of_another_mailbox_is_not_found(web, bob):
    other = folder(bob, "INBOX")
    assert web.get(f"/f/{other.pk}/").status_code == 404
    assert web.post(f"/f/{other.pk}/bulk/", {"action": "read", "uid": "1"}).status_code == 404
    assert web.get("/f/999999/").status_code == 404


def test_empty_folder(web, alice):
    response = web.get(f"/f/{folder(alice, 'Junk').pk}/")
    assert b"No messages here." in response.content


@pytest.mark.parametrize(
    ("action", "column", "value"),
    [("read", "seen", True), ("flag", "flagged", True)],
)
def test_flag_actions(web, inbox, action, column, value):
    fill(3)
    response = web.post(f"/f/{inbox.pk}/bulk/", {"action": action, "uid": ["1", "3"]})
    assert response.status_code == 302
    states = dict(Message.objects.filter(folder=inbox).values_list("uid", column))
    assert states == {1: value, 2: not value, 3: value}
    opposite = {"read": "unread", "flag": "unflag"}[action]
    web.post(f"/f/{inbox.pk}/bulk/", {"action": opposite, "uid": ["1"]})
    states = dict(Message.objects.filter(folder=inbox).values_list("uid", column))
    assert states == {1: not value, 2: not value, 3: value}


def test_read_updates_the_unseen_counter(web, inbox):
    fill(3)
    web.post(f"/f/{inbox.pk}/bulk/", {"action": "read", "uid": ["1", "2"]})
    inbox.refresh_from_db()
    assert inbox.unseen_count == 1


def test_move(web, alice, inbox):
    fill(3)
    target = services.folder_create(mailbox=alice, name="Projects")
    response = web.post(
        f"/f/{inbox.pk}/bulk/", {"action": "move", "uid": ["2", "3"], "target": str(target.pk)}
    )
    assert response.status_code == 302
    assert list(Message.objects.filter(folder=inbox).values_list("uid", flat=True)) == [1]
    assert Message.objects.filter(folder=target).count() == 2
    # IMAP sees the move as expunges in the source (tombstones for QRESYNC).
    assert set(Expunged.objects.filter(folder=inbox).values_list("uid", flat=True)) == {2, 3}


def test_move_needs_a_target_of_ones_own(web, inbox, bob):
    fill(1)
    other = folder(bob, "INBOX")
    web.post(f"/f/{inbox.pk}/bulk/", {"action": "move", "uid": ["1"], "target": str(other.pk)})
    assert Message.objects.filter(folder=inbox).count() == 1
    assert Message.objects.filter(folder=other).count() == 0
    response = web.post(f"/f/{inbox.pk}/bulk/", {"action": "move", "uid": ["1"]}, follow=True)
    assert b"Choose a folder to move to." in response.content


def test_move_into_the_same_folder(web, inbox):
    fill(1)
    response = web.post(
        f"/f/{inbox.pk}/bulk/",
        {"action": "move", "uid": ["1"], "target": str(inbox.pk)},
        follow=True,
    )
    assert b"already in that folder" in response.content


def test_archive(web, alice, inbox):
    fill(2)
    web.post(f"/f/{inbox.pk}/bulk/", {"action": "archive", "uid": ["1"]})
    assert Message.objects.filter(folder=folder(alice, "Archive")).count() == 1
    archive = folder(alice, "Archive")
    response = web.post(f"/f/{archive.pk}/bulk/", {"action": "archive", "uid": ["1"]}, follow=True)
    assert b"already in Archive" in response.content


def test_junk(web, alice, inbox):
    fill(1)
    web.post(f"/f/{inbox.pk}/bulk/", {"action": "junk", "uid": ["1"]})
    assert Message.objects.filter(folder=folder(alice, "Junk")).count() == 1


def test_delete_moves_to_trash_then_for_good(web, alice, inbox):
    fill(2)
    web.post(f"/f/{inbox.pk}/bulk/", {"action": "delete", "uid": ["1", "2"]})
    trash = folder(alice, "Trash")
    assert Message.objects.filter(folder=inbox).count() == 0
    assert Message.objects.filter(folder=trash).count() == 2
    response = web.post(f"/f/{trash.pk}/bulk/", {"action": "delete", "uid": ["1"]}, follow=True)
    assert b"1 message deleted for good." in response.content
    assert list(Message.objects.filter(folder=trash).values_list("uid", flat=True)) == [2]
    alice.refresh_from_db()
    assert alice.used_bytes == Message.objects.get(folder=trash).size


def test_delete_without_trash_is_for_good(web, alice, inbox):
    fill(1)
    services.folder_delete(folder=folder(alice, "Trash"))
    web.post(f"/f/{inbox.pk}/bulk/", {"action": "delete", "uid": ["1"]})
    assert Message.objects.filter(folder__mailbox=alice).count() == 0


def test_archive_without_archive_folder(web, alice, inbox):
    fill(1)
    services.folder_delete(folder=folder(alice, "Archive"))
    response = web.post(f"/f/{inbox.pk}/bulk/", {"action": "archive", "uid": ["1"]}, follow=True)
    assert b"There is no Archive folder." in response.content


def test_bulk_errors(web, inbox):
    fill(1)
    assert web.post(f"/f/{inbox.pk}/bulk/", {"action": "explode", "uid": ["1"]}).status_code == 400
    assert web.post(f"/f/{inbox.pk}/bulk/", {"action": "read", "uid": ["x"]}).status_code == 400
    response = web.post(f"/f/{inbox.pk}/bulk/", {"action": "read"}, follow=True)
    assert b"Select some messages first." in response.content
    assert web.get(f"/f/{inbox.pk}/bulk/").status_code == 405


def test_bulk_returns_to_next_on_this_site_only(web, inbox):
    fill(1)
    response = web.post(
        f"/f/{inbox.pk}/bulk/", {"action": "read", "uid": ["1"], "next": f"/m/{inbox.pk}/1/"}
    )
    assert response["Location"] == f"/m/{inbox.pk}/1/"
    response = web.post(
        f"/f/{inbox.pk}/bulk/", {"action": "read", "uid": ["1"], "next": "https://evil.example/"}
    )
    assert response["Location"] == f"/f/{inbox.pk}/"
    # After the message left the folder, its page is gone: back to the list.
    response = web.post(
        f"/f/{inbox.pk}/bulk/", {"action": "archive", "uid": ["1"], "next": f"/m/{inbox.pk}/1/"}
    )
    assert response["Location"] == f"/f/{inbox.pk}/"


def test_full_mailbox_can_still_archive_and_delete(web, alice, inbox):
    fill(2)
    alice.refresh_from_db()
    alice.quota = alice.used_bytes
    alice.save()
    web.post(f"/f/{inbox.pk}/bulk/", {"action": "archive", "uid": ["1"]})
    web.post(f"/f/{inbox.pk}/bulk/", {"action": "delete", "uid": ["2"]})
    assert Message.objects.filter(folder=inbox).count() == 0


def test_store_failure_is_reported(web, inbox, monkeypatch):
    from mailboxes.exceptions import StorageError

    fill(1)

    def broken(**kwargs):  # the database or the disk failing under the service
        raise StorageError("the store is unavailable")

    monkeypatch.setattr(services, "messages_move", broken)
    response = web.post(f"/f/{inbox.pk}/bulk/", {"action": "archive", "uid": ["1"]}, follow=True)
    assert b"Could not archive: the store is unavailable" in response.content
    assert Message.objects.filter(folder=inbox).count() == 1


def test_empty_trash(web, alice, inbox):
    fill(3)
    web.post(f"/f/{inbox.pk}/bulk/", {"action": "delete", "uid": ["1", "2", "3"]})
    trash = folder(alice, "Trash")
    page = web.get(f"/f/{trash.pk}/")
    assert page.context["can_empty"] and b'data-test="empty"' in page.content
    response = web.post(f"/f/{trash.pk}/bulk/", {"action": "empty"}, follow=True)
    assert b"Trash emptied: 3 messages deleted for good." in response.content
    assert not Message.objects.filter(folder__mailbox=alice).exists()
    assert Expunged.objects.filter(folder=trash).count() == 3
    alice.refresh_from_db()
    assert alice.used_bytes == 0
    assert not web.get(f"/f/{trash.pk}/").context["can_empty"]


def test_only_trash_and_junk_can_be_emptied(web, inbox):
    fill(1)
    assert not web.get(f"/f/{inbox.pk}/").context["can_empty"]
    response = web.post(f"/f/{inbox.pk}/bulk/", {"action": "empty"}, follow=True)
    assert b"Only Trash and Junk can be emptied, not INBOX." in response.content
    assert Message.objects.filter(folder=inbox).count() == 1
