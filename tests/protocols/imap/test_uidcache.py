"""The per-process cache of folder views behind the sequence map: always exact, read cheaply."""

from __future__ import annotations

import pytest

from mailboxes import selectors, services
from mailboxes.models import Folder
from protocols.imap import uidcache

pytestmark = pytest.mark.django_db


@pytest.fixture
def inbox(make_mailbox):
    uidcache.clear()
    mailbox = make_mailbox("alice@example.org")
    return selectors.folder_get(mailbox, "INBOX")


def deliver(count: int) -> None:
    for i in range(count):
        services.message_deliver(
            raw=f"Subject: {i}\r\n\r\nbody\r\n".encode(), recipients=["alice@example.org"]
        )


def current(folder: Folder):
    folder.refresh_from_db()
    return uidcache.folder_uids(folder.id, folder.highestmodseq, folder.uidnext)


def true_uids(folder: Folder) -> list[int]:
    return list(selectors.messages_in(folder).values_list("uid", flat=True))


def test_unchanged_folder_is_served_without_a_query(inbox, django_assert_num_queries):
    deliver(5)
    assert list(current(inbox)) == [1, 2, 3, 4, 5]
    with django_assert_num_queries(0):
        assert list(uidcache.folder_uids(inbox.id, inbox.highestmodseq, inbox.uidnext)) == [
            1,
            2,
            3,
            4,
            5,
        ]


def test_expunges_and_new_mail_are_brought_forward_in_two_queries(inbox, django_assert_num_queries):
    deliver(6)
    current(inbox)
    services.messages_store_flags(folder=inbox, uids=[2, 5], flags=["\\Deleted"], mode="add")
    services.messages_expunge(folder=inbox)
    deliver(2)
    inbox.refresh_from_db()
    with django_assert_num_queries(2):
        uids = uidcache.folder_uids(inbox.id, inbox.highestmodseq, inbox.uidnext)
    assert list(uids) == true_uids(inbox) == [1, 3, 4, 6, 7, 8]


def test_a_move_out_and_a_flag_change_keep_the_list_exact(inbox, make_mailbox):
    deliver(4)
    current(inbox)
    trash = selectors.folder_get(inbox.mailbox_id, "Trash")
    services.messages_move(source=inbox, uids=[1, 3], target=trash)
    services.messages_store_flags(folder=inbox, uids=[4], flags=["\\Seen"], mode="add")
    assert list(current(inbox)) == true_uids(inbox) == [2, 4]
    assert list(current(trash)) == true_uids(trash) == [1, 2]


def test_uids_beyond_the_folder_row_are_left_for_the_session_to_announce(inbox):
    deliver(3)
    inbox.refresh_from_db()
    stale = (inbox.highestmodseq, inbox.uidnext)
    deliver(2)  # arrives after the session read the folder row
    assert list(uidcache.folder_uids(inbox.id, *stale)) == [1, 2, 3]
    assert list(current(inbox)) == [1, 2, 3, 4, 5]


def test_callers_get_their_own_copy(inbox):
    deliver(2)
    first = current(inbox)
    first.append(99)
    assert list(current(inbox)) == [1, 2]


def test_an_older_view_keeps_what_was_expunged_since(inbox, django_assert_num_queries):
    deliver(5)
    inbox.refresh_from_db()
    then = (inbox.highestmodseq, inbox.uidnext)
    services.messages_store_flags(folder=inbox, uids=[2, 5], flags=["\\Deleted"], mode="add")
    services.messages_expunge(folder=inbox)
    deliver(1)
    assert list(uidcache.folder_uids(inbox.id, *then)) == [1, 2, 3, 4, 5]  # read whole
    assert list(current(inbox)) == true_uids(inbox) == [1, 3, 4, 6]
    with django_assert_num_queries(1):  # derived back from the newer entry
        assert list(uidcache.folder_uids(inbox.id, *then)) == [1, 2, 3, 4, 5]
    assert selectors.folder_view_count(inbox.id, then[0], 2, 6) == 4


def test_a_view_with_announced_mail_since_expunged(inbox):
    deliver(2)
    inbox.refresh_from_db()
    selected_modseq = inbox.highestmodseq
    assert list(uidcache.folder_uids(inbox.id, selected_modseq, 3)) == [1, 2]
    deliver(2)  # announced to the session by EXISTS: its view now reaches UID 4
    services.messages_store_flags(folder=inbox, uids=[1, 3], flags=["\\Deleted"], mode="add")
    services.messages_expunge(folder=inbox)
    assert list(uidcache.folder_uids(inbox.id, selected_modseq, 5)) == [1, 2, 3, 4]  # forward
    uidcache.clear()
    assert list(uidcache.folder_uids(inbox.id, selected_modseq, 5)) == [1, 2, 3, 4]  # whole
