"""In-process cost of one delivery job, without the submission: a spooled message to a remote
recipient, claimed, sent to a local sink over a reused SMTP connection, and recorded.

    MAILHOST_DATA_DIR=<scratch dir> .venv/bin/python bench/profile_delivery.py [N] [time|sql|cpu|claims]

Spools N messages (bench/sample.eml from a hosted sender to the bench's sink domain; a tiny
DNS server names the sink, as bench/run.py's outbound rows do), then runs the delivery job
(delivery.jobs.deliver_message) of each in this thread and prints the SQL statements one job
costs (`sql` lists them) and the CPU of this thread per job (the sink's thread is not in it);
`cpu`: cProfile of the jobs timed by this thread's CPU clock, the functions by their CPU;
`claims`: the messages attempted as runmail's delivery threads attempt them
(delivery.worker.Claimer: claims of up to 8 messages, each claim writing the results kept
since the last), this thread's CPU a message.
Uses the SQLite database in MAILHOST_DATA_DIR (or DATABASE_URL): a scratch one. The same path
in a running server, beside the submissions: bench/profile_server.py outbound.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from baseline_aiosmtpd import Sink  # noqa: E402
from dns_server import DnsServer  # noqa: E402
from mailhost_process import free_port  # noqa: E402

SINK_DOMAIN = "remote.bench.test"
SINK_ADDRESS = "127.0.0.2"
SENDER = "sender@profile.test"


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    mode = sys.argv[2] if len(sys.argv) > 2 else "time"
    dns = DnsServer(SINK_DOMAIN, SINK_ADDRESS)
    dns.start()
    sink = Sink(SINK_ADDRESS, free_port(SINK_ADDRESS))
    sink.start()
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "mailhost.settings",
            "MAILHOST_HOSTNAME": "mx.profile.test",
            "MAILHOST_DNS_SERVERS": f"{dns.address[0]}:{dns.address[1]}",
            "MAILHOST_OUTBOUND_PORT": str(sink.port),
        }
    )
    os.environ.pop("REDIS_URL", None)  # the jobs are run here, not enqueued anywhere
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from delivery import queue, services
    from delivery.jobs import Results, claim_batch, deliver_claim, deliver_message
    from mailboxes import services as mailbox_services
    from mailboxes.models import Domain

    call_command("migrate", verbosity=0)
    if not Domain.objects.filter(name="profile.test").exists():
        mailbox_services.domain_create(name="profile.test")
        mailbox_services.mailbox_create(address=SENDER, password="profile-password")
    raw = (REPO / "bench" / "sample.eml").read_bytes()
    ids = [
        services.spool_create(
            blob=mailbox_services.blob_store(raw),
            mail_from=SENDER,
            recipients=[services.SpoolRecipient(f"user{i}@{SINK_DOMAIN}")],
        ).pk
        for i in range(count + 2)
    ]
    queue.embedded.clear()
    try:
        deliver_message(ids.pop())  # warm: the connection to the sink opens
        with CaptureQueriesContext(connection) as queries:
            deliver_message(ids.pop())
        print(f"SQL statements a delivery job: {len(queries.captured_queries)}")
        if mode == "sql":
            for query in queries.captured_queries:
                print("  ", query["sql"][:160])
        before = sink.handler.recipients
        if mode == "cpu":
            import cProfile
            import pstats

            profiler = cProfile.Profile(time.thread_time)
            profiler.enable()
            for message_id in ids:
                deliver_message(message_id)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(60)
            return
        wall, cpu = time.perf_counter(), time.thread_time()
        if mode == "claims":
            kept = Results()
            for at in range(0, len(ids), 8):
                for claim in claim_batch(ids[at : at + 8], kept):
                    deliver_claim(claim, kept)
            kept.flush()
        else:
            for message_id in ids:
                deliver_message(message_id)
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        assert sink.handler.recipients - before == count, "not every message reached the sink"
        print(
            f"{count} delivery jobs: {wall / count * 1000:.2f} ms wall, {cpu / count * 1000:.2f}"
            f" ms CPU a job (this thread), {count / wall:.1f}/s (load average"
            f" {os.getloadavg()[0]:.1f})"
        )
    finally:
        from delivery.client import connection_cache

        connection_cache.close_all()
        sink.stop()
        dns.stop()


if __name__ == "__main__":
    main()
