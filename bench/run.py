"""Mailhost benchmarks: one command, Mailhost and the reference servers side by side.

    .venv/bin/python bench/run.py [--quick] [--postgres] [--processes N] [--json PATH]

Starts `manage.py runmail` on 127.0.0.1 (free high ports, a fresh data dir; SQLite, or with
--postgres a fresh PostgreSQL database and Redis), provisions with `adddomain`/`addmailbox`,
runs every benchmark, prints a table, writes JSON (default bench/results/latest.json), and
stops everything it started, also on errors. README "Benchmarks" explains each figure.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import imapbench  # noqa: E402
import loadgen  # noqa: E402
import reference_dovecot  # noqa: E402
import reference_opendkim  # noqa: E402
import reference_postfix  # noqa: E402
from baseline_aiosmtpd import Sink  # noqa: E402
from dns_server import DnsServer  # noqa: E402
from mailhost_process import (  # noqa: E402
    REPO,
    BackendMeter,
    Mailhost,
    PostgresDatabase,
    free_port,
    tree_cpu_seconds,
    tree_memory,
)

DOMAIN = "bench.test"
SMTP_BOX = f"box@{DOMAIN}"
IMAP_USER = f"imap@{DOMAIN}"
SENDER = f"sender@{DOMAIN}"
PASSWORD = "bench-password-1"
SINK_DOMAIN = "remote.bench.test"
SINK_ADDRESS = "127.0.0.2"

IMAPTEST_USER = f"imaptest@{DOMAIN}"
MAILBOXES = (SMTP_BOX, IMAP_USER, SENDER, IMAPTEST_USER)
IMAPTEST_MESSAGES = 300
IMAPTEST_MISSING = "imaptest not found (PATH or MAILHOST_BENCH_IMAPTEST)"

SIZES = {"1KB": 1024, "10KB": 10 * 1024, "100KB": 100 * 1024}
# (messages per case, one session / 20 sessions), folder sizes, idle connection counts...
FULL = {
    "smtp_messages": {1: 500, 20: 2000},  # a row lasts seconds, not a fraction of one
    "folders": (1_000, 10_000, 100_000),
    "idle": (1, 1_000, 10_000, 50_000),
    "appends": 300,
    "inbound_checks": 200,
    "outbound": 400,
    "repeat": 3,
    "imaptest": (30, 10),  # secs, clients
    "settle": 1.0,  # seconds a process is left before its RSS is read
}
QUICK = {
    "smtp_messages": {1: 5, 20: 20},
    "folders": (100, 300, 1_000),
    "idle": (1, 20, 100),
    "appends": 20,
    "outbound": 20,
    "inbound_checks": 20,
    "repeat": 2,
    "imaptest": (3, 10),
    "settle": 0.3,
}
# Issue 22's memory targets: idle IMAP connections -> MiB for all processes together.
IDLE_TARGETS_MIB = {10_000: 150, 50_000: 1024}
# Settings a bench deployment changes from the defaults, and why.
MAILHOST_ENV = {
    # The IMAP/POP3 LOGIN over plain TCP on loopback (no TLS handshake in the figures).
    "MAILHOST_ALLOW_PLAINTEXT_AUTH": "1",
    # 50000 idle IMAP connections of one user from 200 loopback addresses (250 each).
    "MAILHOST_IMAP_MAX_CONNECTIONS": "60000",
    "MAILHOST_IMAP_MAX_CONNECTIONS_PER_USER": "60000",
    "MAILHOST_MAX_CONNECTIONS": "60000",
    "MAILHOST_MAX_CONNECTIONS_PER_IP": "1000",
    # The outbound figure measures the workers, not the sweeper's period.
    "MAILHOST_SWEEP_INTERVAL": "1",
}


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.counts = dict(QUICK if args.quick else FULL)
        if args.idle:
            self.counts["idle"] = args.idle
        self.results: dict = {
            "meta": {
                "mode": "quick" if args.quick else "full",
                "database": "postgresql" if args.postgres else "sqlite",
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "commit": git_commit(),
                # Other work on the machine skews every figure: the load is recorded.
                "loadavg_at_start": os.getloadavg()[0],
                # runmail's worker processes (MAILHOST_PROCESSES; unset: its default).
                "processes": args.processes or os.environ.get("MAILHOST_PROCESSES") or "default",
                "machine": platform.machine(),
                "loadgen": "smtp-source"
                if reference_postfix.smtp_source_available()
                else "asyncio",
            },
            "errors": {},
        }
        self.stack = contextlib.ExitStack()
        self.tmp = Path(tempfile.mkdtemp(prefix="mailhost-bench-"))
        self.tmp.chmod(0o755)  # Postfix's daemons run as their own users
        self.mailhost: Mailhost | None = None
        # Reference servers, started in setup for the sections that compare with them.
        self.baseline_port: int | None = None
        self.baseline_pid: int | None = None
        self.postfix: reference_postfix.PostfixInstance | None = None
        self.postfix_dkim: (
            tuple[reference_postfix.PostfixInstance, reference_opendkim.OpenDKIMInstance] | None
        ) = None
        self.dovecot: reference_dovecot.DovecotInstance | None = None
        self.stoppers: list[Callable[[], None]] = []

    # --- setup ---------------------------------------------------------------------------

    def setup(self) -> None:
        self.stack.callback(self.remove_tmp)
        database_url = redis_url = None
        if self.args.postgres:
            with self.phase("setup: database"):
                database_url, redis_url = fresh_postgres(self.stack, f"mh_bench_{os.getpid()}")
        # Everything started below is stopped at the end, all at once (each waits for its
        # own processes), before the data dir and the database go.
        self.stack.callback(self.stop_all)
        self.dns = DnsServer(SINK_DOMAIN, SINK_ADDRESS)
        self.dns.start()
        self.stoppers.append(self.dns.stop)
        self.sink = Sink(SINK_ADDRESS, free_port(SINK_ADDRESS))
        self.sink.start()
        self.stoppers.append(self.sink.stop)
        env = dict(MAILHOST_ENV)
        env["MAILHOST_DNS_SERVERS"] = f"{self.dns.address[0]}:{self.dns.address[1]}"
        env["MAILHOST_OUTBOUND_PORT"] = str(self.sink.port)
        env["MAILHOST_DELIVERY_THREADS"] = "1"
        # One certificate for both IMAP servers' TLS (imaptest's TLS run), as runmail's own
        # self-signed one would be: EC P-256.
        self.tls = bench_certificate(self.tmp / "tls")
        env["MAILHOST_TLS_CERT"], env["MAILHOST_TLS_KEY"] = map(str, self.tls)
        if self.args.processes:
            env["MAILHOST_PROCESSES"] = str(self.args.processes)
        self.mailhost_env = env
        self.mailhost = Mailhost(
            self.tmp / "mailhost", database_url=database_url, redis_url=redis_url, extra_env=env
        )
        self.stoppers.append(self.stop_mailhost)
        step = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor() as pool:
            references = pool.submit(self.start_references)
            self.provision()
            references.result()
        self.results["meta"]["setup_seconds"] = round(time.perf_counter() - step, 2)

    def provision(self) -> None:
        """One dbtool process migrates, then creates the domain, the mailboxes and the IMAP
        folders (bulk-inserted, bench/dbtool.py says how); runmail starts as soon as the
        schema is there, while the rest is provisioned."""
        assert self.mailhost is not None
        folders = []
        if self.wants("imap", "webmail"):
            for count in self.counts["folders"]:
                folders += [f"bench{count}", str(count)]
        command = ["setup", DOMAIN, *MAILBOXES, "populate", IMAP_USER, *folders]
        with self.phase("setup: migrate"):
            tool = self.mailhost.tool_process(*command)
            tool.stdin.write(PASSWORD + "\n")
            tool.stdin.close()
            if tool.stdout.readline().strip() != "migrated":
                tool.wait(60)
                raise RuntimeError(f"dbtool {' '.join(command)}: {tool.stderr.read()[-2000:]}")
        with concurrent.futures.ThreadPoolExecutor() as pool:
            started = pool.submit(self.start_mailhost)
            with self.phase("setup: domain, mailboxes, folders (beside runmail start)"):
                tool.stdout.read()  # its summary; stderr stays short
                if tool.wait(600) != 0:
                    raise RuntimeError(f"dbtool {' '.join(command)}: {tool.stderr.read()[-2000:]}")
            started.result()

    def start_references(self) -> None:
        """The reference servers the chosen sections compare with, started beside Mailhost."""
        with self.phase("setup: reference servers (beside runmail)"):
            outbound = self.wants("outbound", "outbound-processes")
            if outbound and not self.wants("smtp") and reference_postfix.available():
                self.start_postfix()
            if outbound and reference_postfix.available() and reference_opendkim.available():
                self.start_postfix_dkim()
            if self.wants("smtp"):
                self.baseline_port = free_port()
                baseline = subprocess.Popen(
                    [
                        sys.executable,
                        str(REPO / "bench" / "baseline_aiosmtpd.py"),
                        "--port",
                        str(self.baseline_port),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                self.stoppers.append(lambda: stop_process(baseline))
                self.baseline_pid = baseline.pid
                self.results["meta"].setdefault("pids", []).append(baseline.pid)
                if reference_postfix.available():
                    self.start_postfix()
                if baseline.stdout.readline().strip() != "ready":
                    raise RuntimeError("baseline aiosmtpd did not start")
            if self.wants("imaptest") and imaptest_binary() and reference_dovecot.available():
                dovecot = reference_dovecot.DovecotInstance(
                    self.tmp / "dovecot",
                    free_port(),
                    IMAPTEST_USER,
                    PASSWORD,
                    tls=self.tls,
                    imaps_port=free_port(),
                )
                self.stoppers.append(dovecot.stop)
                dovecot.start()
                self.results["meta"].setdefault("pids", []).append(dovecot.pid)
                self.dovecot = dovecot

    def start_postfix(self) -> None:
        """The stock Postfix of the SMTP rows (virtual(8) for the bench domain), which also
        relays mail for the sink's domain to the sink (the outbound rows)."""
        postfix = reference_postfix.PostfixInstance(
            self.tmp / "postfix",
            free_port(),
            DOMAIN,
            relay={SINK_DOMAIN: (SINK_ADDRESS, self.sink.port)},
        )
        self.stoppers.append(postfix.stop)
        postfix.start()
        self.results["meta"].setdefault("pids", []).append(postfix.master_pid())
        self.postfix = postfix

    def start_postfix_dkim(self) -> None:
        """A second stock Postfix for the outbound rows only, relaying to the sink with
        OpenDKIM signing every message (bench/reference_opendkim.py): the same work as
        Mailhost's submission, which signs every message with the domain's key."""
        opendkim = reference_opendkim.OpenDKIMInstance(self.tmp / "opendkim", SENDER.split("@")[1])
        self.stoppers.append(opendkim.stop)
        opendkim.start()
        self.results["meta"].setdefault("pids", []).append(opendkim.pid)
        postfix = reference_postfix.PostfixInstance(
            self.tmp / "postfix-dkim",
            free_port(),
            DOMAIN,
            relay={SINK_DOMAIN: (SINK_ADDRESS, self.sink.port)},
            milter=opendkim.socket,
        )
        self.stoppers.append(postfix.stop)
        postfix.start()
        self.results["meta"].setdefault("pids", []).append(postfix.master_pid())
        self.postfix_dkim = (postfix, opendkim)

    def remove_tmp(self) -> None:
        with self.phase("teardown: remove data"):
            shutil.rmtree(self.tmp, True)

    def stop_all(self) -> None:
        with (
            self.phase("teardown: stop servers"),
            concurrent.futures.ThreadPoolExecutor(max(1, len(self.stoppers))) as pool,
        ):
            for future in [pool.submit(stop) for stop in self.stoppers]:
                try:
                    future.result()
                except Exception:  # stop the others all the same
                    traceback.print_exc()

    def wants(self, *sections: str) -> bool:
        return not self.args.only or bool(set(sections) & self.args.only)

    @contextlib.contextmanager
    def phase(self, name: str):  # noqa: ANN201
        """Time a step of the run: printed, and kept in the JSON's meta.phases."""
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = round(time.perf_counter() - start, 2)
            self.results["meta"].setdefault("phases", {})[name] = seconds
            print(f"   [{seconds:5.1f}s] {name}", file=sys.stderr, flush=True)

    def start_mailhost(self, **env: str) -> None:
        assert self.mailhost is not None
        self.mailhost.env.update(env)
        threads = self.mailhost.env["MAILHOST_DELIVERY_THREADS"]
        with self.phase(f"runmail start ({threads} delivery threads)"):
            self.mailhost.start()
        self.results["meta"].setdefault("pids", []).append(self.mailhost.pid)

    def stop_mailhost(self, mailhost: Mailhost | None = None) -> None:
        mailhost = mailhost or self.mailhost
        if mailhost is not None:
            mailhost.stop()
            # Keep runmail's log beside the JSON (the data dir goes at the end).
            log = self.args.json.with_suffix(".runmail.log")
            with contextlib.suppress(OSError):
                log.parent.mkdir(parents=True, exist_ok=True)
                with open(log, "ab") as out:
                    out.write(mailhost.log_path.read_bytes())
                mailhost.log_path.unlink()

    def restart_mailhost(self, **env: str) -> None:
        """A fresh runmail (new ports, same data and database) starts while the old one stops."""
        old = self.mailhost
        assert old is not None
        self.mailhost = Mailhost(
            old.data_dir,
            database_url=old.env.get("DATABASE_URL"),
            redis_url=old.env.get("REDIS_URL"),
            extra_env={**self.mailhost_env, **env},
            log_name="runmail-restarted.log",
        )
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            stopped = pool.submit(self.stop_mailhost, old)
            self.start_mailhost()
            stopped.result()

    def ensure_running(self, where: str) -> None:
        """Record (and recover from) a runmail that died under a benchmark."""
        assert self.mailhost is not None
        process = self.mailhost.process
        if process is not None and process.poll() is not None:
            self.results["errors"][f"runmail died during {where}"] = (
                f"exit status {process.returncode}: {self.mailhost.log_tail(5)}"
            )[:1000]
            self.mailhost.process = None
            self.start_mailhost()

    def section(self, name: str, fn) -> None:  # noqa: ANN001
        if self.args.only and name.split(",")[0] not in self.args.only:
            return
        print(f"== {name}", file=sys.stderr, flush=True)
        with self.phase(name):
            try:
                fn()
            except Exception as exc:
                traceback.print_exc()
                self.results["errors"][name] = f"{type(exc).__name__}: {exc}"[:1000]
                if self.mailhost is not None:
                    self.ensure_running(name)

    # --- Sieve ---------------------------------------------------------------------------------

    def sieve(self) -> None:
        """CPU cost of a 50-rule Sieve script per delivery (bench/sieve_cost.py, in its own
        process on a scratch SQLite database: an in-process figure, not a throughput one)."""
        if not (REPO / "mailboxes" / "sieve" / "__init__.py").exists():
            self.results["sieve"] = "the Sieve language (mailboxes/sieve) is not there"
            return
        data_dir = self.tmp / "sieve"
        data_dir.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
        env["MAILHOST_DATA_DIR"] = str(data_dir)
        runs = "50" if self.args.quick else "500"
        done = subprocess.run(
            [sys.executable, str(REPO / "bench" / "sieve_cost.py"), runs, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        self.results["sieve"] = json.loads(done.stdout.strip().splitlines()[-1])

    # --- Spam verdict ---------------------------------------------------------------------------

    def spam(self) -> None:
        """CPU of the builtin spam verdict per message and the classifier's size
        (bench/spam_cost.py, in its own process on a scratch SQLite database)."""
        data_dir = self.tmp / "spam"
        data_dir.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILHOST_")}
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        env["MAILHOST_DATA_DIR"] = str(data_dir)
        env["MAILHOST_LOG_LEVEL"] = "WARNING"
        runs = "50" if self.args.quick else "500"
        done = subprocess.run(
            [sys.executable, str(REPO / "bench" / "spam_cost.py"), runs, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        self.results["spam"] = json.loads(done.stdout.strip().splitlines()[-1])

    # --- SMTP inbound ------------------------------------------------------------------------

    def smtp(self) -> None:
        assert self.mailhost is not None
        baseline_port, postfix = self.baseline_port, self.postfix
        cases = []
        self.results["smtp"] = {
            "postfix": "stock Postfix, virtual(8) to Maildir" if postfix else "not installed",
            "cases": cases,
        }
        stored = self.mailhost_count()
        # On PostgreSQL its backends' CPU too (the server on this machine): Postfix's and
        # SQLite's work is in their own process trees.
        database_url = self.mailhost.env.get("DATABASE_URL")
        backends = BackendMeter(database_url) if database_url else None
        if backends is not None:
            self.stack.callback(backends.close)
        for size_name, size in SIZES.items():
            for sessions, messages in self.counts["smtp_messages"].items():
                for reuse in (False, True):
                    case = {
                        "size": size_name,
                        "sessions": sessions,
                        "connection": "reuse" if reuse else "new",
                        "messages": messages,
                    }
                    load = dict(messages=messages, sessions=sessions, size=size, reuse=reuse)
                    cpu = tree_cpu_seconds(self.mailhost.pid)
                    if backends is not None:
                        backends.start()
                    result = loadgen.run_load(
                        "127.0.0.1", self.mailhost.ports["smtp"], recipient=SMTP_BOX, **load
                    )
                    case["mailhost_cpu_ms"] = cpu_ms(self.mailhost.pid, cpu, messages)
                    if backends is not None:
                        used, _ = backends.stop()
                        case["postgres_backend_cpu_ms"] = round(used * 1000 / messages, 2)
                    self.ensure_running(f"smtp {size_name}/{sessions}/{case['connection']}")
                    now = self.mailhost_count()
                    case["mailhost_stored"] = now - stored
                    stored = now
                    case["mailhost_per_s"] = round(case["mailhost_stored"] / result.seconds, 1)
                    if result.errors:
                        case["mailhost_errors"] = result.errors
                    cpu = tree_cpu_seconds(self.baseline_pid)
                    result = loadgen.run_load(
                        "127.0.0.1", baseline_port, recipient=SMTP_BOX, **load
                    )
                    case["aiosmtpd_cpu_ms"] = cpu_ms(self.baseline_pid, cpu, messages)
                    case["aiosmtpd_per_s"] = round(result.ok / result.seconds, 1)
                    case["ratio_to_aiosmtpd"] = ratio(
                        case["mailhost_per_s"], case["aiosmtpd_per_s"]
                    )
                    if postfix is not None:
                        before = postfix.delivered()
                        cpu = tree_cpu_seconds(postfix.master_pid())
                        start = time.perf_counter()
                        result = loadgen.run_load(
                            "127.0.0.1", postfix.port, recipient=SMTP_BOX, **load
                        )
                        case["postfix_accept_per_s"] = round(messages / result.seconds, 1)
                        deadline = time.monotonic() + 120
                        while postfix.delivered() < before + messages:
                            if time.monotonic() > deadline:
                                break
                            time.sleep(0.01)
                        elapsed = time.perf_counter() - start
                        # Postfix's daemons are children of its master (reaped ones included).
                        case["postfix_cpu_ms"] = cpu_ms(postfix.master_pid(), cpu, messages)
                        delivered = postfix.delivered() - before
                        case["postfix_per_s"] = round(delivered / elapsed, 1)
                        case["ratio_to_postfix"] = ratio(
                            case["mailhost_per_s"], case["postfix_per_s"]
                        )
                    else:
                        case["postfix_per_s"] = case["ratio_to_postfix"] = None
                    cases.append(case)
                    print(f"   {case}", file=sys.stderr, flush=True)

    def inbound_checks(self) -> None:
        """CPU of port 25's SPF/DKIM/ARC/DMARC checks per message (bench/inbound_checks.py,
        in its own process with its own scratch database and DNS server)."""
        out = self.tmp / "inbound.json"
        data_dir = self.tmp / "inbound"
        data_dir.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILHOST_")}
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        env["MAILHOST_DATA_DIR"] = str(data_dir)
        subprocess.run(
            [
                sys.executable,
                str(REPO / "bench" / "inbound_checks.py"),
                str(self.counts["inbound_checks"]),
                "--json",
                str(out),
            ],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
            timeout=600,
        )
        self.results["inbound_checks"] = json.loads(out.read_text())

    def mailhost_count(self) -> int:
        assert self.mailhost is not None
        return self.mailhost.count_messages(SMTP_BOX.split("@")[0], "INBOX")

    # --- outbound -------------------------------------------------------------------------

    def outbound(self, workers: int, processes: int = 0) -> None:
        """Runs with runmail started with MAILHOST_DELIVERY_THREADS=workers (in each of
        MAILHOST_DELIVERY_PROCESSES=processes children when set); the first run also sends
        the same load through the reference Postfix to the same sink."""
        assert self.mailhost is not None
        assert self.mailhost.env["MAILHOST_DELIVERY_THREADS"] == str(workers)
        assert self.mailhost.env.get("MAILHOST_DELIVERY_PROCESSES", "0") == str(processes)
        runs = self.results.setdefault("outbound", [])
        run = {"workers": workers, "processes": processes, "messages": self.counts["outbound"]}
        run["runmail_processes"] = self.results["meta"]["processes"]
        run.update(
            self.outbound_load(self.mailhost.ports["submission"], self.mailhost.pid, auth=True)
        )
        if self.postfix is not None and "outbound_postfix" not in self.results:
            self.results["outbound_postfix"] = self.outbound_load(
                self.postfix.port, self.postfix.master_pid(), auth=False
            )
            print(f"   postfix: {self.results['outbound_postfix']}", file=sys.stderr, flush=True)
        if self.postfix_dkim is not None and "outbound_postfix_dkim" not in self.results:
            postfix, opendkim = self.postfix_dkim
            self.results["outbound_postfix_dkim"] = self.outbound_load(
                postfix.port, (postfix.master_pid(), opendkim.pid), auth=False
            )
            print(
                f"   postfix + opendkim: {self.results['outbound_postfix_dkim']}",
                file=sys.stderr,
                flush=True,
            )
        signing = self.results.get("outbound_postfix_dkim") or {}
        run["postfix_dkim_delivered_per_s"] = signing.get("delivered_per_s")
        run["postfix_dkim_cpu_ms_per_message"] = signing.get("cpu_ms_per_message")
        run["ratio_to_postfix_dkim"] = ratio(run["delivered_per_s"], signing.get("delivered_per_s"))
        run["postfix_dkim_sink_sessions"] = signing.get("sink_sessions")
        postfix = self.results.get("outbound_postfix") or {}
        reference = postfix.get("delivered_per_s")
        run["postfix_delivered_per_s"] = reference
        run["postfix_cpu_ms_per_message"] = postfix.get("cpu_ms_per_message")
        run["postfix_sink_sessions"] = postfix.get("sink_sessions")
        run["postfix_machine_busy"] = postfix.get("machine_busy")
        run["ratio_to_postfix"] = ratio(run["delivered_per_s"], reference)
        runs.append(run)
        print(f"   {run}", file=sys.stderr, flush=True)

    def outbound_drain(self, workers: int, processes: int = 0) -> None:
        """Delivery alone: a runmail without delivery threads spools the load, then one with
        `workers` threads (in `processes` children when set) delivers the backlog; the rate
        from the first message at the sink to the last (submission is not in it)."""
        count = self.counts["outbound"]
        self.restart_mailhost(MAILHOST_DELIVERY_THREADS="0", MAILHOST_DELIVERY_PROCESSES="0")
        assert self.mailhost is not None
        before = self.sink.handler.recipients
        pid = self.mailhost.pid
        result = asyncio.run(
            submit("127.0.0.1", self.mailhost.ports["submission"], count, sessions=4, cpu_pid=pid)
        )
        # Submission with no delivery beside it in the process: the end-to-end rows' ceiling.
        spooled_per_s = round(result["ok"] / (time.perf_counter() - result["start"]), 1)
        spool_cpu = tree_cpu_seconds(pid) - result["cpu"]
        first = len(self.sink.handler.arrivals)
        self.restart_mailhost(
            MAILHOST_DELIVERY_THREADS=str(workers), MAILHOST_DELIVERY_PROCESSES=str(processes)
        )
        # Delivery's CPU from here (runmail's start is not in it) over what arrived from here.
        cpu, counted = tree_cpu_seconds(self.mailhost.pid), self.sink.handler.recipients
        done = self.sink.handler.wait_for(before + result["ok"], 300)
        drain_cpu = tree_cpu_seconds(self.mailhost.pid) - cpu
        drained = self.sink.handler.recipients - counted
        arrivals = self.sink.handler.arrivals[first:]
        seconds = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else None
        run = {
            "workers": workers,
            "processes": processes,
            "messages": count,
            "delivered": len(arrivals),
            "submit_alone_per_s": spooled_per_s,
            "submit_alone_cpu_ms_per_message": round(spool_cpu * 1000 / max(result["ok"], 1), 2),
            "drain_per_s": round((len(arrivals) - 1) / seconds, 1) if seconds else None,
            "drain_cpu_ms_per_message": round(drain_cpu * 1000 / max(drained, 1), 2),
            "complete": done,
        }
        self.results.setdefault("outbound_drain", []).append(run)
        print(f"   {run}", file=sys.stderr, flush=True)

    def outbound_load(self, port: int, pid: int | tuple[int, ...], *, auth: bool) -> dict:
        """Submit the outbound load on `port` and time it until the sink has it all; with
        the CPU the server's process tree (`pid`'s, or the trees of several) used for it, per
        message delivered (the first submission on, after the sessions' logins, as the rate
        is; the sink and the client are the bench's), and how many arrived DKIM-signed."""
        count = self.counts["outbound"]
        before = self.sink.handler.recipients
        signed = self.sink.handler.signed
        sessions = self.sink.handler.sessions
        machine = machine_cpu_ticks()
        own_cpu = time.process_time()
        result = asyncio.run(submit("127.0.0.1", port, count, sessions=4, auth=auth, cpu_pid=pid))
        cpu = result["cpu"]
        start = result["start"]
        submitted = time.perf_counter() - start
        done = self.sink.handler.wait_for(before + result["ok"], 300)
        elapsed = time.perf_counter() - start
        cpu = trees_cpu_seconds(pid) - cpu
        delivered = self.sink.handler.recipients - before
        own_cpu = time.process_time() - own_cpu
        run = {
            "submitted": result["ok"],
            "submit_per_s": round(result["ok"] / submitted, 1),
            "delivered": delivered,
            "signed": self.sink.handler.signed - signed,
            "delivered_per_s": round(delivered / elapsed, 1),
            "cpu_ms_per_message": round(cpu * 1000 / max(delivered, 1), 2),
            "complete": done,
            # This row's sessions at the sink, not the sink's count since its start (which
            # has every earlier row's in it, Postfix's among them).
            "sink_sessions": self.sink.handler.sessions - sessions,
            # The bench's own client and sink (this process), and how busy the whole machine
            # was: a row whose machine_busy is near 1.0 is bound by the CPU, so more delivery
            # threads cannot raise its rate.
            "bench_cpu_ms_per_message": round(own_cpu * 1000 / max(delivered, 1), 2),
            "machine_busy": machine_busy_since(machine),
        }
        if result["errors"]:
            run["errors"] = result["errors"]
        return run

    # --- IMAP --------------------------------------------------------------------------------

    def imap(self) -> None:
        assert self.mailhost is not None
        port = self.mailhost.ports["imap"]
        folders = []
        self.results["imap"] = {"folders": folders}
        for count in self.counts["folders"]:
            name = f"bench{count}"
            figures = imapbench.folder_figures(
                "127.0.0.1", port, IMAP_USER, PASSWORD, name, self.counts["repeat"]
            )
            figures = {"messages": count, **figures}
            folders.append(round_all(figures))
            print(f"   {folders[-1]}", file=sys.stderr, flush=True)
        if len(folders) >= 2:
            small, large = folders[0], folders[-1]
            self.results["imap"]["select_ratio_large_to_small"] = ratio(
                large["select_ms"], small["select_ms"]
            )
        raw = (REPO / "bench" / "sample.eml").read_bytes()
        self.results["imap"]["append"] = round_all(
            imapbench.append_rate(
                "127.0.0.1", port, IMAP_USER, PASSWORD, self.counts["appends"], raw
            )
        )

    # --- imaptest ----------------------------------------------------------------------------

    def imaptest(self) -> None:
        """Dovecot's imaptest in stress mode on the same mbox against Mailhost and, where
        installed, a stock Dovecot (bench/reference_dovecot.py): operations/s and errors."""
        assert self.mailhost is not None
        binary = imaptest_binary()
        if binary is None:
            self.results["imaptest"] = IMAPTEST_MISSING
            return
        secs, clients = self.counts["imaptest"]
        mbox = self.tmp / "imaptest.mbox"
        write_mbox(mbox, IMAPTEST_MESSAGES)
        run = {"secs": secs, "clients": clients, "messages": IMAPTEST_MESSAGES}
        self.results["imaptest"] = run
        # Plain IMAP, then implicit TLS (issue 22's row: imaptest's default mix over TLS),
        # each against Mailhost then Dovecot.
        tls: dict = {}
        for figures, ports in ((run, ("imap", "port")), (tls, ("imaps", "imaps_port"))):
            secure = figures is tls
            figures["mailhost"] = imaptest_run(
                binary,
                self.mailhost.ports[ports[0]],
                mbox,
                secs,
                clients,
                self.mailhost.pid,
                tls=secure,
                login_port=self.mailhost.ports["imap"],
            )
            print(f"   imaptest Mailhost {figures['mailhost']}", file=sys.stderr, flush=True)
            if self.dovecot is None:
                figures["dovecot"] = "not installed"
            else:
                figures["dovecot"] = imaptest_run(
                    binary,
                    getattr(self.dovecot, ports[1]),
                    mbox,
                    secs,
                    clients,
                    self.dovecot.pid,
                    tls=secure,
                    login_port=self.dovecot.port,
                )
                print(f"   imaptest Dovecot {figures['dovecot']}", file=sys.stderr, flush=True)
                figures["ratio_to_dovecot"] = ratio(
                    figures["mailhost"]["ops_per_s"], figures["dovecot"]["ops_per_s"]
                )
        run["tls"] = tls

    # --- memory ------------------------------------------------------------------------------

    def memory(self) -> None:
        """Memory of runmail's whole process tree (workers and delivery processes included)
        with 0, then more and more IMAP connections logged in and in IDLE."""
        assert self.mailhost is not None
        # Runs first in a fresh runmail: the figure is idle connections, not earlier garbage.
        time.sleep(self.counts["settle"])
        runs = [{"connections": 0, **memory_figures(self.mailhost.pid)}]
        self.results["memory"] = runs
        # The crowd in child processes of at most this many connections each: their file
        # limit is this process's (raised as far as allowed), and runmail's too: one runmail
        # process holds as many connections as its limit allows (`fd_limit` in the JSON), so a
        # crowd larger than that needs MAILHOST_PROCESSES workers (--processes).
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.results["meta"]["fd_limit"] = limit
        crowd = imapbench.IdleCrowds(
            "127.0.0.1", self.mailhost.ports["imap"], IMAP_USER, PASSWORD, limit - 1000
        )
        try:
            for total in self.counts["idle"]:
                start = time.perf_counter()
                crowd.grow(total)
                time.sleep(self.counts["settle"])
                runs.append(
                    {
                        "connections": crowd.connections,
                        "asked": total,
                        "failed": crowd.failed,
                        "setup_s": round(time.perf_counter() - start, 2),
                        **memory_figures(self.mailhost.pid),
                    }
                )
                target = IDLE_TARGETS_MIB.get(total)
                if target:
                    runs[-1]["target_mib"] = target
                    runs[-1]["met"] = runs[-1]["pss_mib"] < target and not crowd.failed
                print(f"   {runs[-1]}", file=sys.stderr, flush=True)
        finally:
            crowd.close()
            time.sleep(0.5)
        if crowd.errors:
            self.results["memory_errors"] = crowd.errors

    # --- webmail -----------------------------------------------------------------------------

    def webmail(self) -> None:
        assert self.mailhost is not None
        import http.cookiejar
        import re
        import urllib.parse
        import urllib.request

        folders = self.results.get("imap", {}).get("folders") or []
        if not folders:
            raise RuntimeError("no populated folder (the IMAP section failed)")
        count = folders[-1]["messages"]
        folder_id = int(self.mailhost.tool("folder-id", IMAP_USER, f"bench{count}"))
        base = f"http://127.0.0.1:{self.mailhost.ports['web']}"
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = opener.open(f"{base}/login/", timeout=60).read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode(
            {"csrfmiddlewaretoken": token, "address": IMAP_USER, "password": PASSWORD}
        ).encode()
        request = urllib.request.Request(f"{base}/login/", data=form, headers={"Referer": base})
        opener.open(request, timeout=60).read()
        if not any(cookie.name == "sessionid" for cookie in jar):
            raise RuntimeError("webmail login did not set a session")

        def get(path: str) -> float:
            start = time.perf_counter()
            with opener.open(f"{base}{path}", timeout=120) as response:
                body = response.read()
                if response.status != 200 or len(body) < 100:
                    raise RuntimeError(f"GET {path}: {response.status}")
            return (time.perf_counter() - start) * 1000

        repeat = self.counts["repeat"]
        list_path = f"/f/{folder_id}/"
        message_path = f"/m/{folder_id}/{count // 2}/"
        get(list_path)
        get(message_path)
        self.results["webmail"] = {
            "messages": count,
            "list_ms": round(statistics.median(get(list_path) for _ in range(repeat)), 1),
            "message_ms": round(statistics.median(get(message_path) for _ in range(repeat)), 1),
            "push_ms": round(
                statistics.median(self.push_latency(opener, base) for _ in range(repeat)), 1
            ),
        }
        print(f"   {self.results['webmail']}", file=sys.stderr, flush=True)

    def push_latency(self, opener, base: str) -> float:
        """From the SMTP connection to port 25 opening until the page's held long-poll
        (/api/wait/) answers: SMTP transaction, delivery, change event, answer."""
        import json
        import smtplib
        import threading

        with opener.open(f"{base}/api/status/", timeout=60) as response:
            version = json.loads(response.read())["v"]
        answered: dict = {}

        def wait() -> None:
            with opener.open(f"{base}/api/wait/?v={version}", timeout=60) as response:
                answered["data"] = json.loads(response.read())
                answered["at"] = time.perf_counter()

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.5)  # the wait is held by now
        start = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", self.mailhost.ports["smtp"], timeout=60) as smtp:
            smtp.sendmail(
                f"push@{SINK_DOMAIN}",
                [IMAP_USER],
                f"From: push@{SINK_DOMAIN}\r\nTo: {IMAP_USER}\r\nSubject: push\r\n\r\nlive\r\n",
            )
        waiter.join(60)
        if "at" not in answered or answered["data"].get("v") == version:
            raise RuntimeError("the long-poll did not answer the delivery")
        return (answered["at"] - start) * 1000

    # --- run ---------------------------------------------------------------------------------

    def run(self) -> dict:
        with self.stack:
            self.setup()
            self.section("smtp", self.smtp)
            self.section("inbound", self.inbound_checks)
            self.section("outbound, 1 worker", lambda: self.outbound(1))
            self.section("imap", self.imap)
            self.section("webmail", self.webmail)
            self.section("imaptest", self.imaptest)
            # A fresh runmail with 4 delivery threads: memory first, then outbound again.
            if self.wants("memory", "outbound"):
                self.restart_mailhost(MAILHOST_DELIVERY_THREADS="4")
            self.section("memory", self.memory)
            self.section("outbound, 4 workers", lambda: self.outbound(4))
            if self.wants("outbound"):
                self.restart_mailhost(MAILHOST_DELIVERY_THREADS="16")
            self.section("outbound, 16 workers", lambda: self.outbound(16))
            # The same 16 threads in 2 delivery processes (GILs of their own).
            if self.wants("outbound-processes"):
                self.restart_mailhost(
                    MAILHOST_DELIVERY_THREADS="8", MAILHOST_DELIVERY_PROCESSES="2"
                )
            self.section("outbound-processes, 2x8 workers", lambda: self.outbound(8, processes=2))
            for threads, processes in ((1, 0), (4, 0), (16, 0), (8, 2)):
                self.section(
                    f"outbound-drain, {processes or 1}x{threads}",
                    lambda t=threads, p=processes: self.outbound_drain(t, p),
                )
            self.section("sieve", self.sieve)
            self.section("spam", self.spam)
            teardown = time.perf_counter()
        self.results["meta"]["phases"]["teardown"] = round(time.perf_counter() - teardown, 2)
        self.results["meta"]["loadavg_at_end"] = os.getloadavg()[0]
        self.results["meta"]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return self.results


# --- helpers -----------------------------------------------------------------------------


def machine_cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) clock ticks of every CPU since boot, from /proc/stat (None elsewhere)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal (guest time is inside user already)
    total = sum(fields[:8])
    return total - fields[3] - fields[4], total


def machine_busy_since(start: tuple[int, int] | None) -> float | None:
    """The share of all CPUs busy since `start` (machine_cpu_ticks), 0.0 to 1.0."""
    end = machine_cpu_ticks()
    if start is None or end is None or end[1] <= start[1]:
        return None
    return round((end[0] - start[0]) / (end[1] - start[1]), 3)


def trees_cpu_seconds(pids: int | tuple[int, ...]) -> float:
    """tree_cpu_seconds summed over the trees of several processes (Postfix and its milter)."""
    if isinstance(pids, int):
        pids = (pids,)
    return sum(tree_cpu_seconds(pid) for pid in pids)


async def submit(
    host: str,
    port: int,
    count: int,
    sessions: int,
    auth: bool = True,
    cpu_pid: int | tuple[int, ...] = 0,
) -> dict:
    """Submit `count` messages to remote recipients through the MSA (AUTH PLAIN), or without
    AUTH (`auth=False`: a relay that trusts loopback, the reference Postfix).

    Every session logs in before the clock starts: the first LOGIN of a process pays the
    password hash (PBKDF2), which is a login cost, not a delivery one. With `cpu_pid`, the
    result's `cpu` is that process tree's CPU seconds read at the same moment, after the
    logins (each runmail worker's first AUTH hashes the password once: 0.25 s of CPU at
    Django's 1,000,000 PBKDF2 iterations, 1.25 ms a message of 400 with two workers).
    """
    import base64

    credentials = base64.b64encode(f"\0{SENDER}\0{PASSWORD}".encode()).decode()
    todo = iter(range(count))
    ok = 0
    errors: list[str] = []

    async def login():  # noqa: ANN202
        reader, writer = await asyncio.open_connection(host, port)
        await loadgen._expect(reader, 220)
        writer.write(b"EHLO client.bench.test\r\n")
        await loadgen._expect(reader, 250)
        if auth:
            writer.write(f"AUTH PLAIN {credentials}\r\n".encode())
            await loadgen._expect(reader, 235)
        return reader, writer

    async def session(reader, writer) -> None:  # noqa: ANN001
        nonlocal ok
        try:
            for index in todo:
                recipient = f"user{index}@{SINK_DOMAIN}"
                data = loadgen.make_message(index, 2048, SENDER, recipient)
                try:
                    await loadgen._transaction(reader, writer, data, SENDER, recipient)
                    ok += 1
                except loadgen.SmtpError as exc:
                    if len(errors) < 5:
                        errors.append(str(exc)[:300])
                    writer.write(b"RSET\r\n")
                    await loadgen._reply(reader)
        finally:
            await loadgen._close(writer, reader)

    connections = [await login()]  # one first, so the others hit the auth cache
    connections += await asyncio.gather(*(login() for _ in range(sessions - 1)))
    cpu = trees_cpu_seconds(cpu_pid) if cpu_pid else None
    start = time.perf_counter()
    await asyncio.gather(*(session(*conn) for conn in connections))
    return {"ok": ok, "errors": errors, "start": start, "cpu": cpu}


def imaptest_binary() -> str | None:
    """Dovecot's imaptest: the MAILHOST_BENCH_IMAPTEST variable, else `imaptest` on PATH."""
    named = os.environ.get("MAILHOST_BENCH_IMAPTEST")
    if named:
        return named if os.access(named, os.X_OK) else None
    return shutil.which("imaptest")


def bench_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for mx.bench.test and 127.0.0.1, made by runmail's
    own generator (what it makes for itself when given none)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from mailhost.tls import _generate_self_signed

    directory.mkdir(mode=0o755)
    cert, key = directory / "cert.pem", directory / "key.pem"
    _generate_self_signed(directory, cert, key, ["mx.bench.test"], ["127.0.0.1"])
    return cert, key


def write_mbox(path: Path, count: int) -> None:
    """imaptest's source of messages to APPEND: `count` plain messages, 0.5-2.5 KB."""
    with open(path, "w") as out:
        for i in range(count):
            body = "\n".join(
                f"Line {j} of message {i}, a few words long." for j in range(10 + i % 40)
            )
            out.write(
                f"From sender{i}@example.net Sun Nov 29 01:00:00 2026\n"
                f"From: Sender {i} <sender{i}@example.net>\nTo: {IMAPTEST_USER}\n"
                f"Subject: imaptest message {i}\nMessage-ID: <imaptest-{i}@example.net>\n"
                f"Date: Sun, 29 Nov 2026 01:00:00 +0000\n\n{body}\n\n"
            )


def imaptest_run(
    binary: str,
    port: int,
    mbox: Path,
    secs: int,
    clients: int,
    server_pid: int,
    *,
    tls: bool = False,
    login_port: int | None = None,
) -> dict:
    """imaptest against the server on `port` (`tls`: implicit TLS, the certificate not
    verified), with the CPU its process tree (`server_pid`) used per operation meanwhile."""
    # One login first (on the plain port, `login_port`): the server's first one pays the
    # password hash, which ten clients logging in at once would otherwise all wait for.
    client = imapbench.ImapClient("127.0.0.1", login_port or port)
    client.command(f'LOGIN "{IMAPTEST_USER}" "{PASSWORD}"')
    client.close()
    cpu = tree_cpu_seconds(server_pid)
    result = subprocess.run(
        [
            binary,
            "host=127.0.0.1",
            f"port={port}",
            f"user={IMAPTEST_USER}",
            f"pass={PASSWORD}",
            f"mbox={mbox}",
            f"secs={secs}",
            f"clients={clients}",
            *(["ssl=any-cert"] if tls else []),
        ],
        capture_output=True,
        text=True,
        timeout=secs + 120,
    )
    cpu = tree_cpu_seconds(server_pid) - cpu
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise RuntimeError(f"imaptest exited with {result.returncode}: {output[-500:]}")
    figures = imaptest_figures(output, secs)
    operations = sum(figures["operations"].values())
    figures["cpu_ms_per_op"] = round(cpu * 1000 / operations, 2) if operations else None
    return figures


def imaptest_figures(output: str, secs: int) -> dict:
    """The "Totals:" block of imaptest's output (command names, percentage lines, counts)
    as operations per second, and its "Error:" lines."""
    lines = output.splitlines()
    if "Totals:" not in lines:
        raise RuntimeError(f"imaptest printed no totals: {output[-500:]}")
    block = lines[lines.index("Totals:") + 1 :]
    names = block[0].split()
    counts = next(
        [int(n) for n in line.split()]
        for line in block[1:]
        if len(line.split()) == len(names) and all(n.isdigit() for n in line.split())
    )
    errors = [line for line in lines if line.startswith("Error:")]
    return {
        "operations": dict(zip(names, counts)),
        "command_ops_per_s": {name: round(n / secs, 1) for name, n in zip(names, counts)},
        "ops_per_s": round(sum(counts) / secs, 1),
        "errors": len(errors),
        "first_errors": list(dict.fromkeys(errors))[:10],
    }


def git_commit() -> str:
    """The commit measured, with "+changes" when the work tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}+changes" if dirty else head or "unknown"


def bench_redis_url() -> str:
    """The bench's own Redis database (8), on the server REDIS_URL names."""
    url = os.environ.get("MAILHOST_BENCH_REDIS_URL")
    if url:
        return url
    parts = urlsplit(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    return urlunsplit(parts._replace(path="/8"))


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def fresh_postgres(stack: contextlib.ExitStack, name: str) -> tuple[str, str]:
    """A fresh PostgreSQL database `name` on DATABASE_URL's server and the bench's Redis db,
    flushed; both dropped/flushed when `stack` closes. Returns (database URL, Redis URL)."""
    server = os.environ.get("DATABASE_URL") or "postgres://root@127.0.0.1:5432/postgres"
    # A DATABASE_URL naming a database of its own (mh_x) keeps the fresh one in its name
    # space (mh_x_bench_PID), so that engineers sharing a server never touch each other's.
    named = urlsplit(server).path.strip("/")
    if named and named != "postgres":
        name = f"{named}_{name.removeprefix('mh_')}"
    db = PostgresDatabase(server, name)
    db.create()
    stack.callback(db.drop)
    redis_url = bench_redis_url()
    flush_redis(redis_url)
    stack.callback(flush_redis, redis_url)
    return db.url, redis_url


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or not b:
        return None
    return round(a / b, 3)


def cpu_ms(pid: int, before: float, count: int) -> float | None:
    """CPU milliseconds per item used by `pid`'s process tree since `before` (seconds)."""
    if not count:
        return None
    return round((tree_cpu_seconds(pid) - before) * 1000 / count, 2)


def mib(value: int) -> float:
    return round(value / (1 << 20), 1)


def memory_figures(pid: int) -> dict:
    """`rss_mib`: RSS summed over the process tree (pages forked workers share count in each),
    `pss_mib`: the same shared pages divided among their sharers (the issue's figure: what the
    processes together cost the machine)."""
    memory = tree_memory(pid)
    return {
        "rss_mib": mib(memory["rss"]),
        "pss_mib": mib(memory["pss"]),
        "processes": memory["processes"],
        # Each process (the supervisor first), MiB: PSS, and USS (its private pages).
        "each": [[mib(one["pss"]), mib(one["uss"])] for one in memory["each"]],
    }


def round_all(figures: dict) -> dict:
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}


def raise_fd_limit(connections: int) -> None:
    """Room for `connections` idle IMAP connections on both ends (runmail inherits the
    limit): the hard limit too where allowed (root, up to fs.nr_open), else the soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 10_000
    if wanted > hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- table -------------------------------------------------------------------------------


def table(results: dict) -> str:
    out = []
    meta = results["meta"]
    out.append(
        f"Mailhost bench at {meta['commit']} ({meta['mode']}, {meta['database']}, "
        f"{meta['cpus']} CPUs, "
        f"Python {meta['python']}, load generator: {meta['loadgen']}, load average "
        f"{meta['loadavg_at_start']:.1f} at start, {meta.get('loadavg_at_end', 0):.1f} at end)"
    )
    smtp = results.get("smtp")
    if smtp:
        out.append("")
        out.append("SMTP inbound, messages/s accepted and durably delivered")
        out.append(
            "| size | sessions | connection | Mailhost | aiosmtpd 250-only | Postfix (to Maildir) "
            "| vs aiosmtpd | vs Postfix |"
        )
        out.append("|---|---|---|---|---|---|---|---|")
        for c in smtp["cases"]:
            out.append(
                f"| {c['size']} | {c['sessions']} | {c['connection']} | {c['mailhost_per_s']} "
                f"| {c['aiosmtpd_per_s']} | {c.get('postfix_per_s')} "
                f"| {c['ratio_to_aiosmtpd']} | {c.get('ratio_to_postfix')} |"
            )
        out.append("")
        out.append("SMTP inbound, CPU ms per message (each server's process tree, during its load)")
        backends = any("postgres_backend_cpu_ms" in c for c in smtp["cases"])
        extra = " PostgreSQL backends |" if backends else ""
        out.append(
            f"| size | sessions | connection | Mailhost |{extra} aiosmtpd 250-only | Postfix |"
        )
        out.append("|---|---|---|---|---|---|" + ("---|" if backends else ""))
        for c in smtp["cases"]:
            column = f" {c.get('postgres_backend_cpu_ms')} |" if backends else ""
            out.append(
                f"| {c['size']} | {c['sessions']} | {c['connection']} "
                f"| {c.get('mailhost_cpu_ms')} |{column} {c.get('aiosmtpd_cpu_ms')} "
                f"| {c.get('postfix_cpu_ms')} |"
            )
    inbound = results.get("inbound_checks")
    if inbound:
        out.append("")
        out.append(
            "Port 25 checks (SPF, DKIM, ARC, DMARC, Authentication-Results), CPU ms a message,"
            " DNS answered locally"
        )
        for key, value in inbound.items():
            if "ms" in key:
                out.append(f"- {key}: {value}")
    spam = results.get("spam")
    if spam:
        out.append("")
        out.append(
            "Spam verdict (builtin), CPU ms a message: "
            f"verdict {spam['verdict_untrained_cpu_ms']} (untrained mailbox), "
            f"{spam['verdict_trained_cpu_ms']} (classifier trained on {spam['trained_messages']}"
            f" messages); message_accept +{spam['accept_cpu_ms_added']} "
            f"({spam['accept_cpu_ms_backend_off']} off, {spam['accept_cpu_ms_builtin']} builtin);"
            f" training {spam['training_cpu_ms_per_message']} (after the move's commit); "
            f"classifier {spam['classifier_rows']} rows, {spam['classifier_table_bytes']} bytes "
            f"on disk, {spam['verdict_peak_python_kib']} KiB peak per verdict"
        )
    outbound = results.get("outbound")
    if outbound:
        out.append("")
        out.append("Outbound: submission -> spool -> workers -> local sink")
        out.append(
            "| delivery threads (per runmail worker) | messages | submitted/s "
            "| delivered/s (end to end) | Postfix delivered/s | vs Postfix "
            "| CPU ms/message Mailhost | CPU ms/message Postfix "
            "| Postfix + OpenDKIM delivered/s | vs Postfix + OpenDKIM "
            "| CPU ms/message Postfix + OpenDKIM "
            "| sink sessions Mailhost / Postfix / Postfix + OpenDKIM "
            "| machine busy Mailhost / Postfix | bench's CPU ms/message |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in outbound:
            threads = r["workers"]
            if r.get("processes"):
                threads = f"{r['processes']} delivery processes x {threads}"
            out.append(
                f"| {threads} | {r['messages']} | {r['submit_per_s']} "
                f"| {r['delivered_per_s']} | {r.get('postfix_delivered_per_s')} "
                f"| {r.get('ratio_to_postfix')} | {r.get('cpu_ms_per_message')} "
                f"| {r.get('postfix_cpu_ms_per_message')} "
                f"| {r.get('postfix_dkim_delivered_per_s')} | {r.get('ratio_to_postfix_dkim')} "
                f"| {r.get('postfix_dkim_cpu_ms_per_message')} "
                f"| {r.get('sink_sessions')} / {r.get('postfix_sink_sessions')}"
                f" / {r.get('postfix_dkim_sink_sessions')} "
                f"| {r.get('machine_busy')} / {r.get('postfix_machine_busy')} "
                f"| {r.get('bench_cpu_ms_per_message')} |"
            )
    drain = results.get("outbound_drain")
    if drain:
        out.append("")
        out.append("Outbound, delivery alone: a spooled backlog -> workers -> local sink")
        out.append(
            "| delivery threads | messages | delivered/s | CPU ms/message delivering"
            " | submitted/s, no delivery running | CPU ms/message submitting |"
        )
        out.append("|---|---|---|---|---|---|")
        for r in drain:
            threads = r["workers"]
            if r.get("processes"):
                threads = f"{r['processes']} processes x {threads}"
            out.append(
                f"| {threads} | {r['messages']} | {r['drain_per_s']}"
                f" | {r.get('drain_cpu_ms_per_message')} | {r.get('submit_alone_per_s')}"
                f" | {r.get('submit_alone_cpu_ms_per_message')} |"
            )
    imap = results.get("imap")
    if imap and imap.get("folders"):
        out.append("")
        out.append("IMAP, milliseconds (median)")
        out.append(
            "| folder | LOGIN+SELECT | SELECT | UID FETCH 1:* (FLAGS) | UID SEARCH UNSEEN "
            "| UID SEARCH SUBJECT |"
        )
        out.append("|---|---|---|---|---|---|")
        for f in imap["folders"]:
            out.append(
                f"| {f['messages']} | {f['login_select_ms']} | {f['select_ms']} "
                f"| {f['uid_fetch_flags_ms']} | {f['uid_search_unseen_ms']} "
                f"| {f['uid_search_subject_ms']} |"
            )
        out.append(f"SELECT largest/smallest: {imap.get('select_ratio_large_to_small')}")
        if imap.get("append"):
            a = imap["append"]
            out.append(f"APPEND: {a['per_second']} messages/s ({a['size']} bytes, one connection)")
    out += imaptest_table(results.get("imaptest"))
    memory = results.get("memory")
    if memory:
        out.append("")
        out.append(
            "Memory: runmail and its child processes together, with idle IMAP connections (IDLE)"
        )
        out.append("| connections | processes | RSS MiB (summed) | PSS MiB | target | met |")
        out.append("|---|---|---|---|---|---|")
        for m in memory:
            target = f"< {m['target_mib']}" if m.get("target_mib") else ""
            failed = f" ({m['failed']} failed)" if m.get("failed") else ""
            out.append(
                f"| {m['connections']}{failed} | {m.get('processes')} | {m['rss_mib']} "
                f"| {m.get('pss_mib')} | {target} | {m.get('met', '')} |"
            )
    webmail = results.get("webmail")
    if webmail:
        out.append("")
        out.append(
            f"Webmail on a {webmail['messages']}-message folder: list {webmail['list_ms']} ms, "
            f"message {webmail['message_ms']} ms, live push (SMTP to the held long-poll "
            f"answering) {webmail.get('push_ms')} ms"
        )
    sieve = results.get("sieve")
    if isinstance(sieve, dict):
        out.append("")
        out.append(
            f"Sieve, a {sieve['rules']}-rule script per delivery, CPU ms per message: "
            f"interpreter {sieve['interpreter_cpu_ms']}, MDA plan {sieve['mda_plan_cpu_ms']}, "
            f"message_accept {sieve['accept_cpu_ms_without_script']} without a script and "
            f"{sieve['accept_cpu_ms_with_script']} with it (+{sieve['accept_cpu_ms_added']})"
        )
    if results.get("errors"):
        out.append("")
        for name, error in results["errors"].items():
            out.append(f"ERROR in {name}: {error}")
    return "\n".join(out)


def imaptest_table(test: dict | str | None) -> list[str]:
    if test is None:
        return []
    if isinstance(test, str):
        return ["", f"IMAP stress (Dovecot's imaptest): {test}"]
    out = []
    for figures, over in ((test, "plain IMAP"), (test.get("tls"), "implicit TLS")):
        if figures:
            out.append("")
            out.append(
                f"IMAP stress: Dovecot's imaptest secs={test['secs']} clients={test['clients']}, "
                f"{test['messages']}-message mbox, {over}, operations/s"
            )
            out += imaptest_rows(figures)
    return out


def imaptest_rows(test: dict) -> list[str]:
    out = []
    mailhost, dovecot = test["mailhost"], test["dovecot"]
    if isinstance(dovecot, str):
        out.append(f"(Dovecot {dovecot})")
        dovecot = {}
    out.append("| command | Mailhost | Dovecot | vs Dovecot |")
    out.append("|---|---|---|---|")
    for name, rate in mailhost["command_ops_per_s"].items():
        theirs = dovecot.get("command_ops_per_s", {}).get(name)
        out.append(f"| {name} | {rate} | {theirs} | {ratio(rate, theirs)} |")
    out.append(
        f"| all | {mailhost['ops_per_s']} | {dovecot.get('ops_per_s')} "
        f"| {test.get('ratio_to_dovecot')} |"
    )
    out.append(f"| errors | {mailhost['errors']} | {dovecot.get('errors')} | |")
    out.append(
        f"| CPU ms per operation | {mailhost.get('cpu_ms_per_op')} "
        f"| {dovecot.get('cpu_ms_per_op')} | |"
    )
    for line in mailhost["first_errors"]:
        out.append(f"Mailhost {line}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, under a minute")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="PostgreSQL (a fresh database on DATABASE_URL's server) and Redis (REDIS_URL's "
        "server, database 8)",
    )
    parser.add_argument(
        "--only",
        type=lambda text: set(text.split(",")),
        default=None,
        help="comma-separated sections to run: smtp, inbound, outbound (1, 4 and 16 delivery"
        " threads), outbound-processes (2 delivery processes of 8), outbound-drain, imap,"
        " webmail, imaptest, memory, sieve, spam",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="runmail's worker processes (MAILHOST_PROCESSES; default: as set in the "
        "environment, else runmail's own default)",
    )
    parser.add_argument(
        "--idle",
        type=lambda text: tuple(int(n) for n in text.split(",")),
        default=None,
        help="the memory section's idle IMAP connection counts, comma-separated (default "
        "1,1000,10000,50000; --quick 1,20,100)",
    )
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "latest.json")
    args = parser.parse_args(argv)
    counts = QUICK if args.quick else FULL
    raise_fd_limit(max(args.idle or counts["idle"]))

    def terminate(signum, frame):  # noqa: ANN001
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    args.json.with_suffix(".runmail.log").unlink(missing_ok=True)
    bench = Bench(args)
    started = time.perf_counter()
    results = bench.run()
    results["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    results["meta"]["command"] = "python bench/run.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    phases = results["meta"].get("phases", {})
    print(
        "phases: " + ", ".join(f"{name} {seconds}s" for name, seconds in phases.items()),
        file=sys.stderr,
    )
    print(table(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nJSON: {args.json}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
