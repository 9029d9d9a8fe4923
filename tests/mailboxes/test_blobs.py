"""Blob storage: durable writes, sharing, release, garbage collection."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.storage import storages
from django.core.management import call_command
from django.utils import timezone

from mailboxes import services
from mailboxes.models import Blob, Message
from mailboxes.selectors import (
    blob_path,
    blob_read,
    blob_read_many,
    blob_read_range,
    blob_stream,
    folder_get,
)
from tests.mailboxes.conftest import make_raw
from tests.support.blobreads import FileReads

# The file path: every blob a file (the inline tests at the end turn inline storage back on).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("blob_files")]


def age(path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def files_in(root) -> set[str]:
    return {
        os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")
        for d, _, names in os.walk(root)
        for f in names
    }


def test_blob_store_writes_once_and_reads_back(blob_dir):
    raw = make_raw(body=b"\x00\xff binary \r\n" * 100)
    blob = services.blob_store(raw)
    assert blob.size == len(raw)
    assert blob_read(blob) == blob_read(blob.pk) == blob_read(blob.name) == raw
    assert blob_path(blob).startswith(str(blob_dir))
    assert files_in(blob_dir) == {blob.name}  # no temporary file left behind
    assert Blob.objects.get(pk=blob.pk).data is None
    assert blob_read(blob.name, limit=10) == raw[:10]


def test_release_only_unused_blobs(make_mailbox, django_capture_on_commit_callbacks):
    alice = make_mailbox("alice@example.org")
    inbox = folder_get(alice, "INBOX")
    used = services.message_append(folder=inbox, raw=make_raw()).blob
    unused = services.blob_store(b"x")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.blob_release([used.pk, unused.pk]) == 1
    assert list(Blob.objects.values_list("pk", flat=True)) == [used.pk]
    assert os.path.exists(blob_path(used)) and not os.path.exists(blob_path(unused))
    assert services.blob_release([]) == 0


def test_a_spooled_blob_is_kept(make_mailbox, django_capture_on_commit_callbacks):
    from delivery.services import SpoolRecipient, spool_create

    blob = services.blob_store(make_raw())
    spool_create(blob=blob, mail_from="a@example.org", recipients=[SpoolRecipient("x@r.example")])
    with django_capture_on_commit_callbacks(execute=True):
        assert services.blob_release([blob.pk]) == 0
        assert services.blob_collect_garbage(orphan_age=0) == (0, 0)
    assert os.path.exists(blob_path(blob))


def test_the_tables_that_hold_blobs_are_found_not_named():
    """The store knows the spool's blobs through its foreign key, without importing delivery."""
    from delivery.models import OutboundMessage

    holders = {(f.model, f.column) for f in services.blob_referrers()}
    assert holders == {(Message, "blob_id"), (OutboundMessage, "blob_id")}


@pytest.mark.django_db(transaction=True)  # real commits: released files go on commit
def test_garbage_collection(make_mailbox, blob_dir):
    alice = make_mailbox("alice@example.org")
    kept = services.message_append(folder=folder_get(alice, "INBOX"), raw=make_raw()).blob
    unused_row = services.blob_store(b"nobody uses me")
    young_orphan = services.blob_write(b"a write in flight")
    old_orphan = services.blob_write(b"left by a crash")
    old_tmp = os.path.join(blob_dir, "ab", ".tmp-abandoned")
    os.makedirs(os.path.dirname(old_tmp), exist_ok=True)
    with open(old_tmp, "wb") as fh:
        fh.write(b"half")
    young_row = services.blob_store(b"stored a moment ago, its message not yet committed")
    for name in (kept.name, unused_row.name, old_orphan):
        age(os.path.join(blob_dir, name), 7200)
    age(old_tmp, 7200)
    Blob.objects.filter(pk=unused_row.pk).update(created_at=timezone.now() - timedelta(hours=2))
    rows, files = services.blob_collect_garbage(orphan_age=3600)
    assert rows == 1
    assert files == 2  # the old orphan and the old temporary file
    assert files_in(blob_dir) == {kept.name, young_orphan, young_row.name}
    assert set(Blob.objects.values_list("pk", flat=True)) == {kept.pk, young_row.pk}
    assert Message.objects.get().blob_id == kept.pk
    # The young file is an orphan too once it is old enough.
    age(os.path.join(blob_dir, young_orphan), 7200)
    assert services.blob_collect_garbage(orphan_age=3600) == (0, 1)
    assert files_in(blob_dir) == {kept.name, young_row.name}
    # So is the young row: `collectblobs` with --age 0 takes it.
    out = StringIO()
    call_command("collectblobs", "--age", "0", stdout=out)
    assert out.getvalue().strip() == "removed 1 unused blob(s) and 0 orphan file(s)"
    assert files_in(blob_dir) == {kept.name}


