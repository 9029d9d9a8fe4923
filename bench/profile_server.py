"""Profile a running Mailhost under load: py-spy samples runmail's whole process tree while the
bench's own clients drive port 25 (the accept path, through the SMTP session), submission to
remote recipients delivered to a local sink (bench/run.py's outbound rows), or an IMAP
FETCH/SEARCH loop.

    .venv/bin/python bench/profile_server.py smtp [--seconds 20] [--sessions 20] [--size 1024]
    .venv/bin/python bench/profile_server.py imap [--seconds 20] [--clients 4] [--messages 10000]
    .venv/bin/python bench/profile_server.py outbound [--seconds 20] [--sessions 4] [--threads 4]
    .venv/bin/python bench/profile_server.py imaptest [--seconds 20] [--clients 10] [--tls]
    common options: --processes N  --postgres  --gil  --rate HZ  --top N  --out DIR
    .venv/bin/python bench/profile_server.py smtp --callgrind 100 [--size 1024] [--sessions 20]
    .venv/bin/python bench/profile_server.py outbound --callgrind 100 --sessions 4 [--threads 4]

It starts `manage.py runmail` as bench/run.py does (bench/mailhost_process.py: free high ports,
a fresh data dir, SQLite, or with --postgres a fresh database on DATABASE_URL's server and
Redis), provisions the bench's mailboxes (bench/dbtool.py; for `imap` one folder of --messages
messages), starts the load, and after two seconds of warm-up samples for --seconds:

- the CPU runmail's process tree used per message or per IMAP command in that window (from
  /proc: user + system time, all processes), and the rate; with --postgres also the CPU of
  the database's PostgreSQL backends (when the server runs on this machine) and its
  pg_stat_database counters (commits, buffer hits and reads, rows inserted and updated),
  per message or command;
- py-spy's samples of every process of the tree (`py-spy record --subprocesses`; `--gil`: only
  the thread holding the GIL), as the functions with the most samples where the time is spent
  (self) and under them (total), and py-spy's collapsed stacks in DIR/profile-LOAD.txt (the
  input of flamegraph.pl and of speedscope's viewer). Default DIR: bench/results/.

`imaptest`: Dovecot's imaptest (MAILHOST_BENCH_IMAPTEST, else on PATH) in its default stress mix
for --seconds with --clients clients, as bench/run.py's imaptest row runs it (--tls: port 993);
the CPU per operation is over imaptest's whole run (each worker process having checked the
password once before), and py-spy samples the same window.

`smtp --callgrind N`: instead of py-spy, runmail (MAILHOST_PROCESSES=1) runs under valgrind's
callgrind, and for each row (1 and 10 KB, or --size: that size; reused and new connections)
the bench zeroes its counters after a warm-up batch, sends N messages, waits for the indexer to have
none pending and prints the instructions per stored message: the whole path from connection
to indexed message, repeatable on a loaded machine (an idle window's instructions, timers and
the other listeners, are measured and taken off). Each row's dump stays in DIR
(callgrind-1k-reused.out, ...) for callgrind_annotate. Start-up under callgrind takes minutes.
With --postgres each row also gives libpq's calls a message from the dump (PQsendQueryPrepared
and the other PQsend*: statements; PQpipelineSync, PQflush, PQconsumeInput: round trips) and
the CPU a message of the database's PostgreSQL backends in the same window (BackendMeter, from
/proc: the server on this machine; an idle window's taken off) with pg_stat_database's
counters.
`outbound --callgrind N` counts the same way N messages submitted on 587 (AUTH, DKIM, the
spool) and delivered by runmail's delivery threads to the sink: issue 20's path end to end.

The IMAP loop: each client logs in, SELECTs the folder and repeats `UID FETCH 1:* (FLAGS)`,
`UID SEARCH UNSEEN`, `UID SEARCH SUBJECT "message 42"` and `UID FETCH n (BODY.PEEK[]
INTERNALDATE)` of a message at random. The SMTP load is bench/loadgen.py's (smtp-source where
installed), 20 sessions reusing their connections by default.

py-spy is not a requirement: `pip install py-spy`, or name its binary in MAILHOST_BENCH_PYSPY;
it reads the processes' memory (ptrace: root, or kernel.yama.ptrace_scope 0). Without it the
CPU figures are still printed. For the accept path in one process without sockets (SQL
statements per message, a pyinstrument profile), bench/profile_accept.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import imapbench  # noqa: E402
import loadgen  # noqa: E402
from mailhost_process import REPO, BackendMeter, Mailhost, tree_cpu_seconds  # noqa: E402
from run import DOMAIN, IMAP_USER, MAILBOXES, MAILHOST_ENV, PASSWORD, SMTP_BOX  # noqa: E402

FOLDER = "profile"
WARM_UP = 2.0


def pyspy_binary() -> str | None:
    """py-spy: the MAILHOST_BENCH_PYSPY variable, else `py-spy` on PATH or beside Python."""
    named = os.environ.get("MAILHOST_BENCH_PYSPY")
    if named:
        return named if os.access(named, os.X_OK) else None
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if os.access(beside, os.X_OK) else None)


class Load:
    """A load running in threads until stopped, counting what it completed."""

    def __init__(self) -> None:
        self._done = 0
        self.count = lambda: self._done
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()

    def add(self, count: int = 1) -> None:
        with self.lock:
            self._done += count

    def error(self, text: str) -> None:
        if len(self.errors) < 5:
            self.errors.append(text[:300])

    def start(self, target, count: int) -> None:  # noqa: ANN001
        for _ in range(count):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(120)


def smtp_load(mailhost: Mailhost, args: argparse.Namespace) -> Load:
    """Batches of bench/loadgen.py's load (each `sessions` sessions), one after the other;
    what counts is the messages stored (rows in the mailbox's INBOX)."""
    load = Load()
    load.count = lambda: mailhost.count_messages(SMTP_BOX.split("@")[0], "INBOX")
    batch = args.sessions * 5

    def run() -> None:
        while not load.stopping.is_set():
            result = loadgen.run_load(
                "127.0.0.1",
                mailhost.ports["smtp"],
                messages=batch,
                sessions=args.sessions,
                size=args.size,
                reuse=not args.new_connections,
                recipient=SMTP_BOX,
            )
            for error in result.errors:
                load.error(error)

    load.start(run, 1)
    return load


def outbound_load(mailhost: Mailhost, args: argparse.Namespace) -> Load:
    """Batches of run.py's outbound load (submission with AUTH to remote recipients, each
    `sessions` sessions); what counts is the messages the local sink was handed."""
    import asyncio

    import run

    load = Load()
    load.count = lambda: args.sink.handler.recipients
    batch = args.sessions * 10

    def run_batches() -> None:
        while not load.stopping.is_set():
            result = asyncio.run(
                run.submit("127.0.0.1", mailhost.ports["submission"], batch, args.sessions)
            )
            for error in result["errors"]:
                load.error(error)

    load.start(run_batches, 1)
    return load


def imap_load(mailhost: Mailhost, args: argparse.Namespace) -> Load:
    """`clients` connections, each repeating FETCH FLAGS, two SEARCHes and one message's FETCH."""
    load = Load()

    def run() -> None:
        rng = random.Random()
        try:
            client = imapbench.ImapClient("127.0.0.1", mailhost.ports["imap"])
            client.command(f'LOGIN "{IMAP_USER}" "{PASSWORD}"')
            client.command(f'SELECT "{FOLDER}"')
            commands = (
                lambda: "UID FETCH 1:* (FLAGS)",
                lambda: "UID SEARCH UNSEEN",
                lambda: 'UID SEARCH SUBJECT "message 42"',
                lambda: f"UID FETCH {rng.randint(1, args.messages)} (BODY.PEEK[] INTERNALDATE)",
            )
            while not load.stopping.is_set():
                for command in commands:
                    client.command(command())
                    load.add()
            client.close()
        except (OSError, imapbench.ImapError) as exc:
            load.error(repr(exc))

    load.start(run, args.clients)
    return load


def record(pid: int, args: argparse.Namespace) -> tuple[subprocess.Popen, Path] | None:
    """py-spy recording runmail's process tree for --seconds, or None where it is missing."""
    spy = pyspy_binary()
    if not spy:
        print("py-spy not found (pip install py-spy, or MAILHOST_BENCH_PYSPY): CPU only")
        return None
    args.out.mkdir(parents=True, exist_ok=True)
    raw = args.out / f"profile-{args.load}.txt"
    command = [spy, "record", "--pid", str(pid), "--subprocesses", "--nolineno"]
    command += ["--rate", str(args.rate), "--duration", str(round(args.seconds))]
    command += ["--format", "raw", "--output", str(raw), "--nonblocking"]
    if args.gil:
        command.append("--gil")
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), raw


