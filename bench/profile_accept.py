"""In-process cost of the SMTP inbound hot path, without sockets: the RCPT-time verdict plus
delivery.accept.message_accept of bench/sample.eml to one local mailbox, in a loop.

    MAILHOST_DATA_DIR=<scratch dir> .venv/bin/python bench/profile_accept.py [N] [time|sql|prof|cpu|wal]

Prints the SQL statements a message costs (`sql` lists them, T: inside the transaction), then wall and CPU time per
message (`prof`: a pyinstrument profile instead; pip install pyinstrument, not a
requirement; `cpu`: cProfile timed by the thread's CPU clock, the functions by their CPU
time with callees: what the path costs, whatever else the machine is doing; `wal`: on SQLite,
the pages a message appends to the write-ahead log). On PostgreSQL the backend's CPU a message
too (a server on this machine). Uses the SQLite database in
MAILHOST_DATA_DIR (or DATABASE_URL): a scratch one.
The same path through a running server, its SMTP session and event loop included, sampled by
py-spy: bench/profile_server.py smtp.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from fts import backend_cpu_s  # noqa: E402  (bench/, this script's directory)

from delivery import accept  # noqa: E402
from mailboxes import services  # noqa: E402
from mailboxes.models import Domain  # noqa: E402

ADDRESS = "box@profile.test"


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    mode = sys.argv[2] if len(sys.argv) > 2 else "time"
    call_command("migrate", verbosity=0)
    if not Domain.objects.filter(name="profile.test").exists():
        services.domain_create(name="profile.test")
        services.mailbox_create(address=ADDRESS, password="profile-password")
    raw = (REPO / "bench" / "sample.eml").read_bytes()

    def one() -> None:
        _, resolution = accept.recipient_verdict(ADDRESS, relay_allowed=False, size=len(raw))
        result = accept.message_accept(
            raw=raw,
            mail_from="sender@remote.example",
            recipients=[accept.EnvelopeRecipient(ADDRESS, resolution=resolution)],
            client=accept.ClientInfo(helo="client.example", ip="127.0.0.1"),
        )
        assert result.accepted, result

    one()  # warm
    # The statements' own text, recorded as they are executed: CaptureQueriesContext keeps
    # the driver's last_executed_query, which is None for the statements that PostgreSQL
    # binds on the server (mailhost/postgresql's prepared_cursor, all of port 25's hot path).
    statements: list[tuple[bool, str]] = []

    def record(execute, sql, params, many, context):  # noqa: ANN001, ANN202
        statements.append((connection.in_atomic_block, sql))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        one()
    inside = sum(1 for atomic, _ in statements if atomic)
    print(
        f"SQL statements a message (RCPT verdict + accept): {len(statements)},"
        f" {inside} of them in the transaction (+ its BEGIN and COMMIT)"
    )
    if mode == "sql":
        for atomic, sql in statements:
            print("  ", "T" if atomic else " ", " ".join(sql.split())[:160])
    if mode == "wal" and connection.vendor == "sqlite":
        # Frames appended to the WAL (a page each) a message, checkpointing held off meanwhile.
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.fetchall()
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.fetchall()
        for _ in range(count):
            one()
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            frames = cursor.fetchone()[1]
        print(f"WAL frames a message: {frames / count:.2f} ({frames} for {count})")
        return
    if mode == "cpu":
        import cProfile
        import pstats

        profiler = cProfile.Profile(time.thread_time)
        profiler.enable()
        for _ in range(count):
            one()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(60)
        return
    if mode == "prof":
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
        for _ in range(count):
            one()
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False))
        return
    backend = backend_cpu_s()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        one()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    backend = backend_cpu_s() - backend
    server = f", the PostgreSQL backend {backend / count * 1000:.2f} ms CPU" if backend else ""
    print(
        f"{count} messages: {wall / count * 1000:.2f} ms wall, {cpu / count * 1000:.2f} ms CPU"
        f" a message{server}, {count / wall:.1f} msg/s (load average {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
