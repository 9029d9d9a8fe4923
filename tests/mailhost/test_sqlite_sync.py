"""A durable SQLite transaction syncs its WAL after the writer lock is free (mailhost/sqlite3/
base.py): COMMIT runs at synchronous=NORMAL, then the backend gives the locks back and syncs
the -wal file itself before commit() returns, so that the next writer (of this process or
another) runs while this one's bytes reach the disk. An unsynced transaction
(mailboxes.transactions.unsynced_atomic) is not synced; a sync that fails is an error."""

from __future__ import annotations

import errno
import fcntl
import os

import pytest
from django.db import OperationalError, connection, transaction

from mailboxes.models import Domain
from mailboxes.transactions import unsynced_atomic
from mailhost.sqlite3.base import lock_path
from tests.mailboxes.conftest import make_raw

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def syncs(monkeypatch):
    """Every fdatasync the process makes: (the file, whether the writer lock was free)."""
    if connection.vendor != "sqlite":
        pytest.skip("the database is not SQLite")
    seen: list[tuple[str, bool]] = []
    real = os.fdatasync
    lock_file = lock_path(str(connection.settings_dict["NAME"]))

    def spy(fd: int) -> None:
        # flock() locks belong to the open file: another descriptor of the lock file here
        # conflicts with the connection's own lock as with another process's.
        probe = os.open(lock_file, os.O_RDWR)
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(probe, fcntl.LOCK_UN)
            free = True
        except BlockingIOError:
            free = False
        finally:
            os.close(probe)
        seen.append((os.readlink(f"/proc/self/fd/{fd}"), free))
        real(fd)

    monkeypatch.setattr(os, "fdatasync", spy)
    return seen


def sync_level() -> int:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous")
        return cursor.fetchone()[0]


def test_a_durable_commit_syncs_the_wal_once_the_writer_lock_is_free(syncs):
    with transaction.atomic():
        Domain.objects.create(name="durable.example")
        assert sync_level() == 1  # NORMAL: COMMIT itself does not sync
        assert syncs == []
    wal = f"{connection.settings_dict['NAME']}-wal"
    assert syncs == [(os.path.realpath(wal), True)]
    assert sync_level() == 2  # FULL again outside transactions (autocommit writes)


def test_no_pragma_is_made_while_the_writer_locks_are_held(syncs):
    """The level is relaxed before the writer locks are taken and set back after they are
    given back: the locked section holds the transaction's own statements only (each one a
    release of the GIL that the lock's holder must win back while every writer waits)."""
    made: list[tuple[str, bool]] = []
    connection.ensure_connection()
    connection.connection.set_trace_callback(
        lambda sql: made.append((sql.split()[0].upper(), connection.holds_file_lock is not None))
    )
    try:
        with transaction.atomic():
            Domain.objects.create(name="locked.example")
    finally:
        connection.connection.set_trace_callback(None)
    assert [what for what, _locked in made] == ["PRAGMA", "BEGIN", "INSERT", "COMMIT", "PRAGMA"]
    assert [locked for _what, locked in made] == [False, True, True, True, False]
    assert len(syncs) == 1
    assert sync_level() == 2


def test_an_unsynced_transaction_is_not_synced(syncs):
    with unsynced_atomic():
        Domain.objects.create(name="flags.example")
        assert sync_level() == 1
    assert syncs == []
    assert sync_level() == 2
    with transaction.atomic():  # the next transaction is durable again
        Domain.objects.create(name="mail.example")
    assert len(syncs) == 1


def test_a_rolled_back_transaction_is_not_synced(syncs):
    with pytest.raises(ValueError), transaction.atomic():
        Domain.objects.create(name="gone.example")
        raise ValueError("rolled back")
    assert syncs == []
    assert sync_level() == 2
    assert not Domain.objects.filter(name="gone.example").exists()


def test_a_failed_sync_fails_the_commit(syncs, monkeypatch):
    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "fdatasync", broken)
    with pytest.raises(OperationalError, match="could not be synced"), transaction.atomic():
        Domain.objects.create(name="unsynced.example")
    assert sync_level() == 2


