"""Mailhost under test: `manage.py runmail` as a subprocess on 127.0.0.1, with a fresh data dir.

Every MAILHOST_*_PORT is set to a free high port, the database is SQLite in the data dir (or a
fresh PostgreSQL database with Redis, for --postgres), and provisioning goes through the
documented commands (`adddomain`, `addmailbox --password-stdin`). The process is always
stopped: SIGTERM, then SIGKILL if it has not exited within the grace period.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
PORT_NAMES = (
    "SMTP",
    "SUBMISSION",
    "SUBMISSIONS",
    "IMAP",
    "IMAPS",
    "POP3",
    "POP3S",
    "MANAGESIEVE",
    "WEB",
)


# Variables of the caller's environment that reach runmail.
PASSED_THROUGH = (
    "MAILHOST_PROCESSES",
    "MAILHOST_EVENT_LOOP",
    "MAILHOST_IMAP_WORKER_THREADS",
    "MAILHOST_MALLOC_ARENA_MAX",
)


_HANDED_OUT: set[int] = set()
_RANDOM = random.Random()  # its own: a test that seeds `random` must not make two runs agree


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on every address, below the kernel's ephemeral range.

    A port the kernel hands out for bind(0) is an ephemeral one, and a client's outgoing
    connection may take it between this call and the server's bind: that is how a runmail
    under test once found its ManageSieve port taken. Ports below the range are only ever
    taken by a bind that names them. `host` is where the caller will listen; the check binds
    the wildcard address, so the port is free there and on every loopback address.
    """
    low = min(_ephemeral_low(), 65536)
    span = range(20000, low) if low - 20000 >= 1000 else range(1024, low)
    for _ in range(200):
        port = _RANDOM.choice(span)
        if port in _HANDED_OUT:  # not bound yet by whoever asked first
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0" if ":" not in host else "::", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    with socket.socket() as sock:  # a crowded machine: fall back to what the kernel gives
        sock.bind((host, 0))
        return sock.getsockname()[1]


def terminate(process: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `grace` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def process_tree(pid: int) -> list[int]:
    """`pid` and every process descended from it (worker and delivery processes), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name may hold spaces and parentheses: the fields follow the last ")".
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return tree


def tree_memory(pid: int) -> dict:
    """Memory of `pid`'s process tree: RSS summed over the processes (pages shared between
    forked workers count once per process, so this is the high figure), PSS summed (shared
    pages divided among their sharers: what the tree costs the machine), the count, and each
    process's own figures (`each`: pid, RSS, PSS and USS, its private pages, in bytes)."""
    rss = pss = count = 0
    each = []
    for member in process_tree(pid):
        try:
            own_rss = rss_bytes(member)
            with open(f"/proc/{member}/smaps_rollup") as rollup:
                fields = {
                    line.split(":")[0]: int(line.split()[1]) * 1024
                    for line in rollup
                    if line.endswith("kB\n")
                }
            own_pss = fields["Pss"]
            uss = fields["Private_Clean"] + fields["Private_Dirty"]
        except (OSError, RuntimeError, KeyError):
            continue  # exited between the listing and the reading
        rss += own_rss
        pss += own_pss
        count += 1
        each.append({"pid": member, "rss": own_rss, "pss": own_pss, "uss": uss})
    return {"rss": rss, "pss": pss, "processes": count, "each": each}


