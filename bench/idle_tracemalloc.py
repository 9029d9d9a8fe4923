"""What an idle IMAP connection (logged in, INBOX selected, in IDLE) allocates in the server.

    python bench/idle_tracemalloc.py [--connections 2000] [--top 25] [--no-trace]

Runs the IMAP listeners in this process (SQLite in a fresh data dir, or DATABASE_URL/REDIS_URL
as set), under tracemalloc; a crowd child (bench/imapbench.py crowd) opens the connections.
Snapshots before and after the crowd: the difference, divided by the number of connections, is
printed grouped by the allocating lines (bytes per connection), beside the process's RSS
growth, which tracemalloc does not see all of (the allocator's own overhead and
fragmentation, and memory outside Python's allocator: OpenSSL's, the kernel's socket buffers
are not in it at all).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import resource
import sys
import tempfile
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

USER, PASSWORD = "idle@bench.test", "bench-password-1"


def type_counts() -> dict[str, list[int]]:
    """Live objects the collector knows of, by type: [count, bytes]."""
    counts: dict[str, list[int]] = {}
    for obj in gc.get_objects():
        entry = counts.setdefault(type(obj).__qualname__, [0, 0])
        entry[0] += 1
        entry[1] += sys.getsizeof(obj)
    return counts


def rss() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


def configure(data_dir: str) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "mailhost.settings",
            "MAILHOST_DATA_DIR": data_dir,
            "MAILHOST_BIND": "127.0.0.1",
            "MAILHOST_IMAP_PORT": "0",
            "MAILHOST_IMAPS_PORT": "0",
            "MAILHOST_ALLOW_PLAINTEXT_AUTH": "1",
            "MAILHOST_IMAP_MAX_CONNECTIONS": "100000",
            "MAILHOST_IMAP_MAX_CONNECTIONS_PER_USER": "100000",
            "MAILHOST_MAX_CONNECTIONS": "100000",
            "MAILHOST_MAX_CONNECTIONS_PER_IP": "100000",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    from mailboxes import services

    call_command("migrate", verbosity=0)
    services.domain_create(name=USER.split("@")[1])
    services.mailbox_create(address=USER, password=PASSWORD)


async def measure(connections: int, top: int) -> None:
    import imapbench

    from protocols.imap import server

    listeners = await server.start()
    port = next(lst.port for lst in listeners if lst.name == "imap")
    loop = asyncio.get_running_loop()
    crowd = imapbench.IdleCrowds("127.0.0.1", port, USER, PASSWORD, connections + 100)
    warm = 50  # first logins fill caches (the login's, Django's, the keyword set's)
    try:
        await loop.run_in_executor(None, crowd.grow, warm)
        await asyncio.sleep(1)
        gc.collect()
        types_before = type_counts()
        before, rss_before = take_snapshot(), rss()
        await loop.run_in_executor(None, crowd.grow, warm + connections)
        await asyncio.sleep(1)
        gc.collect()
        after, rss_after = take_snapshot(), rss()
        types_after = type_counts()
        if crowd.failed:
            print(f"{crowd.failed} connections failed: {crowd.errors}")
    finally:
        await loop.run_in_executor(None, crowd.close)
        for listener in listeners:
            listener.close()
    print(
        f"{connections} idle connections ({type(loop).__module__}): RSS"
        f" {(rss_after - rss_before) / connections:.0f} B each"
    )
    print("\nobjects the collector tracks, per connection (count, getsizeof bytes):")
    grown = {
        name: (count - types_before.get(name, [0, 0])[0], size - types_before.get(name, [0, 0])[1])
        for name, (count, size) in types_after.items()
    }
    for name, (count, size) in sorted(grown.items(), key=lambda item: -item[1][1])[:top]:
        if size > 0:
            print(f"{count / connections:8.2f} {size / connections:8.0f} B  {name}")
    if before is None:
        return
    diff = after.compare_to(before, "lineno")
    total = sum(stat.size_diff for stat in diff)
    print(f"\ntraced: {total / connections:.0f} B per connection, by allocating line:")
    for stat in diff[:top]:
        if stat.size_diff > 0:
            frame = stat.traceback[0]
            print(
                f"{stat.size_diff / connections:8.0f} B {stat.count_diff / connections:6.2f} "
                f"blocks  {frame.filename.removeprefix(str(REPO) + '/')}:{frame.lineno}"
            )


def take_snapshot() -> tracemalloc.Snapshot | None:
    return tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--no-trace",
        action="store_true",
        help="RSS and object counts only: tracemalloc's own bookkeeping inflates the RSS",
    )
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory(prefix="mailhost-idle-") as data_dir:
        configure(data_dir)
        logging.disable(logging.INFO)  # a line per login
        if not args.no_trace:
            tracemalloc.start()
        from mailhost import eventloop

        # The loop runmail would run (MAILHOST_EVENT_LOOP: uvloop where installed).
        eventloop.run(measure(args.connections, args.top))


if __name__ == "__main__":
    main()
