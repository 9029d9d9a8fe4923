"""Migration 0036: Message.folder has no index of its own (the unique (folder, uid) one starts
with folder_id), on both databases, and dropping it kept the conversation_head triggers
(SQLite's schema editor would have remade the table, and dropped them with it)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from mailboxes import selectors, services
from mailboxes.models import Message

FK_INDEX = "mailboxes_message_folder_id_088c3253"
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
