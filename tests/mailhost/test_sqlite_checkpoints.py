"""A server process copies the SQLite WAL into the database file in a thread of its own
(mailhost/sqlite3/base.py: checkpoints), not inside the COMMIT that took the WAL past SQLite's
automatic checkpoint: that COMMIT returns without the copy and its syncs, the thread copies it
within the interval once CHECKPOINT_PAGES frames wait, and the next writer starts the WAL over
instead of growing it."""

from __future__ import annotations

import fcntl
import os
import time

import pytest
from django.db import connection, transaction

from mailhost.sqlite3.base import CHECKPOINT_PAGES, checkpoints, lock_path

pytestmark = pytest.mark.django_db(transaction=True)

PAGES = CHECKPOINT_PAGES + 500  # past the thread's mark, and SQLite's own (1000 pages)


@pytest.fixture
def thread():
    """The checkpoint thread running in this process, and this thread's connection opened
    after it started (a connection's automatic checkpoint is set when it opens)."""
    if connection.vendor != "sqlite":
        pytest.skip("the database is not SQLite")
    checkpoints.start(0.2)
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE checkpoint_probe (id INTEGER PRIMARY KEY, v BLOB)")
    yield checkpoints
    checkpoints.stop()
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE checkpoint_probe")
    connection.close()  # the next test's connection checkpoints in its COMMIT again


def files() -> tuple[int, int]:
    """When the database file was last written (in WAL mode only a checkpoint writes it), and
    the WAL's size."""
    name = str(connection.settings_dict["NAME"])
    return os.stat(name).st_mtime_ns, os.stat(f"{name}-wal").st_size


def fill(pages: int) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO checkpoint_probe (v) VALUES (%s)",
            [(os.urandom(4000),) for _ in range(pages)],
        )


def copied_since(written: int, seconds: float = 10) -> bool:
    """Whether a checkpoint wrote the database file since `written`; once it has, it is over
    (the thread holds the writers' file lock until then)."""
    deadline = time.monotonic() + seconds
    while files()[0] == written:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    probe = os.open(lock_path(str(connection.settings_dict["NAME"])), os.O_RDWR)
    try:
        fcntl.flock(probe, fcntl.LOCK_EX)
    finally:
        os.close(probe)
    return True


def test_the_commit_leaves_the_copy_to_the_thread(thread):
    written, _ = files()
    time.sleep(0.05)  # a later write has a later time
    fill(PAGES)
    assert files()[0] == written  # the COMMIT did not copy
    assert copied_since(written)


def test_the_next_writer_starts_the_wal_over(thread):
    written, _ = files()
    fill(PAGES)
    assert copied_since(written)
    written, wal = files()
    for _ in range(3):
        fill(PAGES)
        assert copied_since(written)
        written = files()[0]
    # The WAL's frames were written from its beginning again each time, not after the others.
    assert files()[1] == wal


def test_a_short_wal_waits(thread):
    """Under CHECKPOINT_PAGES frames nothing is copied, past SQLite's own 1000 too: each copy
    is two syncs under the writer locks and costs the next commit a sync of the WAL's new
    header, and the pages written again meanwhile are copied once."""
    written, _ = files()
    fill(PAGES)
    assert copied_since(written)  # past CHECKPOINT_PAGES
    written, _ = files()
    fill(1500)
    assert not copied_since(written, seconds=1)


def test_no_thread_in_a_process_that_did_not_start_one():
    """Management commands and tests: SQLite's own checkpoint, in COMMIT."""
    if connection.vendor != "sqlite":
        pytest.skip("the database is not SQLite")
    assert not checkpoints.running
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_autocheckpoint")
        assert cursor.fetchone()[0] == 1000


# SQLite's unix VFS: its locks on the -shm file start at byte 120 (UNIX_SHM_BASE); byte 128
# (UNIX_SHM_DMS) is held shared by every connection that has the wal-index open.
SHM_DMS_BYTE = 128
_PEEK = """
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
ask = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, int(sys.argv[2]), 1, 0)
print(struct.unpack("hhqqi", fcntl.fcntl(fd, fcntl.F_GETLK, ask))[0] != fcntl.F_UNLCK)
"""


def test_reading_the_wal_index_keeps_sqlites_locks_on_it():
    """The thread reads the WAL-index header from the -shm file without closing a descriptor
    of it: a close would drop this process's POSIX locks on the file, SQLite's own, and
    another process would then take the wal-index for abandoned and truncate it under this
    one's mapping (a worker died of SIGBUS so in the quick bench)."""
    import subprocess
    import sys

    from mailhost.sqlite3.base import _frames_waiting

    if connection.vendor != "sqlite":
        pytest.skip("the database is not SQLite")
    name = str(connection.settings_dict["NAME"])
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")  # this connection has the wal-index open

    def held_by_this_process() -> bool:
        peek = [sys.executable, "-c", _PEEK, f"{name}-shm", str(SHM_DMS_BYTE)]
        return (
            subprocess.run(peek, capture_output=True, text=True, check=True).stdout.strip()
            == "True"
        )

    assert held_by_this_process()
    for _ in range(3):
        assert _frames_waiting(name) is not None
    assert held_by_this_process()
