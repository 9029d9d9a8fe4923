"""SORT and THREAD on a large folder, timed through IMAP (issue 19's figure).

    python bench/imapsort.py ADDRESS PASSWORD PORT [COUNT]

Run in Mailhost's environment (same DATABASE_URL and data dir as the running IMAP listener,
which must allow plaintext LOGIN on loopback). It fills the mailbox's folder "SortBench" with
COUNT (default 100,000) messages the way bench/dbtool.py populate does (one blob shared,
Message rows bulk-inserted with their cached header fields), but with varied subjects (reply
and forward prefixes, list tags), senders, recipients, sizes and dates, so every key has
real work to do; then times UID SORT per key and UID THREAD per algorithm (best of three).
A folder filled before is reused.
"""

from __future__ import annotations

import imaplib
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")

import django  # noqa: E402

django.setup()

from django.db import transaction  # noqa: E402
from django.db.models import F  # noqa: E402
from django.utils import timezone  # noqa: E402

from mailboxes import selectors, services  # noqa: E402
from mailboxes.models import Folder, Mailbox, Message  # noqa: E402

FOLDER = "SortBench"
KEYS = ["(ARRIVAL)", "(DATE)", "(SUBJECT)", "(FROM)", "(TO)", "(SIZE)", "(DISPLAYFROM)"]
KEYS += ["(REVERSE DATE)", "(SUBJECT DATE)"]


def populate(address: str, count: int) -> None:
    mailbox = selectors.mailbox_get(address)
    folder = selectors.folder_get(mailbox, FOLDER) or services.folder_create(
        mailbox=mailbox, name=FOLDER
    )
    if folder.message_count >= count:
        return
    raw = b"From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n"
    rnd = random.Random(7)
    prefixes = ["", "Re: ", "RE: Fwd: ", "[list] ", "Fw: ", ""]
    now = timezone.now()
    with transaction.atomic():
        blob = services.blob_store(raw)
        locked = Folder.objects.select_for_update().get(pk=folder.pk)
        first, modseq = locked.uidnext, locked.highestmodseq + 1
        for start in range(0, count, 5000):
            rows = []
            for i in range(start, min(count, start + 5000)):
                n = rnd.randrange(5000)
                sender = f"user{rnd.randrange(3000)}@example{n % 50}.org"
                rows.append(
                    Message(
                        folder_id=folder.pk,
                        uid=first + i,
                        modseq=modseq,
                        blob=blob,
                        size=500 + rnd.randrange(50000),
                        internal_date=now - timedelta(seconds=rnd.randrange(10**7)),
                        seen=i % 3 == 0,
                        subject=rnd.choice(prefixes) + f"topic number {n}",
                        from_display=f"Person {rnd.randrange(3000)} <{sender}>",
                        from_address=sender,
                        to_display=f"Team {n % 300} <team{n % 300}@example.org>",
                        sent_date=None
                        if i % 97 == 0
                        else now - timedelta(seconds=rnd.randrange(10**7)),
                        message_id=f"<m{i}@example.org>",
                        references=f"<m{n}@example.org>" if i % 4 else "",
                        thread_key=f"<m{n}@example.org>" if i % 4 else f"<m{i}@example.org>",
                    )
                )
            Message.objects.bulk_create(rows)
        Folder.objects.filter(pk=folder.pk).update(
            uidnext=first + count,
            highestmodseq=modseq,
            first_recent_uid=first + count,
            message_count=F("message_count") + count,
            unseen_count=F("unseen_count") + count - len(range(0, count, 3)),
            total_size=F("total_size") + len(raw) * count,
        )
        Mailbox.objects.filter(pk=mailbox.pk).update(used_bytes=F("used_bytes") + len(raw) * count)


def best_of_three(client: imaplib.IMAP4, *command: str) -> tuple[float, bytes]:
    best, data = None, b""
    for _ in range(3):
        start = time.perf_counter()
        typ, answer = client.uid(*command)
        elapsed = time.perf_counter() - start
        if typ != "OK":
            raise SystemExit(f"{command}: {answer}")
        best, data = (elapsed if best is None else min(best, elapsed)), answer[0]
    return best, data


def main(address: str, password: str, port: int, count: int) -> None:
    populate(address, count)
    client = imaplib.IMAP4("127.0.0.1", port)
    client.login(address, password)
    client.select(FOLDER)
    print(f"{count} messages, load average {os.getloadavg()[0]:.1f}")
    for key in KEYS:
        elapsed, data = best_of_three(client, "SORT", key, "UTF-8", "ALL")
        print(f"UID SORT {key:18s} {elapsed * 1000:7.0f} ms ({len(data.split())} UIDs)")
    for algorithm in ("ORDEREDSUBJECT", "REFERENCES"):
        elapsed, data = best_of_three(client, "THREAD", algorithm, "UTF-8", "ALL")
        print(f"UID THREAD {algorithm:16s} {elapsed * 1000:7.0f} ms")
    client.logout()


def command_line(run, usage: str) -> None:
    """ADDRESS PASSWORD PORT [COUNT] from the command line to run(...)."""
    if len(sys.argv) < 4:
        raise SystemExit(usage)
    run(
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        int(sys.argv[4]) if len(sys.argv) > 4 else 100000,
    )


if __name__ == "__main__":
    command_line(main, __doc__)
