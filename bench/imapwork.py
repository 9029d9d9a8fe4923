"""A fixed IMAP workload, imaptest-like, counted where wall time is noise: the system calls
(strace -c) or the instructions (callgrind) of runmail's one worker process per round.

    .venv/bin/python bench/imapwork.py [--rounds 200] [--clients 3] [--tls] --strace
    .venv/bin/python bench/imapwork.py [--rounds 50] [--clients 3] [--tls] --callgrind

runmail runs with MAILHOST_PROCESSES=1 on SQLite (bench/mailhost_process.py). --clients
connections log in and SELECT one folder of 20 messages; then each round, client by client in
turn, the one whose turn it is APPENDs a message, FETCHes FLAGS of all, ENVELOPE and
BODYSTRUCTURE and the body of the new one, STOREs \\Seen on it, STOREs \\Deleted and EXPUNGEs
it, SEARCHes UNSEEN, runs STATUS and LIST, and every other client sends NOOP and so reads what
changed (the EXISTS, FETCH FLAGS and EXPUNGE its session was told of). The same commands in
the same order every run: 36 commands a round with 3 clients. A warm-up round runs before the
count starts. --strace: strace attaches to every thread of the worker for the rounds and
prints its table and the calls per round; --callgrind: runmail runs under valgrind's callgrind
(start-up takes minutes), its counters zeroed after the warm-up and dumped after the rounds:
the instructions per round, all threads' and the event loop's (the main thread's) apart
(callgrind --separate-threads; the dumps stay in --out for callgrind_annotate). The SQLite
checkpoints run inside the commit that fills the WAL (MAILHOST_SQLITE_CHECKPOINT_INTERVAL=0),
not on a timer: how many a round takes does not hang on the machine's speed.
"""

from __future__ import annotations

import argparse
import contextlib
import imaplib
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mailhost_process import REPO, Mailhost, process_tree  # noqa: E402
from run import DOMAIN, IMAP_USER, MAILHOST_ENV, PASSWORD  # noqa: E402

FOLDER = "work"
MESSAGE = (
    b"From: Sender <sender@bench.test>\r\nTo: imap@bench.test\r\n"
    b"Subject: workload message\r\nDate: Sat, 05 Dec 2026 05:00:00 +0000\r\n"
    b"Message-ID: <work@bench.test>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + b"A line of the body.\r\n" * 40
)


def connect(mailhost: Mailhost, tls: bool) -> imaplib.IMAP4:
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        client = imaplib.IMAP4_SSL("127.0.0.1", mailhost.ports["imaps"], ssl_context=context)
    else:
        client = imaplib.IMAP4("127.0.0.1", mailhost.ports["imap"])
    client.login(IMAP_USER, PASSWORD)
    client.select(FOLDER)
    return client


def check(result: tuple) -> list:
    status, data = result
    if status != "OK":
        raise RuntimeError(f"{status} {data}")
    return data


def round_of(clients: list[imaplib.IMAP4]) -> None:
    for turn, client in enumerate(clients):
        data = check(client.append(FOLDER, None, None, MESSAGE))
        uid = re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1).decode()
        check(client.fetch("1:*", "(UID FLAGS)"))
        check(client.uid("FETCH", uid, "(ENVELOPE BODYSTRUCTURE FLAGS)"))
        check(client.uid("FETCH", uid, "(BODY.PEEK[])"))
        check(client.uid("STORE", uid, "+FLAGS", "(\\Seen)"))
        check(client.uid("STORE", uid, "+FLAGS", "(\\Deleted)"))
        check(client.expunge())
        check(client.search(None, "UNSEEN"))
        check(client.status(FOLDER, "(MESSAGES UNSEEN UIDNEXT)"))
        check(client.list('""', "*"))
        for other, peer in enumerate(clients):
            if other != turn:
                check(peer.noop())


def thread_totals(pid: int, out: Path) -> dict[int, int]:
    """Dump callgrind's counters of `pid` now: instructions since the last zero by thread
    (1: the main thread), from the dumps (callgrind.PID.N-TT), kept for callgrind_annotate."""
    before = set(out.glob(f"callgrind.{pid}*"))
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    deadline = time.monotonic() + 120
    while not set(out.glob(f"callgrind.{pid}*")) - before and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(5)  # every thread's file written
    totals = {}
    for dump in sorted(set(out.glob(f"callgrind.{pid}*")) - before):
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                totals[int(dump.name.rsplit("-", 1)[1])] = int(line.split()[1])
                break
    if not totals:
        raise RuntimeError("callgrind wrote no dump")
    return totals


def threads_of(pid: int) -> list[str]:
    return sorted(os.listdir(f"/proc/{pid}/task"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--tls", action="store_true", help="implicit TLS (993)")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--strace", action="store_true", help="system calls per round")
    how.add_argument("--callgrind", action="store_true", help="instructions per round")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="mailhost-imapwork-"))
        stack.callback(shutil.rmtree, tmp, True)
        env = dict(
            MAILHOST_ENV,
            MAILHOST_PROCESSES="1",
            MAILHOST_SWEEP_INTERVAL="3600",
            MAILHOST_SQLITE_CHECKPOINT_INTERVAL="0",
        )
        wrapper = None
        if args.callgrind:
            args.out.mkdir(parents=True, exist_ok=True)
            wrapper = [
                "valgrind",
                "--tool=callgrind",
                "--compress-strings=no",
                "--separate-threads=yes",
                f"--callgrind-out-file={args.out}/callgrind.%p",
            ]
        mailhost = Mailhost(tmp / "mailhost", extra_env=env, wrapper=wrapper)
        mailhost.setup(DOMAIN, IMAP_USER, "populate", IMAP_USER, FOLDER, "20", password=PASSWORD)
        stack.callback(mailhost.stop)
        mailhost.start(timeout=1200 if args.callgrind else 120)
        clients = [connect(mailhost, args.tls) for _ in range(args.clients)]
        round_of(clients)  # warm-up: caches, the worker threads, the sequence maps
        commands = args.clients * 10 + args.clients * (args.clients - 1)
        if args.callgrind:
            subprocess.run(["callgrind_control", "-z", str(mailhost.pid)], check=True)
            for _ in range(args.rounds):
                round_of(clients)
            threads = thread_totals(mailhost.pid, args.out)
            total, loop = sum(threads.values()), threads.get(1, 0)
            print(
                f"{total / args.rounds / 1e6:.2f} M instructions a round of {commands} commands,"
                f" {loop / args.rounds / 1e6:.2f} M of them the event loop's"
                f" ({total / 1e6:.0f} M for {args.rounds} rounds; tls={args.tls})"
            )
        else:
            worker = process_tree(mailhost.pid)[-1]
            table = tmp / "strace.txt"
            tids = [arg for tid in threads_of(worker) for arg in ("-p", tid)]
            tracer = subprocess.Popen(["strace", "-f", "-c", "-o", str(table), *tids])
            time.sleep(2)  # attached
            for _ in range(args.rounds):
                round_of(clients)
            tracer.send_signal(signal.SIGINT)
            tracer.wait(60)
            text = table.read_text()
            print(text)
            for line in text.splitlines():
                fields = line.split()
                if len(fields) >= 5 and fields[-1].isidentifier() and fields[3].isdigit():
                    print(f"{fields[-1]:>16} {int(fields[3]) / args.rounds:8.1f} a round")
            print(f"({args.rounds} rounds of {commands} commands; tls={args.tls})")
        for client in clients:
            client.logout()
    return 0


if __name__ == "__main__":
    sys.exit(main())
