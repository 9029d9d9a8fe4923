"""SORT and THREAD on a large folder, timed through IMAP (issue 19's figure).

    python bench/imapsort.py ADDRESS PASSWORD PORT [COUNT] [--pid PID] [--runs N] [--only SORT|THREAD]

Run in Mailhost's environment (same DATABASE_URL and data dir as the running IMAP listener,
which must allow plaintext LOGIN on loopback). It fills the mailbox's folder "SortBench" with
COUNT (default 100,000) messages the way bench/dbtool.py populate does (one blob shared,
Message rows bulk-inserted with their cached header fields), but with varied subjects (reply
and forward prefixes, list tags), senders, recipients, sizes and dates, so every key has
real work to do; then times UID SORT per key and UID THREAD per algorithm: the median of N
runs (default 5) of the wall time and, with --pid (the listener's process id, on Linux), of the
CPU time the listener spent on the command, which a loaded machine does not inflate; --only
times the one command.
A folder filled before is reused.
"""

from __future__ import annotations

import imaplib
import os
import random
import statistics
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
        Mailbox.objects.filter(pk=mailbox.pk).update(
            used_bytes=F("used_bytes") + len(raw) * count,
            used_messages=F("used_messages") + count,
        )


def process_cpu(pid: int | None) -> float:
    """User plus system CPU seconds of a process so far (Linux /proc), 0 without a pid."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Timer:
    """Medians of the wall time and the server's CPU time of repeated actions."""

    def __init__(self, pid: int | None, runs: int, only: str | None = None) -> None:
        self.pid, self.runs, self.only = pid, runs, only

    def wants(self, command: str) -> bool:
        return self.only is None or self.only.upper() == command

    def measure(self, action) -> tuple[float, float]:
        walls, cpus = [], []
        for _ in range(self.runs):
            cpu, start = process_cpu(self.pid), time.perf_counter()
            action()
            walls.append(time.perf_counter() - start)
            cpus.append(process_cpu(self.pid) - cpu)
        return statistics.median(walls), statistics.median(cpus)

    def text(self, wall: float, cpu: float) -> str:
        text = f"{wall * 1000:7.1f} ms"
        return text + (f" (server CPU {cpu * 1000:6.1f} ms)" if self.pid else "")


def uid_command(client: imaplib.IMAP4, *command: str) -> bytes:
    typ, answer = client.uid(*command)
    if typ != "OK":
        raise SystemExit(f"{command}: {answer}")
    return answer[0]


def main(address: str, password: str, port: int, count: int, timer: Timer) -> None:
    populate(address, count)
    client = imaplib.IMAP4("127.0.0.1", port)
    client.login(address, password)
    client.select(FOLDER)
    print(f"{count} messages, load average {os.getloadavg()[0]:.1f}, median of {timer.runs}")
    for key in KEYS if timer.wants("SORT") else ():
        data = uid_command(client, "SORT", key, "UTF-8", "ALL")
        wall, cpu = timer.measure(lambda: uid_command(client, "SORT", key, "UTF-8", "ALL"))  # noqa: B023
        print(f"UID SORT {key:18s} {timer.text(wall, cpu)} ({len(data.split())} UIDs)")
    for algorithm in ("ORDEREDSUBJECT", "REFERENCES") if timer.wants("THREAD") else ():
        command = ("THREAD", algorithm, "UTF-8", "ALL")
        wall, cpu = timer.measure(lambda: uid_command(client, *command))  # noqa: B023
        print(f"UID THREAD {algorithm:16s} {timer.text(wall, cpu)}")
    client.logout()


def command_line(run, usage: str) -> None:
    """ADDRESS PASSWORD PORT [COUNT] [--pid PID] [--runs N] [--only C] from the command line
    to run(address, password, port, count, timer)."""
    args = sys.argv[1:]
    options = {"--pid": None, "--runs": "5", "--only": None}
    for name in options:
        if name in args:
            at = args.index(name)
            options[name] = args[at + 1]
            del args[at : at + 2]
    if len(args) < 3:
        raise SystemExit(usage)
    pid = int(options["--pid"]) if options["--pid"] else None
    count = int(args[3]) if len(args) > 3 else 100000
    run(
        args[0], args[1], int(args[2]), count, Timer(pid, int(options["--runs"]), options["--only"])
    )


if __name__ == "__main__":
    command_line(main, __doc__)
