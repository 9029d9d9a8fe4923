"""UID allocation under concurrent deliveries, from threads and from processes.

Invariants: every UID distinct; UIDs grow in commit order (a reader never sees a later UID
before an earlier one: the committed UIDs are always exactly 1..n); MODSEQ grows with UID;
UIDNEXT, the folder counters and the mailbox usage match the rows at the end.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from mailboxes import services
from mailboxes.models import Blob, Folder, Mailbox, Message
from mailboxes.selectors import blob_read, folder_get
from tests.mailboxes.conftest import make_raw, run_worker

pytestmark = pytest.mark.django_db(transaction=True)


class Observer(threading.Thread):
    """Reads the folder over and over while writers run; records any broken snapshot."""

    def __init__(self, folder_id: int):
        super().__init__(name="observer", daemon=True)
        self.folder_id = folder_id
        self.stop = threading.Event()
        self.snapshots = 0
        self.max_seen = 0
        self.problems: list[str] = []

    def run(self) -> None:
        try:
            last = 0
            while not self.stop.is_set():
                uids = list(
                    Message.objects.filter(folder_id=self.folder_id)
                    .order_by("uid")
                    .values_list("uid", flat=True)
                )
                uidnext = Folder.objects.values_list("uidnext", flat=True).get(pk=self.folder_id)
                if uids != list(range(1, len(uids) + 1)):
                    self.problems.append(f"hole or duplicate in committed UIDs: {uids}")
                if len(uids) < last:
                    self.problems.append(f"committed messages went from {last} to {len(uids)}")
                if uids and uidnext <= uids[-1]:
                    self.problems.append(f"uidnext {uidnext} not above uid {uids[-1]}")
                last = len(uids)
                self.max_seen = max(self.max_seen, last)
                self.snapshots += 1
                time.sleep(0.002)
        finally:
            connection.close()


def assert_consistent(mailbox: Mailbox, folder: Folder, expected: int) -> None:
    rows = list(
        Message.objects.filter(folder=folder).order_by("uid").values_list("uid", "modseq", "size")
    )
    uids = [r[0] for r in rows]
    modseqs = [r[1] for r in rows]
    assert uids == list(range(1, expected + 1))
    assert modseqs == sorted(set(modseqs)), "MODSEQ must grow with UID"
    folder = Folder.objects.get(pk=folder.pk)
    size = sum(r[2] for r in rows)
    assert folder.uidnext == expected + 1
    assert folder.highestmodseq == modseqs[-1] == 1 + expected
    assert (folder.message_count, folder.unseen_count, folder.total_size) == (
        expected,
        expected,
        size,
    )
    assert Mailbox.objects.get(pk=mailbox.pk).used_bytes == size
    blobs = list(Blob.objects.all())
    assert len(blobs) == expected
    assert all(len(blob_read(b)) == b.size for b in blobs)  # a file or inline, never lost


def test_concurrent_threads(make_mailbox):
    alice = make_mailbox("alice@example.org")
    inbox = folder_get(alice, "INBOX")
    threads, per_thread = 6, 15
    errors: list[BaseException] = []
    start = threading.Barrier(threads + 1)

    def writer(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                if i % 3 == 2:  # IMAP APPEND races SMTP delivery for the same UIDs
                    services.message_append(folder=inbox, raw=make_raw(f"t{n}-{i}"))
                else:
                    [r] = services.message_deliver(
                        raw=make_raw(f"t{n}-{i}"), recipients=["alice@example.org"]
                    )
                    assert r.status == "delivered"
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)
        finally:
            connection.close()

    observer = Observer(inbox.pk)
    observer.start()
    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    for w in workers:
        w.join(120)
    observer.stop.set()
    observer.join(10)
    assert errors == []
    assert observer.problems == []
    assert observer.snapshots > 5
    assert_consistent(alice, inbox, threads * per_thread)


def test_concurrent_processes(make_mailbox, child_env):
    alice = make_mailbox("alice@example.org")
    inbox = folder_get(alice, "INBOX")
    processes, per_process = 4, 25
    observer = Observer(inbox.pk)
    observer.start()
    children = [
        run_worker(child_env, "deliver", "alice@example.org", str(per_process), f"p{n}")
        for n in range(processes)
    ]
    outputs = [child.communicate(timeout=180) for child in children]
    observer.stop.set()
    observer.join(10)
    for child, (out, err) in zip(children, outputs):
        assert child.returncode == 0, err
        assert out.strip() == "done"
    assert observer.problems == []
    assert observer.snapshots > 5
    assert_consistent(alice, inbox, processes * per_process)
    subjects = set(Message.objects.filter(folder=inbox).values_list("subject", flat=True))
    assert subjects == {f"p{n} {i}" for n in range(processes) for i in range(per_process)}


def test_a_writer_waits_for_the_uncommitted_one_before_it(make_mailbox):
    """The mechanism behind commit order: a second delivery cannot take a UID while the first
    holds its transaction open; it gets the next UID once the first commits."""
    from django.db import transaction

    alice = make_mailbox("alice@example.org")
    inbox = folder_get(alice, "INBOX")
    allocated, release, second_done = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with transaction.atomic():
                services.message_append(folder=inbox, raw=make_raw("first"))
                allocated.set()
                release.wait(30)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    def second() -> None:
        try:
            allocated.wait(30)
            services.message_deliver(raw=make_raw("second"), recipients=["alice@example.org"])
            second_done.set()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    assert allocated.wait(30)
    assert not second_done.wait(1.0), "the second writer did not wait for the first"
    assert not Message.objects.filter(folder=inbox).exists()  # nothing committed yet
    release.set()
    for t in threads:
        t.join(30)
    assert errors == []
    assert list(
        Message.objects.filter(folder=inbox).order_by("uid").values_list("uid", "subject")
    ) == [
        (1, "first"),
        (2, "second"),
    ]
