"""Flag changes commit without waiting for the disk (mailboxes.transactions): the connection's
sync level comes back for the next writer, and the flags are there after a clean restart."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from django.db import connection

from mailboxes import services
from mailboxes.models import Mailbox, Message
from mailboxes.selectors import folder_get
from tests.mailboxes.conftest import REPO

pytestmark = pytest.mark.django_db(transaction=True)

STORE = """
import django
django.setup()
from mailboxes import services
from mailboxes.selectors import folder_get, mailbox_get
inbox = folder_get(mailbox_get("alice@example.org"), "INBOX")
result = services.messages_store_flags(
    folder=inbox, uids=[1], flags=["\\\\Flagged", "$Important"], mode="add"
)
print(result.changed[0][2], flush=True)
"""


def sync_level() -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA synchronous")
        else:
            cursor.execute("SHOW synchronous_commit")
        return str(cursor.fetchone()[0])


def test_store_leaves_the_connection_synced(make_mailbox, raw):
    alice = make_mailbox("alice@example.org")
    services.message_deliver(raw=raw("one"), recipients=["alice@example.org"])
    inbox = folder_get(alice, "INBOX")
    before = sync_level()
    assert before in ("2", "on")  # synchronous=FULL / synchronous_commit=on
    services.messages_store_flags(folder=inbox, uids=[1], flags=["\\Seen"], mode="add")
    assert sync_level() == before
    assert Message.objects.get(folder=inbox, uid=1).seen


def test_stored_flags_survive_a_restart(make_mailbox, raw, child_env):
    alice = make_mailbox("alice@example.org")
    services.message_deliver(raw=raw("one"), recipients=["alice@example.org"])
    connection.close()  # this process reads anew, as a restarted server would
    child = subprocess.run(
        [sys.executable, "-c", STORE],
        env=child_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    message = Message.objects.get(folder=folder_get(alice, "INBOX"), uid=1)
    assert message.flagged
    assert message.keywords == "$Important"
    assert message.modseq == int(child.stdout)


def test_login_time_is_written_once_a_minute(make_mailbox):
    alice = make_mailbox("alice@example.org")
    services.mailbox_record_login(mailbox=alice)
    first = Mailbox.objects.get(pk=alice.pk).last_login_at
    assert first is not None
    services.mailbox_record_login(mailbox=Mailbox.objects.get(pk=alice.pk))
    assert Mailbox.objects.get(pk=alice.pk).last_login_at == first
    Mailbox.objects.filter(pk=alice.pk).update(last_login_at=first - timedelta(minutes=2))
    services.mailbox_record_login(mailbox=Mailbox.objects.get(pk=alice.pk))
    assert Mailbox.objects.get(pk=alice.pk).last_login_at > first


@pytest.mark.parametrize("together", [False, True])
def test_an_unsynced_transaction_can_be_synced_after_all(make_mailbox, together):
    """sync_this_transaction inside unsynced_atomic: the commit waits for the disk (an
    expunge that removes blob files), on SQLite and PostgreSQL alike, whether the SET LOCAL
    went with the BEGIN or was still to go; the level is the configured one afterwards."""
    from django.db import transaction

    from mailboxes.transactions import sync_this_transaction, unsynced_atomic

    make_mailbox("alice@example.org")
    synced = sync_level()
    with unsynced_atomic(statements_together=together):
        Mailbox.objects.filter(local_part="alice").update(display_name="Alice")
        if connection.vendor == "sqlite" or not together:
            assert sync_level() in ("1", "off")
        assert not connection.synced_commit
        sync_this_transaction()
        assert connection.synced_commit
        assert sync_level() in ("1", synced)  # SQLite: NORMAL in it, the backend syncs
    assert connection.synced_commit
    assert sync_level() == synced
    with transaction.atomic():  # in a synced transaction: nothing to do
        sync_this_transaction()
        assert sync_level() in ("1", synced)