def report(recording: tuple[subprocess.Popen, Path] | None, top: int) -> int:
    """py-spy's summary once it has written its samples."""
    if recording is None:
        return 0
    recorder, raw = recording
    _, error = recorder.communicate(timeout=120)
    if recorder.returncode != 0 or not raw.exists():
        print(f"py-spy failed ({recorder.returncode}): {error.decode()[-1000:]}")
        return 1
    print(summarize(raw, top))
    print(f"\ncollapsed stacks: {raw}")
    return 0


def profile_imaptest(mailhost: Mailhost, tmp: Path, args: argparse.Namespace) -> int:
    """imaptest's default stress mix for --seconds, sampled by py-spy over the same run."""
    import run

    binary = run.imaptest_binary()
    if binary is None:
        raise SystemExit(run.IMAPTEST_MISSING)
    mbox = tmp / "imaptest.mbox"
    run.write_mbox(mbox, run.IMAPTEST_MESSAGES)
    # imaptest_run logs in once first, so that no client waits for the password hash; each
    # worker process hashes it once, so more logins here keep that cost out of the figure.
    for _ in range(4 * (args.processes or os.cpu_count() or 1)):
        client = imapbench.ImapClient("127.0.0.1", mailhost.ports["imap"])
        client.command(f'LOGIN "{run.IMAPTEST_USER}" "{PASSWORD}"')
        client.close()
    recording = record(mailhost.pid, args)
    figures = run.imaptest_run(
        binary,
        mailhost.ports["imaps" if args.tls else "imap"],
        mbox,
        round(args.seconds),
        args.clients,
        mailhost.pid,
        tls=args.tls,
        login_port=mailhost.ports["imap"],
    )
    print(
        f"imaptest: {figures['ops_per_s']} operations/s, {figures['errors']} errors, runmail's "
        f"process tree {figures['cpu_ms_per_op']} ms CPU per operation (load average "
        f"{os.getloadavg()[0]:.1f}); {figures['operations']}"
    )
    return report(recording, args.top)


