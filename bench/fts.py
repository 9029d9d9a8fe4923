"""Full-text search at scale (issue 19): SEARCH BODY over IMAP on a folder of N distinct
messages, Mailhost (mailboxes/fulltext.py) beside a stock Dovecot (no fts plugin: Dovecot's
default, which reads the messages) on the same messages, and webmail's search in process.

    .venv/bin/python bench/fts.py [--messages 100000] [--postgres] [--keep NAME] [--repeat 5]
        [--words 160]

Each message has its own body of about 1 KB (--words words) drawn from a vocabulary;
"zyxwvu<i>" appears in 10 of them (a rare needle), "quarterly" in every other one (a common
one). Prints one JSON object: the time to build the data and the index (and the index build's
CPU a message, `index_cpu_ms_per_message`), and the median of `--repeat` searches of each kind.
In-process searches report their CPU time too (`*_cpu_ms`: this process's, and on a local
PostgreSQL its backend's), steadier than wall time on a shared machine. On PostgreSQL they
run twice: on tables not yet ANALYZEd (as just after a bulk import), then after ANALYZE
(`analyzed_*`). `reader_unseen_*` is a reader's SEARCH UNSEEN on the folder shared with it,
half of it \\Seen by the reader (per-reader \\Seen, PrivateSeen). With `--keep NAME` the
PostgreSQL database NAME (on SQLite: the directory NAME holding the data dir and Dovecot's)
is kept after the run and its messages, when it holds the bench's (migrated to this commit
first), are searched again instead of built anew.
"""

from __future__ import annotations

import argparse
import imaplib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

USER, PASSWORD = "box@bench.test", "bench password 42"
READER = "reader@bench.test"
NOT_ANALYZED = [
    f"mailboxes_{name}"
    for name in ("blob", "blobtext", "blobtextpending", "folder", "message", "privateseen")
]
RARE, COMMON = "zyxwvu7", "quarterly"


WORDS = 160  # words of a body: about 1 KB (--words)


def body_words(rng: random.Random, vocabulary: list[str], index: int, count: int = WORDS) -> str:
    words = rng.choices(vocabulary, k=count)
    if index % 2 == 0:
        words[rng.randrange(len(words))] = COMMON
    if index % 10_000 == 7:
        words[rng.randrange(len(words))] = RARE
    return " ".join(words)


def message(index: int, body: str) -> bytes:
    lines = [body[i : i + 72] for i in range(0, len(body), 72)]
    return (
        f"From: Sender {index} <sender{index}@example.net>\r\n"
        f"To: Bench <{USER}>\r\nSubject: bench message {index}\r\n"
        f"Date: Sun, 29 Nov 2026 01:00:00 +0000\r\nMessage-ID: <fts-{index}@example.net>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + "\r\n".join(lines)
        + "\r\n"
    ).encode()


def messages(count: int, words: int = WORDS) -> list[bytes]:
    rng = random.Random(19)
    vocabulary = [
        "".join(rng.choices("abcdefghijklmnoprstuvw", k=rng.randint(3, 9))) for _ in range(5000)
    ]
    return [message(i, body_words(rng, vocabulary, i, words)) for i in range(count)]


REPEAT = 5