def test_garbage_collection_default_age_comes_from_settings(blob_dir, settings):
    orphan = services.blob_write(b"x")
    age(os.path.join(blob_dir, orphan), 100)
    settings.MAILHOST_BLOB_ORPHAN_AGE = 1000
    assert services.blob_collect_garbage() == (0, 0)
    settings.MAILHOST_BLOB_ORPHAN_AGE = 10
    assert services.blob_collect_garbage() == (0, 1)


@pytest.mark.django_db(transaction=True)
def test_the_delivery_sweepers_housekeeping_collects_orphans(blob_dir, settings, monkeypatch):
    """Orphans are not left to an operator: the sweeper's housekeeping removes them."""
    from delivery import housekeeping

    monkeypatch.setattr(services, "_last_collection", None)
    settings.MAILHOST_BLOB_ORPHAN_AGE = 600
    old = services.blob_write(b"left by a crash")
    young = services.blob_write(b"in flight")
    age(os.path.join(blob_dir, old), 1200)
    housekeeping.housekeep()
    assert files_in(blob_dir) == {young}
    # Not due again before the orphan age has passed: no second walk of the store.
    age(os.path.join(blob_dir, young), 1200)
    assert services.blob_collect_garbage_if_due() is None
    housekeeping.housekeep()
    assert files_in(blob_dir) == {young}
    monkeypatch.setattr(services, "_last_collection", None)
    assert services.blob_collect_garbage_if_due() == (0, 1)


def test_large_blob_round_trip(blob_dir):
    raw = os.urandom(3 * 1024 * 1024 + 17)
    name = services.blob_write(raw)
    assert blob_read(name) == raw
    assert files_in(blob_dir) == {name}


def test_a_range_of_a_file_is_a_seek_and_one_read_and_a_stream_reads_chunks(
    blob_dir, settings, monkeypatch
):
    raw = os.urandom(3 * 1024 * 1024 + 17)
    blob = services.blob_store(raw)
    counted = FileReads(storages["blobs"], monkeypatch)
    assert blob_read_range(blob, offset=2_000_000, length=1000) == raw[2_000_000:2_001_000]
    assert counted.seeks == [2_000_000] and counted.reads == [1000]
    assert blob_read_range(blob.name, offset=len(raw) - 7, length=1000) == raw[-7:]
    assert blob_read_range(blob.name, offset=len(raw) + 5, length=10) == b""

    counted.reads.clear()
    settings.MAILHOST_BLOB_STREAM_CHUNK = 64 * 1024
    chunks = list(blob_stream(blob, offset=17, length=len(raw) - 100))
    assert b"".join(chunks) == raw[17:-83]
    assert max(counted.reads) == max(map(len, chunks)) == 64 * 1024
    assert list(blob_stream(blob.pk)) and b"".join(blob_stream(blob.pk)) == raw
    assert b"".join(blob_stream(blob, offset=len(raw) - 3)) == raw[-3:]

    stopped = blob_stream(blob, chunk_size=1024)
    assert next(stopped) == raw[:1024]
    stopped.close()  # the file closes with the iterator
    with pytest.raises(FileNotFoundError):
        blob_stream("ab/cd/gone")  # at the call, not at the first chunk


