"""The mail-store services POP3 added: messages_delete (UPDATE) and message_caches_put."""

from __future__ import annotations

import pytest

from mailboxes import events, services
from mailboxes.models import Expunged, Message
from mailboxes.selectors import folder_get, messages_in
from tests.protocols.pop3.conftest import deliver

pytestmark = pytest.mark.django_db(transaction=True)


def test_messages_delete_removes_whatever_the_flags(mailbox, settings):
    settings.REDIS_URL = None  # events dispatched in-process, to this test
    for n in range(4):
        deliver(b"Subject: %d\r\n\r\nbody\r\n" % n)
    inbox = folder_get(mailbox, "INBOX")
    heard: list[events.ChangeEvent] = []
    unsubscribe = events.subscribe(heard.append)
    try:
        removed = services.messages_delete(folder=inbox, uids=[2, 4, 99])
    finally:
        unsubscribe()
    assert removed == [2, 4]
    assert list(messages_in(inbox).values_list("uid", flat=True)) == [1, 3]
    inbox.refresh_from_db()
    mailbox.refresh_from_db()
    size = len(b"Subject: 0\r\n\r\nbody\r\n")
    assert (inbox.message_count, inbox.unseen_count, inbox.total_size) == (2, 2, 2 * size)
    assert mailbox.used_bytes == 2 * size
    assert sorted(Expunged.objects.filter(folder=inbox).values_list("uid", flat=True)) == [2, 4]
    [event] = [e for e in heard if e.kind == "expunge"]
    assert event.uids == (2, 4) and event.folder_id == inbox.pk
    assert services.messages_delete(folder=inbox, uids=[2]) == []


def test_message_caches_put_merges_keys(mailbox):
    deliver(b"Subject: x\r\n\r\ny\r\n")
    [message] = Message.objects.all()
    services.message_caches_put(key="imap", values={message.pk: {"a": 1}})
    services.message_caches_put(key="pop3", values={message.pk: {"v": 1, "size": 3}})
    message.refresh_from_db()
    assert message.mime_cache == {"imap": {"a": 1}, "pop3": {"v": 1, "size": 3}}