def median_ms(fn, repeat: int | None = None) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeat or REPEAT):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def backend_cpu_s() -> float:
    """CPU seconds of this connection's PostgreSQL backend when it runs on this machine (0
    on SQLite, whose work is this process's, or when /proc does not show the backend)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return 0.0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        # The scheduler's own count of the time on a CPU, in nanoseconds: /proc/PID/stat's
        # utime and stime are ticks of 10 ms, sampled (a 200-message run of 1 ms each was
        # read to +-5%).
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, IndexError, ValueError):
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median_wall_cpu_ms(fn) -> tuple[float, float]:  # noqa: ANN001
    """(median wall ms, median CPU ms) of REPEAT calls."""
    walls, cpus = [], []
    for _ in range(REPEAT):
        cpu, started = time.process_time() + backend_cpu_s(), time.perf_counter()
        fn()
        walls.append((time.perf_counter() - started) * 1000)
        cpus.append((time.process_time() + backend_cpu_s() - cpu) * 1000)
    return round(statistics.median(walls), 2), round(statistics.median(cpus), 2)


def share_with_reader(inbox, count: int):  # noqa: ANN001, ANN201
    """A second mailbox reading the INBOX, which has \\Seen every other message of it."""
    from mailboxes import services
    from mailboxes.models import PrivateSeen

    reader = services.mailbox_create(address=READER, password=PASSWORD)
    services.folder_acl_set(folder=inbox, identifier=READER, rights="lrs")
    PrivateSeen.objects.bulk_create(
        (
            PrivateSeen(folder_id=inbox.id, reader_id=reader.id, uid=uid, seen=True, modseq=1)
            for uid in range(1, count + 1, 2)
        ),
        batch_size=5000,
    )
    return reader


def inprocess(figures: dict, prefix: str, mailbox, inbox, reader, count: int) -> None:  # noqa: ANN001
    """IMAP SEARCH BODY (rare, common), webmail's body search and a reader's SEARCH UNSEEN,
    in this process."""
    from protocols.imap import search as imap_search
    from webmail import search as webmail_search

    uids = list(range(1, count + 1))
    for name, needle in (("rare", RARE), ("common", COMMON)):
        key = imap_search.parse_keys(f"BODY {needle}")
        found = imap_search.search(inbox.id, key, seq_uids=uids)
        (
            figures[f"{prefix}inprocess_body_{name}_ms"],
            figures[f"{prefix}inprocess_body_{name}_cpu_ms"],
        ) = median_wall_cpu_ms(lambda key=key: imap_search.search(inbox.id, key, seq_uids=uids))
        figures[f"{prefix}inprocess_body_{name}_found"] = len(found)
        result = webmail_search.search(mailbox=mailbox, query=needle, where="body")
        figures[f"{prefix}webmail_{name}_ms"], figures[f"{prefix}webmail_{name}_cpu_ms"] = (
            median_wall_cpu_ms(
                lambda needle=needle: webmail_search.search(
                    mailbox=mailbox, query=needle, where="body"
                )
            )
        )
        figures[f"{prefix}webmail_{name}_shown"] = len(result.messages)
    unseen = imap_search.parse_keys("UNSEEN")

    def reader_unseen() -> list[int]:
        return imap_search.search_full(inbox.id, unseen, seq_uids=uids, reader=reader.id).uids

    figures[f"{prefix}reader_unseen_found"] = len(reader_unseen())
    figures[f"{prefix}reader_unseen_ms"], figures[f"{prefix}reader_unseen_cpu_ms"] = (
        median_wall_cpu_ms(reader_unseen)
    )


def populate(raws: list[bytes]) -> None:
    """Distinct inline blobs and their Message rows in bulk, counters set as delivery would."""
    from django.db import transaction
    from django.db.models import F
    from django.utils import timezone

    from mailboxes import headers, selectors, services
    from mailboxes.models import Blob, Folder, Mailbox, Message

    services.domain_create(name="bench.test")
    mailbox = services.mailbox_create(address=USER, password=PASSWORD)
    inbox = selectors.folder_get(mailbox, "INBOX")
    now = timezone.now()
    total = 0
    with transaction.atomic():
        for start in range(0, len(raws), 5000):
            chunk = raws[start : start + 5000]
            blobs = Blob.objects.bulk_create(
                [
                    Blob(name=Blob.INLINE_PREFIX + uuid.uuid4().hex, size=len(r), data=r)
                    for r in chunk
                ]
            )
            Message.objects.bulk_create(
                [
                    Message(
                        folder_id=inbox.pk,
                        uid=start + offset + 1,
                        modseq=1,
                        blob=blob,
                        size=len(raw),
                        internal_date=now,
                        **headers.summarize(raw),
                    )
                    for offset, (blob, raw) in enumerate(zip(blobs, chunk))
                ]
            )
            total += sum(len(r) for r in chunk)
        Folder.objects.filter(pk=inbox.pk).update(
            uidnext=len(raws) + 1,
            highestmodseq=1,
            first_recent_uid=len(raws) + 1,
            message_count=len(raws),
            unseen_count=len(raws),
            total_size=total,
        )
        Mailbox.objects.filter(pk=mailbox.pk).update(
            used_bytes=F("used_bytes") + total, used_messages=F("used_messages") + len(raws)
        )


def imap_search_ms(port: int, needle: str, user: str) -> tuple[float, int, float]:
    """(median ms of UID SEARCH BODY, matches, first SELECT ms) on a fresh connection."""
    client = imaplib.IMAP4("127.0.0.1", port, timeout=600)
    client.login(user, PASSWORD)
    started = time.perf_counter()
    client.select("INBOX")
    select_ms = (time.perf_counter() - started) * 1000
    found = []

    def search() -> None:
        typ, data = client.uid("SEARCH", "BODY", needle)
        assert typ == "OK", data
        found.append(len(data[0].split()))

    search()  # the first one may build Dovecot's index; the figure is the warm median
    ms = median_ms(search)
    client.logout()
    return ms, found[-1], round(select_ms, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL (DATABASE_URL)")
    parser.add_argument("--repeat", type=int, default=REPEAT, help="searches per median")
    parser.add_argument(
        "--words",
        type=int,
        default=WORDS,
        help=f"words of each body ({WORDS}: about 1 KB; 1500: about 10 KB); a new build only",
    )
    parser.add_argument(
        "--keep",
        metavar="NAME",
        help="keep this PostgreSQL database (SQLite: this directory) and reuse its messages",
    )
    args = parser.parse_args(argv)
    globals()["REPEAT"] = args.repeat
    if args.keep and not args.postgres:
        root = Path(args.keep).resolve()
        root.mkdir(parents=True, exist_ok=True)
    else:
        root = Path(tempfile.mkdtemp(prefix="mailhost-fts-"))
    root.chmod(0o755)  # Dovecot's auth and mail processes (other users) reach their files
    os.environ["MAILHOST_DATA_DIR"] = str(root / "data")
    os.environ.setdefault("MAILHOST_HOSTNAME", "mx.bench.test")
    database = None
    from bench.mailhost_process import Mailhost, PostgresDatabase, free_port

    if args.postgres:
        database = PostgresDatabase(
            os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/postgres"),
            args.keep or f"mh_fts_{os.getpid()}",
        )
        if not (args.keep and database.exists()):
            database.create()
        os.environ["DATABASE_URL"] = database.url
    else:
        os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from mailboxes import fulltext, selectors
    from mailboxes.selectors import mailbox_get

    figures: dict = {"messages": args.messages, "database": "postgresql" if database else "sqlite"}
    mailhost = dovecot = None
    try:
        call_command("migrate", verbosity=0)
        from django.db import connection

        from mailboxes.models import Message

        reused = bool(args.keep) and Message.objects.count() == args.messages
        figures["reused"] = reused
        if database and not reused:
            # the first searches find the tables as a bulk import leaves them, not ANALYZEd
            # by autovacuum meanwhile (the second ones run after an ANALYZE)
            with connection.cursor() as cursor:
                for table in NOT_ANALYZED:
                    cursor.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        started = time.perf_counter()
        raws = messages(args.messages, args.words)
        if reused:
            fulltext.index_all()  # what an interrupted run left
        else:
            if args.keep and Message.objects.exists():
                parser.error(f"{args.keep} holds other messages than --messages says")
            populate(raws)
            figures["populate_s"] = round(time.perf_counter() - started, 1)
            started, cpu = time.perf_counter(), time.process_time() + backend_cpu_s()
            fulltext.index_all()
            figures["index_s"] = round(time.perf_counter() - started, 1)
            figures["index_ms_per_message"] = round(figures["index_s"] * 1000 / args.messages, 3)
            # The build's CPU (this process's, and a local PostgreSQL backend's): the
            # indexer's cost a message, steadier than the wall time on a shared machine.
            cpu = time.process_time() + backend_cpu_s() - cpu
            figures["index_cpu_ms_per_message"] = round(cpu * 1000 / args.messages, 3)
        if not database:
            figures["sqlite_mib"] = round(
                (root / "data" / "mailhost.sqlite3").stat().st_size / 2**20
            )

        mailbox = mailbox_get(USER)
        inbox = selectors.folder_get(mailbox, "INBOX")
        if reused:
            reader = mailbox_get(READER)
            if not database:
                inprocess(figures, "", mailbox, inbox, reader, args.messages)
        else:
            reader = share_with_reader(inbox, args.messages)
            inprocess(figures, "", mailbox, inbox, reader, args.messages)
        if database:
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
            inprocess(figures, "analyzed_", mailbox, inbox, reader, args.messages)

        mailhost = Mailhost(
            root / "data",
            database_url=database.url if database else None,
            extra_env={"MAILHOST_ALLOW_PLAINTEXT_AUTH": "1"},
        )
        mailhost.start()
        for name, needle in (("rare", RARE), ("common", COMMON)):
            ms, found, _select = imap_search_ms(mailhost.ports["imap"], needle, USER)
            (
                figures[f"mailhost_imap_body_{name}_ms"],
                figures[f"mailhost_imap_body_{name}_found"],
            ) = ms, found
        mailhost.stop()
        mailhost = None

        from tests.support.dovecot import DovecotInstance, available

        if not available():
            figures["dovecot"] = "not installed (Debian package dovecot-imapd)"
        else:
            dovecot = DovecotInstance(root / "dovecot", free_port(), USER, PASSWORD)
            maildir = root / "dovecot" / "home" / USER.split("@")[0] / "Maildir"
            for sub in ("cur", "new", "tmp"):
                (maildir / sub).mkdir(parents=True, exist_ok=True)
            for index, raw in enumerate(raws):
                path = maildir / "cur" / f"{1700000000 + index}.M{index}P1.bench:2,"
                if not (reused and path.exists()):
                    path.write_bytes(raw)
            if os.geteuid() == 0:
                for path in (root / "dovecot" / "home").rglob("*"):
                    os.chown(path, 65534, 65534)
            dovecot.start()
            for name, needle in (("rare", RARE), ("common", COMMON)):
                ms, found, select_ms = imap_search_ms(dovecot.port, needle, USER)
                figures[f"dovecot_imap_body_{name}_ms"] = ms
                figures[f"dovecot_imap_body_{name}_found"] = found
                figures.setdefault("dovecot_first_select_ms", select_ms)
    finally:
        if mailhost is not None:
            mailhost.stop()
        if dovecot is not None:
            dovecot.stop()
        if database is not None:
            from django.db import connections

            connections.close_all()
            if not args.keep:
                database.drop()
        if not args.keep or args.postgres:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