def tree_cpu_seconds(pid: int, *, system_only: bool = False) -> float:
    """User plus system CPU seconds used so far by `pid`'s process tree: the processes alive
    now, and those of its children that exited and were waited for (Postfix's and Dovecot's
    short-lived daemons are reaped by their master, which then carries their time).
    `system_only`: the kernel's part alone (system calls, the network stack, the disk)."""
    ticks = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # utime, stime, cutime, cstime: /proc/PID/stat fields 14 to 17.
        if system_only:
            ticks += int(fields[12]) + int(fields[14])
        else:
            ticks += sum(int(field) for field in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


class BackendMeter:
    """The CPU and buffer work of the PostgreSQL server's processes that serve one database
    (its client backends and autovacuum workers: pg_stat_activity's rows of that database),
    from /proc when the server runs on this machine. `start()` then `stop()`: the CPU seconds
    those processes used between the two, and pg_stat_database's counters moved meanwhile.
    A backend that exits in the window loses its part (the bench's connections persist)."""

    COUNTERS = ("xact_commit", "blks_hit", "blks_read", "tup_inserted", "tup_updated")

    def __init__(self, database_url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(database_url, autocommit=True)
        self.ticks: dict[int, int] = {}
        self.counters: dict[str, int] = {}

    def _pids(self) -> list[int]:
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in rows]

    def _counters(self) -> dict[str, int]:
        self.conn.execute("SELECT pg_stat_clear_snapshot()")
        row = self.conn.execute(
            f"SELECT {', '.join(self.COUNTERS)} FROM pg_stat_database"
            " WHERE datname = current_database()"
        ).fetchone()
        return dict(zip(self.COUNTERS, row, strict=True))

    @staticmethod
    def _ticks(pid: int) -> int | None:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return int(fields[11]) + int(fields[12])

    def start(self) -> None:
        self.ticks = {pid: t for pid in self._pids() if (t := self._ticks(pid)) is not None}
        self.counters = self._counters()

    def stop(self) -> tuple[float, dict[str, int]]:
        """(CPU seconds of the database's server processes, counters moved) since start()."""
        used = 0
        for pid in self._pids():
            now = self._ticks(pid)
            if now is not None:
                used += now - self.ticks.get(pid, 0)
        counters = self._counters()
        moved = {name: counters[name] - self.counters[name] for name in self.COUNTERS}
        return used / os.sysconf("SC_CLK_TCK"), moved

    def close(self) -> None:
        self.conn.close()


class PostgresDatabase:
    """A fresh database on the server DATABASE_URL names, dropped at the end."""

    def __init__(self, server_url: str, name: str) -> None:
        parts = urlsplit(server_url)
        self.name = name
        self.admin_url = urlunsplit(parts._replace(path="/postgres"))
        self.url = urlunsplit(parts._replace(path=f"/{name}"))

    def exists(self) -> bool:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.name])
            return found.fetchone() is not None

    def create(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        except Exception as exc:  # best effort at the end of a run
            print(f"warning: could not drop {self.name}: {exc}", file=sys.stderr)


class Mailhost:
    def __init__(
        self,
        data_dir: Path,
        *,
        database_url: str | None = None,
        redis_url: str | None = None,
        extra_env: dict[str, str] | None = None,
        log_name: str = "runmail.log",
        wrapper: list[str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.wrapper = wrapper or []  # a command runmail runs under (valgrind's, for one)
        self.ports = {name.lower(): free_port() for name in PORT_NAMES}
        # The caller's settings stay out, except the number of worker processes, which the
        # bench passes through (run.py --processes, else MAILHOST_PROCESSES as set).
        self.env = {
            key: value
            for key, value in os.environ.items()
            if (not key.startswith("MAILHOST_") or key in PASSED_THROUGH)
            and key not in {"DATABASE_URL", "REDIS_URL"}
        }
        self.env.update(
            {
                "MAILHOST_DATA_DIR": str(data_dir),
                "MAILHOST_BIND": "127.0.0.1",
                "MAILHOST_HOSTNAME": "mx.bench.test",
                "MAILHOST_SHUTDOWN_GRACE": "2",
                "PYTHONUNBUFFERED": "1",
            }
        )
        for name in PORT_NAMES:
            self.env[f"MAILHOST_{name}_PORT"] = str(self.ports[name.lower()])
        if database_url:
            self.env["DATABASE_URL"] = database_url
        if redis_url:
            self.env["REDIS_URL"] = redis_url
        self.env.update(extra_env or {})
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir / log_name
        self._ready = threading.Event()
        self._log_thread: threading.Thread | None = None

    # --- commands ---------------------------------------------------------------------

    def manage(self, *args: str, stdin: str | None = None, timeout: float = 300) -> str:
        result = subprocess.run(
            [sys.executable, str(REPO / "manage.py"), *args],
            cwd=REPO,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed: {result.stderr[-2000:]}")
        return result.stdout

    def tool(self, *args: str, timeout: float = 600) -> str:
        """bench/dbtool.py in Mailhost's environment (same database, same blob store)."""
        result = subprocess.run(
            [sys.executable, str(REPO / "bench" / "dbtool.py"), *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"dbtool {' '.join(args)} failed: {result.stderr[-2000:]}")
        return result.stdout.strip()

    def tool_process(self, *args: str) -> subprocess.Popen:
        """bench/dbtool.py started with pipes (text), for a caller that reads it as it goes."""
        return subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "dbtool.py"), *args],
            cwd=REPO,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def setup(self, *args: str, password: str) -> None:
        """`dbtool.py setup ARGS` (the password on its standard input) run to its end: the
        schema migrated and the mailboxes and folders made; SystemExit when it failed."""
        tool = self.tool_process("setup", *args)
        tool.stdin.write(password + "\n")
        tool.stdin.close()
        if tool.stdout.readline().strip() != "migrated" or tool.wait(600) != 0:
            raise SystemExit(f"dbtool setup: {tool.stderr.read()[-2000:]}")

    def count_messages(self, local_part: str, folder: str) -> int:
        """Messages in a folder, straight from the database (no Django start-up per call)."""
        query = (
            "SELECT COUNT(*) FROM mailboxes_message m"
            " JOIN mailboxes_folder f ON m.folder_id = f.id"
            " JOIN mailboxes_mailbox b ON f.mailbox_id = b.id"
            " WHERE b.local_key = {p} AND f.name = {p}"
        )
        url = self.env.get("DATABASE_URL")
        if url:
            import psycopg

            with psycopg.connect(url) as conn:
                return conn.execute(query.format(p="%s"), (local_part, folder)).fetchone()[0]
        import sqlite3

        path = self.data_dir / "mailhost.sqlite3"
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            return conn.execute(query.format(p="?"), (local_part, folder)).fetchone()[0]

    # --- process ----------------------------------------------------------------------

    def start(self, timeout: float = 120) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._ready.clear()
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed by the reader thread
        self.process = subprocess.Popen(
            [*self.wrapper, sys.executable, str(REPO / "manage.py"), "runmail", "--no-migrate"],
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.PIPE,
        )
        self._log_thread = threading.Thread(target=self._pump, args=(log,), daemon=True)
        self._log_thread.start()
        deadline = time.monotonic() + timeout
        while not (self._ready.wait(0.1) or all(map(self.listening, ("smtp", "imap", "web")))):
            if self.process.poll() is not None:
                raise RuntimeError(f"runmail exited early:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"runmail not ready after {timeout}s:\n{self.log_tail()}")

    def _pump(self, log) -> None:  # noqa: ANN001
        assert self.process is not None and self.process.stderr is not None
        with log:
            for line in self.process.stderr:
                log.write(line)
                if not self._ready.is_set() and line.rstrip().endswith(b" ready"):
                    log.flush()
                    self._ready.set()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def listening(self, name: str) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.ports[name]), timeout=2):
                return True
        except OSError:
            return False

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 15) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        terminate(process, grace)
        if self._log_thread:
            self._log_thread.join(5)