def test_failed_write_leaves_no_temporary_file(blob_dir, monkeypatch):
    from mailboxes import storage

    def broken_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(storage.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        services.blob_write(b"bytes that never made it to disk")
    assert files_in(blob_dir) == set()


def test_directories_made_for_a_blob_are_synced_into_their_parents(blob_dir, monkeypatch):
    from mailboxes import storage

    synced: list[str] = []
    real = storage._fsync_directory
    monkeypatch.setattr(storage, "_fsync_directory", lambda path: (synced.append(path), real(path)))
    name = services.blob_write(b"first bytes in a fresh store")
    first, second, _ = name.split("/")
    # blob_dir, blob_dir/ab and blob_dir/ab/cd are new: each is synced into its parent, and
    # the file into its directory.
    assert synced == [
        str(blob_dir.parent),
        str(blob_dir),
        str(blob_dir / first),
        str(blob_dir / first / second),
    ]
    synced.clear()
    again = services.blob_write(b"more bytes")
    assert synced[-1] == str(blob_dir / again.rsplit("/", 1)[0])
    assert str(blob_dir.parent) not in synced  # directories that exist are not synced again


# --- inline blobs: bytes in the row, durable with its commit ------------------------------


def test_small_blob_is_stored_in_its_row_and_no_file_is_written(blob_dir, settings):
    settings.MAILHOST_BLOB_INLINE_MAX = 1024
    raw = b"\x00\xff small \r\n" * 93 + b"!"  # 1024 bytes: the limit itself is inline
    assert len(raw) == 1024
    blob = services.blob_store(raw)
    assert Blob.name_is_inline(blob.name) and blob_path(blob) is None
    assert bytes(Blob.objects.get(pk=blob.pk).data) == raw
    assert blob_read(blob) == blob_read(blob.pk) == blob_read(blob.name) == raw
    assert blob_read(blob.name, limit=10) == raw[:10]
    assert blob_read_range(blob.name, offset=1000, length=100) == raw[1000:]
    assert b"".join(blob_stream(blob, offset=5, chunk_size=100)) == raw[5:]
    assert [len(c) for c in blob_stream(blob.name, length=250, chunk_size=100)] == [100, 100, 50]
    assert files_in(blob_dir) == set()
    big = services.blob_store(raw + b"!")  # one byte over: a file
    assert files_in(blob_dir) == {big.name}
    assert Blob.objects.get(pk=big.pk).data is None


def test_blob_read_many_reads_both_kinds_in_one_query(
    blob_dir, settings, django_assert_num_queries
):
    settings.MAILHOST_BLOB_INLINE_MAX = 100
    small = [services.blob_store(f"small {n}".encode()) for n in range(3)]
    big = services.blob_store(b"b" * 101)
    names = [b.name for b in small] + [big.name, Blob.INLINE_PREFIX + "gone", "ab/cd/gone"]
    with django_assert_num_queries(1):
        got = blob_read_many(names)
    # Blobs released since their names were read are left out, as the readers expect.
    assert got == {
        **{b.name: f"small {n}".encode() for n, b in enumerate(small)},
        big.name: b"b" * 101,
    }
    with pytest.raises(FileNotFoundError):
        blob_read(Blob.INLINE_PREFIX + "gone")
    # By id (FETCH's rows without the names), in one statement too; an id gone is left out.
    with django_assert_num_queries(1):
        got = blob_read_many([small[0].pk, big.pk, big.pk + 1000])
    assert got == {small[0].pk: b"small 0", big.pk: b"b" * 101}


def test_blob_read_many_reads_past_a_statements_500_keys(
    blob_dir, settings, django_assert_num_queries
):
    """A statement per 500 names and per 500 ids (on PostgreSQL an array of them, the rows
    read binary): every inline blob's bytes come back, under the key asked."""
    settings.MAILHOST_BLOB_INLINE_MAX = 100
    blobs = [services.blob_store(b"blob %d\r\n" % n) for n in range(501)]
    with django_assert_num_queries(4):
        got = blob_read_many([b.name for b in blobs] + [b.pk for b in blobs])
    assert got == {
        **{b.name: b"blob %d\r\n" % n for n, b in enumerate(blobs)},
        **{b.pk: b"blob %d\r\n" % n for n, b in enumerate(blobs)},
    }
    assert all(type(data) is bytes for data in got.values())


def test_release_of_an_inline_blob_removes_its_row(
    make_mailbox, settings, blob_dir, django_capture_on_commit_callbacks
):
    settings.MAILHOST_BLOB_INLINE_MAX = 64 * 1024
    inbox = folder_get(make_mailbox("alice@example.org"), "INBOX")
    used = services.message_append(folder=inbox, raw=make_raw()).blob
    unused = services.blob_store(b"x")
    assert Blob.name_is_inline(used.name) and Blob.name_is_inline(unused.name)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.blob_release([used.pk, unused.pk]) == 1
    assert list(Blob.objects.values_list("pk", flat=True)) == [used.pk]
    assert blob_read(used.pk) == make_raw()
    old = timezone.now() - timedelta(hours=2)
    Blob.objects.filter(pk=services.blob_store(b"y").pk).update(created_at=old)
    assert services.blob_collect_garbage(orphan_age=3600) == (1, 0)
    assert files_in(blob_dir) == set()


def test_an_inline_blob_and_its_text_are_compressed_by_lz4_on_postgresql(settings):
    """PostgreSQL with LZ4 (migration 0044): a message's bytes in its row and the indexer's
    text of them, past TOAST's threshold, are compressed by LZ4, where pglz (the default) cost
    the backend some 0.7 M instructions a 10 KB value; they read back as they were."""
    from django.db import connection

    from mailboxes import fulltext
    from mailboxes.models import BlobText

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's TOAST compression")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        )
        if not cursor.fetchone()[0]:
            pytest.skip("a server built without LZ4 keeps pglz")
    settings.MAILHOST_BLOB_INLINE_MAX = 64 * 1024
    raw = b"Subject: fox\r\n\r\n" + b"the quick brown fox jumps over the lazy dog\r\n" * 250
    blob = services.blob_store(raw)
    assert Blob.name_is_inline(blob.name)
    assert fulltext.index_blobs([blob.pk]) == 1
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_column_compression(b.data), pg_column_compression(t.body)"
            " FROM mailboxes_blob b JOIN mailboxes_blobtext t ON t.blob_id = b.id WHERE b.id = %s",
            [blob.pk],
        )
        assert cursor.fetchone() == ("lz4", "lz4")
    assert blob_read(blob.pk) == raw
    assert BlobText.objects.get(blob_id=blob.pk).body.startswith("the quick brown fox")