def summarize(raw: Path, top: int) -> str:
    """The functions with the most samples in py-spy's collapsed stacks ("f1;f2;...;fN count"
    a line, outermost first): where the time is spent (self), and under which (total)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        n = int(count)
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    if not samples:
        return "py-spy recorded no samples"
    out = [f"{samples} samples"]
    for title, counter in (("self", own), ("total (self and callees)", total)):
        out.append("")
        out.append(f"top {top} functions, {title}:")
        for frame, n in counter.most_common(top):
            out.append(f"  {100 * n / samples:5.1f}%  {frame}")
    return "\n".join(out)


def local_dns(stack: contextlib.ExitStack, env: dict[str, str]) -> None:
    """bench/run.py's local DNS server: the sink's MX for the outbound load, NXDOMAIN for the
    port 25 load's sender domain (its checks never wait on a resolver that cannot reach the
    world)."""
    import run
    from dns_server import DnsServer

    dns_server = DnsServer(run.SINK_DOMAIN, run.SINK_ADDRESS)
    dns_server.start()
    stack.callback(dns_server.stop)
    host, port = dns_server.address
    env["MAILHOST_DNS_SERVERS"] = f"{host}:{port}"


CALLGRIND_ROWS = ((1024, False), (1024, True), (10240, False), (10240, True))


def callgrind_totals(pid: int, out: Path, name: str) -> int:
    """Dump callgrind's counters of `pid` now, keep the dump as OUT/callgrind-NAME.out (for
    callgrind_annotate: the C functions, SQLite's and the interpreter's), and return the
    instructions since the last zero."""
    before = set(out.glob(f"callgrind.{pid}*"))
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for dump in set(out.glob(f"callgrind.{pid}*")) - before:
            text = dump.read_text(errors="replace")
            for line in text.splitlines():
                if line.startswith(("summary:", "totals:")):
                    dump.replace(out / f"callgrind-{name}.out")
                    return int(line.split()[1])
        time.sleep(0.5)
    raise RuntimeError("callgrind wrote no dump")


def profile_callgrind(mailhost: Mailhost, out: Path, args: argparse.Namespace) -> int:
    """Instructions runmail (one process, under valgrind's callgrind) executes per stored
    message: for each row, a warm-up batch, the counters zeroed, --callgrind messages, the
    indexer's pending rows drained, the counters read. The instructions of an idle window of
    the same length (timers, the sweeper, the other listeners) are measured and taken off."""
    # --size: that size's two rows (reused and new connections), whatever the size.
    size_rows = [(args.size, new) for new in (False, True)] if args.size else CALLGRIND_ROWS

    database_url = mailhost.env.get("DATABASE_URL")

    def pending() -> int:
        query = "SELECT COUNT(*) FROM mailboxes_blobtextpending"
        if database_url:
            import psycopg

            with psycopg.connect(database_url) as conn:
                return conn.execute(query).fetchone()[0]
        import sqlite3

        path = mailhost.data_dir / "mailhost.sqlite3"
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            return conn.execute(query).fetchone()[0]

    def window(size: int, new: bool, messages: int) -> tuple[int, float]:
        stored = mailhost.count_messages(SMTP_BOX.split("@")[0], "INBOX")
        subprocess.run(
            ["callgrind_control", "-z", str(mailhost.pid)], check=True, capture_output=True
        )
        if meter:
            meter.start()
        start = time.perf_counter()
        if messages:
            loadgen.run_load(
                "127.0.0.1",
                mailhost.ports["smtp"],
                messages=messages,
                sessions=min(args.sessions, messages),
                size=size,
                reuse=not new,
                recipient=SMTP_BOX,
            )
            while pending():
                time.sleep(0.5)
            done = mailhost.count_messages(SMTP_BOX.split("@")[0], "INBOX") - stored
            if done != messages:
                raise RuntimeError(f"{done} of {messages} messages stored")
        else:
            time.sleep(args.idle_seconds)
        name = f"{size // 1024}k-{'new' if new else 'reused'}" if messages else "idle"
        if meter:
            # Before the dump, whose wait would count: the backends' CPU of the window.
            backends[name] = meter.stop()
        return callgrind_totals(mailhost.pid, out, name), time.perf_counter() - start

    meter = BackendMeter(database_url) if database_url else None
    backends: dict[str, tuple[float, dict[str, int]]] = {}
    try:
        for size, new in size_rows:
            window(size, new, args.sessions)  # warm: the sessions' first messages, the caches
            total, seconds = window(size, new, args.callgrind)
            idle, idle_seconds = window(size, new, 0)
            busy = total - idle * seconds / idle_seconds
            name = f"{size // 1024}k-{'new' if new else 'reused'}"
            print(
                f"{size // 1024} KB, {'new' if new else 'reused'} connections, {args.sessions}"
                f" sessions: {busy / args.callgrind / 1e6:.2f} M instructions per message"
                f" ({total / 1e6:.0f} M in {seconds:.0f} s for {args.callgrind} messages, idle"
                f" {idle / idle_seconds / 1e6:.1f} M/s taken off)",
                flush=True,
            )
            calls = libpq_calls(out / f"callgrind-{name}.out")
            if calls:
                print(
                    "  libpq a message: "
                    + ", ".join(f"{f} {n / args.callgrind:.2f}" for f, n in sorted(calls.items())),
                    flush=True,
                )
            if meter:
                cpu, moved = backends[name]
                idle_cpu = backends["idle"][0] * seconds / idle_seconds
                print(
                    f"  PostgreSQL, the database's backends: "
                    f"{(cpu - idle_cpu) * 1000 / args.callgrind:.2f} ms CPU a message"
                    f" ({cpu:.2f} s in the window, idle {idle_cpu:.2f} s taken off); a message: "
                    + ", ".join(f"{k} {v / args.callgrind:.1f}" for k, v in moved.items()),
                    flush=True,
                )
    finally:
        if meter:
            meter.close()
    return 0


# libpq's entry points whose calls count a client's statements and round trips: a statement
# is one PQsend* (psycopg's pipeline and its prepared statements alike; PQexec for the simple
# protocol), a round trip one flush of its output answered (PQpipelineSync, or a
# statement sent outside a pipeline), read by PQconsumeInput.
LIBPQ_COUNTED = (
    "PQsendQuery",
    "PQsendQueryParams",
    "PQsendPrepare",
    "PQsendQueryPrepared",
    "PQpipelineSync",
    "PQexec",
    "PQexecParams",
    "PQexecPrepared",
    "PQconsumeInput",
    "PQflush",
)


def libpq_calls(dump: Path) -> dict[str, int]:
    """Calls of LIBPQ_COUNTED's functions in a callgrind dump (written with
    --compress-strings=no: each call's `cfn=` line names its callee)."""
    calls: Counter[str] = Counter()
    callee = None
    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith("cfn="):
            callee = line[4:].split(" ", 1)[-1] if line[4:].startswith("(") else line[4:]
        elif line.startswith("calls=") and callee in LIBPQ_COUNTED:
            calls[callee] += int(line[6:].split()[0])
            callee = None
    return dict(calls)


def profile_callgrind_outbound(mailhost: Mailhost, out: Path, args: argparse.Namespace) -> int:
    """Instructions runmail (one process, under callgrind) executes per message submitted on
    587 and delivered to the sink, end to end (the MSA, DKIM, the spool, the delivery
    threads' SMTP client): a warm-up batch, the counters zeroed, --callgrind messages until
    the sink has them all, the counters read; an idle window's instructions taken off."""
    import asyncio

    import run

    def window(messages: int) -> tuple[int, float]:
        handed = args.sink.handler.recipients
        subprocess.run(
            ["callgrind_control", "-z", str(mailhost.pid)], check=True, capture_output=True
        )
        start = time.perf_counter()
        if messages:
            result = asyncio.run(
                run.submit("127.0.0.1", mailhost.ports["submission"], messages, args.sessions)
            )
            if result["errors"]:
                raise RuntimeError(f"submission failed: {result['errors']}")
            deadline = time.monotonic() + 1800
            while args.sink.handler.recipients - handed < messages:
                if time.monotonic() > deadline:
                    raise RuntimeError("the sink was not handed every message")
                time.sleep(0.5)
        else:
            time.sleep(args.idle_seconds)
        name = "outbound" if messages else "outbound-idle"
        return callgrind_totals(mailhost.pid, out, name), time.perf_counter() - start

    window(args.sessions)  # warm: the sessions' first messages, the caches, the connections
    total, seconds = window(args.callgrind)
    idle, idle_seconds = window(0)
    busy = total - idle * seconds / idle_seconds
    print(
        f"outbound (2 KB, {args.sessions} sessions, {args.threads} delivery threads):"
        f" {busy / args.callgrind / 1e6:.2f} M instructions per message submitted and delivered"
        f" ({total / 1e6:.0f} M in {seconds:.0f} s for {args.callgrind} messages, idle"
        f" {idle / idle_seconds / 1e6:.1f} M/s taken off)",
        flush=True,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("load", choices=("smtp", "imap", "outbound", "imaptest"))
    parser.add_argument("--seconds", type=float, default=20.0, help="sampling window")
    parser.add_argument("--sessions", type=int, default=20, help="smtp: parallel sessions")
    parser.add_argument("--size", type=int, help="smtp: message bytes (1024; --callgrind: all)")
    parser.add_argument(
        "--new-connections", action="store_true", help="smtp: a connection per message"
    )
    parser.add_argument(
        "--clients", type=int, help="imap, imaptest: parallel connections (4; imaptest 10)"
    )
    parser.add_argument("--tls", action="store_true", help="imaptest: implicit TLS (993)")
    parser.add_argument("--messages", type=int, default=10_000, help="imap: the folder's size")
    parser.add_argument("--processes", type=int, help="runmail's MAILHOST_PROCESSES")
    parser.add_argument(
        "--threads", type=int, default=4, help="outbound: MAILHOST_DELIVERY_THREADS"
    )
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL and Redis")
    parser.add_argument("--gil", action="store_true", help="py-spy: the GIL holder only")
    parser.add_argument("--rate", type=int, default=200, help="py-spy: samples a second")
    parser.add_argument("--top", type=int, default=30, help="functions listed")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument(
        "--callgrind",
        type=int,
        metavar="N",
        help="smtp, outbound: instructions per message of N messages, runmail under callgrind",
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=20.0, help="--callgrind: the idle window"
    )
    args = parser.parse_args(argv)
    if args.callgrind and args.load not in ("smtp", "outbound"):
        parser.error("--callgrind is for the smtp and outbound loads")
    if args.size is None and not args.callgrind:
        args.size = 1024
    if args.clients is None:
        args.clients = 10 if args.load == "imaptest" else 4

    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="mailhost-profile-"))
        stack.callback(shutil.rmtree, tmp, True)
        database_url = redis_url = None
        if args.postgres:
            import run

            database_url, redis_url = run.fresh_postgres(stack, f"mh_profile_{os.getpid()}")
        env = dict(MAILHOST_ENV)
        if args.processes:
            env["MAILHOST_PROCESSES"] = str(args.processes)
        if args.load in ("smtp", "outbound"):
            local_dns(stack, env)
        wrapper = None
        if args.callgrind:
            # One process, and no sweeper waking each second: each costs instructions.
            env["MAILHOST_PROCESSES"] = "1"
            env["MAILHOST_SWEEP_INTERVAL"] = "3600"
            args.out.mkdir(parents=True, exist_ok=True)
            wrapper = [
                "valgrind",
                "--tool=callgrind",
                # Names in full in every dump: each row's dump reads on its own.
                "--compress-strings=no",
                f"--callgrind-out-file={args.out}/callgrind.%p",
            ]
        if args.load == "outbound":
            # run.py's outbound rows: a local DNS server names a local sink as the MX.
            import run
            from baseline_aiosmtpd import Sink
            from mailhost_process import free_port

            args.sink = Sink(run.SINK_ADDRESS, free_port(run.SINK_ADDRESS))
            args.sink.start()
            stack.callback(args.sink.stop)
            env["MAILHOST_OUTBOUND_PORT"] = str(args.sink.port)
            env["MAILHOST_DELIVERY_THREADS"] = str(args.threads)
        mailhost = Mailhost(
            tmp / "mailhost",
            database_url=database_url,
            redis_url=redis_url,
            extra_env=env,
            wrapper=wrapper,
        )
        populate = (
            ["populate", IMAP_USER, FOLDER, str(args.messages)] if args.load == "imap" else []
        )
        mailhost.setup(DOMAIN, *MAILBOXES, *populate, password=PASSWORD)
        stack.callback(mailhost.stop)
        mailhost.start(timeout=1200 if args.callgrind else 120)
        print(f"runmail started (pid {mailhost.pid}); load: {args.load}", file=sys.stderr)
        if args.callgrind and args.load == "outbound":
            return profile_callgrind_outbound(mailhost, args.out, args)
        if args.callgrind:
            return profile_callgrind(mailhost, args.out, args)
        if args.load == "imaptest":
            return profile_imaptest(mailhost, tmp, args)

        loads = {"smtp": smtp_load, "imap": imap_load, "outbound": outbound_load}
        load = loads[args.load](mailhost, args)
        stack.callback(load.stop)
        time.sleep(WARM_UP)
        recording = record(mailhost.pid, args)
        meter = BackendMeter(database_url) if database_url else None
        if meter:
            stack.callback(meter.close)
            meter.start()
        system = tree_cpu_seconds(mailhost.pid, system_only=True)
        cpu, done, start = tree_cpu_seconds(mailhost.pid), load.count(), time.perf_counter()
        time.sleep(args.seconds)
        cpu = tree_cpu_seconds(mailhost.pid) - cpu
        system = tree_cpu_seconds(mailhost.pid, system_only=True) - system
        done, seconds = load.count() - done, time.perf_counter() - start
        unit = "IMAP command" if args.load == "imap" else "message"
        print(
            f"{done} {unit}s in {seconds:.1f} s: {done / seconds:.1f}/s, runmail's process tree "
            f"{cpu * 1000 / max(done, 1):.2f} ms CPU per {unit}, of which "
            f"{system * 1000 / max(done, 1):.2f} ms in the kernel ({cpu / seconds:.2f} CPUs "
            f"busy; load average {os.getloadavg()[0]:.1f})"
        )
        if meter:
            backend, moved = meter.stop()
            per = {name: value / max(done, 1) for name, value in moved.items()}
            print(
                f"PostgreSQL, the database's backends: {backend * 1000 / max(done, 1):.2f} ms "
                f"CPU per {unit}; per {unit}: "
                + ", ".join(f"{name} {value:.1f}" for name, value in per.items())
            )
        if load.errors:
            print(f"load errors: {load.errors}")
        return report(recording, args.top)


if __name__ == "__main__":
    sys.exit(main())
