"""A process killed between writing a blob and committing its rows loses nothing and leaves
nothing that is never cleaned: no row points at missing bytes, and the orphan file goes once
it is older than MAILHOST_BLOB_ORPHAN_AGE. Inline blobs (bytes in the row) leave nothing."""

from __future__ import annotations

import os
import select
import signal
import time

import pytest

from mailboxes import services
from mailboxes.models import Blob, Folder, Mailbox, Message
from mailboxes.selectors import blob_path, blob_read, folder_get
from tests.mailboxes.conftest import make_raw, run_worker

# Blob files for every message unless a test says otherwise (blob_files precedes child_env).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("blob_files")]


def read_line(process, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            return process.stdout.readline().strip()
        if process.poll() is not None:
            raise AssertionError(f"child exited early: {process.stderr.read()}")
    raise AssertionError("child did not reach the stop point")


@pytest.mark.parametrize("stage", ["after-blob", "before-commit"])
def test_killed_delivery_leaves_an_orphan_that_gc_removes(make_mailbox, child_env, blob_dir, stage):
    alice = make_mailbox("alice@example.org")
    inbox = folder_get(alice, "INBOX")
    child = run_worker(child_env, "crash", "alice@example.org", stage)
    try:
        line = read_line(child, 60)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    word, name = line.split()
    assert word == "stopped"
    orphan = os.path.join(blob_dir, name)
    assert os.path.exists(orphan)  # the bytes were written and synced

    # Nothing of the delivery committed: no row points at the file, counters untouched.
    assert not Message.objects.exists()
    assert not Blob.objects.exists()
    folder = Folder.objects.get(pk=inbox.pk)
    assert (folder.uidnext, folder.message_count, folder.highestmodseq) == (1, 0, 1)
    assert Mailbox.objects.get(pk=alice.pk).used_bytes == 0

    # The store still works (the dead process holds no lock), and every row has its bytes.
    services.message_deliver(raw=make_raw("after"), recipients=["alice@example.org"])
    assert all(os.path.exists(blob_path(m.blob)) for m in Message.objects.all())
    assert Folder.objects.get(pk=inbox.pk).uidnext == 2

    # A young file may be a write in flight: kept.
    assert services.blob_collect_garbage(orphan_age=3600) == (0, 0)
    assert os.path.exists(orphan)
    # Once older than the orphan age, it goes; the committed message's blob stays.
    past = time.time() - 7200
    os.utime(orphan, (past, past))
    assert services.blob_collect_garbage(orphan_age=3600) == (0, 1)
    assert not os.path.exists(orphan)
    assert all(os.path.exists(blob_path(m.blob)) for m in Message.objects.all())


def test_killed_inline_delivery_leaves_nothing(make_mailbox, child_env, blob_dir, settings):
    """Killed after its rows were written, before the commit: the bytes were only in the
    uncommitted Blob row, so nothing is left, not even an orphan file."""
    settings.MAILHOST_BLOB_INLINE_MAX = 64 * 1024
    child_env["MAILHOST_BLOB_INLINE_MAX"] = str(64 * 1024)
    alice = make_mailbox("alice@example.org")
    inbox = folder_get(alice, "INBOX")
    child = run_worker(child_env, "crash", "alice@example.org", "before-commit")
    try:
        line = read_line(child, 60)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    word, name = line.split()
    assert word == "stopped" and Blob.name_is_inline(name)
    assert not Message.objects.exists() and not Blob.objects.exists()
    assert not any(blob_dir.rglob("*"))
    folder = Folder.objects.get(pk=inbox.pk)
    assert (folder.uidnext, folder.message_count, folder.highestmodseq) == (1, 0, 1)

    raw = make_raw("after")
    services.message_deliver(raw=raw, recipients=["alice@example.org"])
    assert [blob_read(m.blob) for m in Message.objects.all()] == [raw]
    assert services.blob_collect_garbage(orphan_age=0) == (0, 0)