def test_a_batch_whose_sync_failed_is_not_run_again(syncs, monkeypatch):
    """The group committer's pieces were committed before the sync failed: each gets the
    error, and none is filed a second time in a transaction of its own."""
    from mailboxes.groupcommit import GroupCommitter
    from tests.mailboxes.test_groupcommit import queue_behind

    group = GroupCommitter()
    failing = {"on": False}
    real = os.fdatasync

    def fails_when_told(fd: int) -> None:
        if failing["on"]:
            raise OSError(errno.EIO, "I/O error")
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fails_when_told)

    def make(name: str):  # noqa: ANN202
        def piece() -> str:
            failing["on"] = True  # the batch's commit, not the holder's, fails to sync
            Domain.objects.create(name=f"{name}.example")
            return name

        return piece

    outcomes = queue_behind(group, {"first": make("first"), "second": make("second")})
    assert all(isinstance(o, OperationalError) for o in outcomes.values()), outcomes
    names = list(Domain.objects.values_list("name", flat=True))
    assert sorted(names) == ["first.example", "second.example"]


def test_the_indexers_transaction_is_not_synced(syncs, make_mailbox):
    """Full-text texts are derived from blobs already stored: a power loss that takes the
    indexer's commit back leaves their pending rows, indexed again later."""
    from mailboxes import fulltext, services

    make_mailbox("alice@example.org")
    syncs.clear()
    services.message_deliver(raw=make_raw("one"), recipients=["alice@example.org"])
    assert len(syncs) == 1  # the delivery's
    pending = fulltext.pending()
    assert len(pending) == 1
    assert fulltext.index_blobs(pending) == 1
    assert fulltext.pending() == []
    assert len(syncs) == 1


def test_an_expunge_of_inline_blobs_is_not_synced(syncs, make_mailbox, settings):
    """An expunge is not mail: committed without waiting for the disk, as a STORE is."""
    from mailboxes import services
    from mailboxes.selectors import folder_get

    settings.MAILHOST_BLOB_INLINE_MAX = 64 * 1024
    inbox = folder_get(make_mailbox("alice@example.org"), "INBOX")
    for n in range(2):
        services.message_append(folder=inbox, raw=make_raw(f"m{n}"))
    services.messages_store_flags(folder=inbox, uids=[1], flags=["\\Deleted"], mode="add")
    synced = len(syncs)
    assert services.messages_expunge(folder=inbox) == [1]
    assert len(syncs) == synced
    assert sync_level() == 2
    services.message_append(folder=inbox, raw=make_raw("m2"))  # mail is durable again
    assert len(syncs) == synced + 1


def test_an_expunge_that_removes_blob_files_is_synced_before_they_go(
    syncs, make_mailbox, blob_files, monkeypatch
):
    """A file removed after an unsynced commit: a power loss could bring back the row that
    names it, without its bytes. So such an expunge is synced, and the files go after."""
    from django.core.files.storage import storages

    from mailboxes import services
    from mailboxes.selectors import blob_path, folder_get

    inbox = folder_get(make_mailbox("alice@example.org"), "INBOX")
    kept = services.message_append(folder=inbox, raw=make_raw("kept"))
    gone = services.message_append(folder=inbox, raw=make_raw("gone"))
    services.messages_store_flags(folder=inbox, uids=[gone.uid], flags=["\\Deleted"], mode="add")
    path = blob_path(gone.blob)
    assert os.path.exists(path)
    storage = storages["blobs"]
    real_delete = storage.delete
    synced_at_delete = []

    def delete(name: str) -> None:
        synced_at_delete.append(len(syncs))
        real_delete(name)

    monkeypatch.setattr(storage, "delete", delete)
    synced = len(syncs)
    assert services.messages_expunge(folder=inbox) == [gone.uid]
    assert len(syncs) == synced + 1
    assert synced_at_delete == [synced + 1]  # the file went after the sync
    assert not os.path.exists(path)
    assert os.path.exists(blob_path(kept.blob))


def _temporary_files() -> list[str]:
    """The files this process has open that SQLite made as temporary ones (unlinked, named
    etilqs_...)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the listing's own descriptor, closed meanwhile
            continue
        if "etilqs_" in target:
            found.append(target)
    return found


def test_a_statements_journal_stays_in_memory():
    """A statement that changes many pages inside a transaction keeps the journal that would
    undo it in memory (PRAGMA temp_store=MEMORY), not in a temporary file made for it."""
    if connection.vendor != "sqlite" or not os.path.isdir("/proc/self/fd"):
        pytest.skip("the database is not SQLite, or no /proc/self/fd")
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE journal_probe (id INTEGER PRIMARY KEY, v TEXT UNIQUE)")
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO journal_probe (v) VALUES (%s)",
                [(f"{n:05d}" + "y" * 400,) for n in range(2000)],
            )
        with transaction.atomic(), connection.cursor() as cursor:
            # Many rows, and a unique index that may refuse one half-way: its own journal.
            cursor.execute("UPDATE journal_probe SET v = v || 'x'")
            assert _temporary_files() == []
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE journal_probe")
