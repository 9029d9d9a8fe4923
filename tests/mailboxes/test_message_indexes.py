"""Migration 0036: Message.folder has no index of its own (the unique (folder, uid) one starts
with folder_id), on both databases, and dropping it kept the conversation_head triggers
(SQLite's schema editor would have remade the table, and dropped them with it). Migrations 0037
and 0038: the Conversation counts made from the messages there, and the (folder, thread_key,
uid) index without the flags, both undone backwards, with every trigger still there after."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from mailboxes import selectors, services
from mailboxes.models import Conversation, Message

FK_INDEX = "mailboxes_message_folder_id_088c3253"
# Each test leaves the schema at its AFTER: the newest migrations again after it.
pytestmark = pytest.mark.usefixtures("latest_schema")
BEFORE = [("mailboxes", "0035_mailbox_quota_messages")]
AFTER = [("mailboxes", "0036_message_folder_no_fk_index")]


def indexes() -> dict[str, list[str]]:
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, "mailboxes_message")
    return {name: spec["columns"] for name, spec in found.items() if spec["index"]}


def raw_of(n: int) -> bytes:
    return (
        f"From: b@remote.example\r\nSubject: s{n}\r\nMessage-ID: <{n}@y.example>\r\n"
        f"References: <root@y.example>\r\n\r\nbody {n}\r\n"
    ).encode()


@pytest.mark.django_db(transaction=True)
def test_the_folder_index_is_dropped_and_made_again_backwards(make_mailbox):
    assert FK_INDEX not in indexes()
    # Every query by folder alone has indexes that start with folder_id.
    assert ["folder_id", "uid"] in indexes().values()
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        assert indexes()[FK_INDEX] == ["folder_id"]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
    assert FK_INDEX not in indexes()
    alice = make_mailbox("alice@example.org")
    inbox = selectors.folder_get(alice, "INBOX")
    first = services.message_append(folder=inbox, raw=raw_of(1))
    reply = services.message_append(folder=inbox, raw=raw_of(2))
    heads = dict(Message.objects.filter(folder=inbox).values_list("uid", "conversation_head"))
    assert heads == {first.uid: False, reply.uid: True}  # the triggers are still there


THREAD_BEFORE = [("mailboxes", "0036_message_folder_no_fk_index")]
THREAD_AFTER = [("mailboxes", "0038_message_folder_thread_uid")]


def kept_and_counted(folder_id: int) -> tuple[list, list]:
    kept = Conversation.objects.filter(folder_id=folder_id).values_list(
        "thread_key", "messages", "unseen", "flagged", "attachments"
    )
    rows = list(Message.objects.filter(folder_id=folder_id).values_list("seen", "flagged"))
    counted = (
        "<root@y.example>",
        len(rows),
        sum(not s for s, _ in rows),
        sum(f for _, f in rows),
        0,
    )
    return list(kept), [counted]


@pytest.mark.django_db(transaction=True)
def test_the_counts_are_made_from_the_messages_and_the_thread_index_loses_its_flags(make_mailbox):
    alice = make_mailbox("alice@example.org")
    inbox = selectors.folder_get(alice, "INBOX")
    first = services.message_append(folder=inbox, raw=raw_of(1))
    services.message_append(folder=inbox, raw=raw_of(2))
    services.messages_store_flags(folder=inbox, uids=[first.uid], flags=["\\Flagged"], mode="add")
    executor = MigrationExecutor(connection)
    executor.migrate(THREAD_BEFORE)
    try:
        assert indexes()["message_folder_thread_flags"] == [
            "folder_id", "thread_key", "uid", "seen", "flagged", "has_attachments"
        ]  # fmt: skip
        assert "mailboxes_conversation" not in connection.introspection.table_names()
        # a message written while nothing counts: the counts are made from the rows forward
        services.message_append(folder=inbox, raw=raw_of(3))
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(THREAD_AFTER)
    assert "message_folder_thread_flags" not in indexes()
    assert indexes()["message_folder_thread_uid"] == ["folder_id", "thread_key", "uid"]
    kept, counted = kept_and_counted(inbox.pk)
    assert kept == counted and counted[0][1:4] == (3, 3, 1)
    services.messages_store_flags(folder=inbox, uids=[first.uid], flags=["\\Seen"], mode="add")
    last = services.message_append(folder=inbox, raw=raw_of(4))
    kept, counted = kept_and_counted(inbox.pk)
    assert kept == counted and counted[0][1:4] == (4, 3, 1)  # the count triggers are there
    heads = Message.objects.filter(folder=inbox, conversation_head=True).values_list("uid")
    assert list(heads) == [(last.uid,)]  # and the head triggers
