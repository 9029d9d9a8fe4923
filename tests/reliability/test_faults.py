"""Queue and storage faults against `runmail` as a subprocess: nothing acknowledged is lost.

- Redis refuses connections while outbound mail is accepted: SMTP still answers 250 (the
  spool row is the truth), and once Redis is back (restarted empty) the sweeper delivers.
  (Redis flushed between attempts is tests/delivery/test_workers.py.)
- PostgreSQL connections terminated (pg_terminate_backend) during a stream of SMTP
  deliveries and IMAP APPENDs: clients get 4xx / NO or success, never a 5xx or BAD; every
  acknowledged message is stored once with its bytes, nothing half-stored, and the server
  works afterwards. Runs only when DATABASE_URL is PostgreSQL.
- Disk full (the data dir on a small tmpfs): SMTP answers 452 4.3.1, IMAP APPEND NO
  [OVERQUOTA] "Not enough disk space" (as Dovecot answers), stored mail stays readable, and
  delivery works again once space returns. Skipped when tmpfs cannot be mounted (not root, no CAP_SYS_ADMIN).

The PostgreSQL test runs MAILHOST_FAULT_SECONDS (default 8) of load; longer:

    MAILHOST_FAULT_SECONDS=120 DATABASE_URL=postgres://... .venv/bin/python -m pytest \\
        tests/reliability/test_faults.py
"""

from __future__ import annotations

import contextlib
import imaplib
import json
import os
import re
import shutil
import smtplib
import ssl
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from bench.mailhost_process import Mailhost, PostgresDatabase, free_port
from tests.support.smtp import RelaySink

FAULT_SECONDS = float(os.environ.get("MAILHOST_FAULT_SECONDS", "8"))
TOKEN = re.compile(rb"fault-token-([0-9a-f]{32})")

STORED_SCRIPT = """
import json
from mailboxes.models import Message
from mailboxes.selectors import blob_read
rows = []
for m in Message.objects.select_related("folder__mailbox", "blob").order_by("id"):
    try:
        raw = blob_read(m.blob).decode("latin-1")
    except OSError:
        raw = None
    rows.append({"mailbox": m.folder.mailbox.local_part, "folder": m.folder.name,
                 "uid": m.uid, "size": m.size, "raw": raw})
print(json.dumps(rows))
"""


def tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def message(to: str, size: int = 2000) -> tuple[str, bytes]:
    token = uuid.uuid4().hex
    filler = ("z" * 70 + "\r\n") * (size // 72)
    raw = (
        f"From: x@remote.test\r\nTo: {to}\r\nSubject: fault-token-{token}\r\n"
        f"Message-ID: <{token}@remote.test>\r\n\r\nfault-token-{token}\r\n{filler}"
    ).encode()
    return token, raw


class Sink(RelaySink):
    def tokens(self) -> set[str]:
        return {m[1].decode() for raw in self.received if (m := TOKEN.search(raw))}


def make_mailhost(data_dir: Path, log_dir: Path, *, database_url=None, redis_url=None, env=None):
    mailhost = Mailhost(
        data_dir,
        database_url=database_url,
        redis_url=redis_url,
        extra_env={"MAILHOST_SHUTDOWN_GRACE": "1", **(env or {})},
    )
    mailhost.log_path = log_dir / "runmail.log"  # outside a data dir that may fill up
    data_dir.mkdir(parents=True, exist_ok=True)
    mailhost.manage("migrate", "-v0")
    mailhost.manage("adddomain", "example.org")
    for address in ("alice@example.org", "bob@example.org"):
        mailhost.manage("addmailbox", address, "--password-stdin", stdin="a-long-secret\n")
    mailhost.manage("addalias", "fwd@example.org", "r@remote.example")
    return mailhost


def stored(mailhost: Mailhost) -> list[dict]:
    return json.loads(mailhost.manage("shell", "-v0", "-c", STORED_SCRIPT).strip().splitlines()[-1])


@pytest.fixture
def database():
    """A fresh PostgreSQL database when DATABASE_URL names one, else None (SQLite)."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        yield None
        return
    db = PostgresDatabase(url, f"mh_fault_{os.getpid()}_{uuid.uuid4().hex[:6]}")
    db.create()
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture
def sink():
    sink = Sink()
    sink.controller.start()
    yield sink
    sink.controller.stop()


class RedisServer:
    """A private redis-server on a free port, without persistence (a restart is a flush)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        import redis

        while time.monotonic() < deadline:
            with contextlib.suppress(redis.exceptions.ConnectionError):
                if redis.Redis(port=self.port).ping():
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process:
            self.process.kill()
            self.process.wait(10)
            self.process = None


def wait_for(predicate, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.2)


# --- Redis ------------------------------------------------------------------------------


@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed")
def test_redis_refusing_at_enqueue_loses_nothing(tmp_path, database, sink):
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    mailhost = make_mailhost(
        tmp_path / "data",
        tmp_path,
        database_url=database.url if database else None,
        redis_url=f"redis://127.0.0.1:{redis_server.port}/0",
        env={
            "MAILHOST_RELAYHOST": f"127.0.0.1:{sink.port}",
            "MAILHOST_SWEEP_INTERVAL": "1",
            "MAILHOST_RETRY_SCHEDULE": "1,1,1",
        },
    )
    try:
        mailhost.start()
        with smtplib.SMTP("127.0.0.1", mailhost.ports["smtp"], timeout=30) as client:
            token, raw = message("fwd@example.org")
            client.sendmail("x@remote.test", ["fwd@example.org"], raw)
            wait_for(lambda: token in sink.tokens(), 30, "not delivered with Redis up")

            redis_server.stop()  # connection refused from now on
            waiting = []
            for _ in range(3):
                token, raw = message("fwd@example.org")
                started = time.monotonic()
                refused = client.sendmail("x@remote.test", ["fwd@example.org"], raw)
                assert refused == {}  # 250: accepted although the queue is unreachable
                assert time.monotonic() - started < 10
                waiting.append(token)
        time.sleep(2)
        assert not set(waiting) & sink.tokens()  # nothing could run without Redis

        redis_server.start()  # back, and empty: every job it held is gone
        wait_for(
            lambda: set(waiting) <= sink.tokens(),
            60,
            f"not delivered after Redis came back:\n{mailhost.log_tail(40)}",
        )
        assert mailhost.process.poll() is None
    finally:
        mailhost.stop()
        redis_server.stop()


# --- PostgreSQL connections dropped ----------------------------------------------------


class Load:
    """SMTP senders and an IMAP appender recording every reply."""

    def __init__(self, mailhost: Mailhost) -> None:
        self.mailhost = mailhost
        self.stop = threading.Event()
        self.sent: dict[str, bytes] = {}
        self.acked: dict[str, str] = {}  # token -> "alice" (SMTP) | "bob" (APPEND)
        self.replies: list[str] = []
        self.lock = threading.Lock()

    def smtp(self) -> None:
        while not self.stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", self.mailhost.ports["smtp"], timeout=30) as c:
                    while not self.stop.is_set():
                        token, raw = message("alice@example.org")
                        with self.lock:
                            self.sent[token] = raw
                        try:
                            c.sendmail("x@remote.test", ["alice@example.org"], raw)
                        except smtplib.SMTPResponseException as exc:
                            with self.lock:
                                self.replies.append(f"smtp {exc.smtp_code}")
                            c.rset()
                            continue
                        except smtplib.SMTPRecipientsRefused as exc:
                            code = next(iter(exc.recipients.values()))[0]
                            with self.lock:
                                self.replies.append(f"smtp {code}")
                            continue
                        with self.lock:
                            self.acked[token] = "alice"
                            self.replies.append("smtp 250")
            except (OSError, smtplib.SMTPServerDisconnected) as exc:
                with self.lock:
                    self.replies.append(f"smtp disconnect {type(exc).__name__}")
                time.sleep(0.1)

    def imap(self) -> None:
        while not self.stop.is_set():
            try:
                client = imaplib.IMAP4("127.0.0.1", self.mailhost.ports["imap"], timeout=30)
                client.starttls(tls_context())
                client.login("bob@example.org", "a-long-secret")
                while not self.stop.is_set():
                    token, raw = message("bob@example.org", 1500)
                    with self.lock:
                        self.sent[token] = raw
                    try:
                        status, data = client.append("INBOX", None, None, raw)
                    except imaplib.IMAP4.error as exc:  # NO (BAD raises abort/error too)
                        with self.lock:
                            self.replies.append(f"imap {str(exc)[:60]}")
                        if "BAD" in str(exc):
                            raise
                        continue
                    with self.lock:
                        if status == "OK":
                            self.acked[token] = "bob"
                        self.replies.append(f"imap {status}")
                        if status == "BAD":
                            raise AssertionError(f"APPEND got BAD: {data}")
                client.logout()
            except (OSError, imaplib.IMAP4.abort, EOFError) as exc:
                with self.lock:
                    self.replies.append(f"imap disconnect {type(exc).__name__}")
                time.sleep(0.1)


def terminate_backends(database: PostgresDatabase, stop: threading.Event, count: list) -> None:
    import psycopg

    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        while not stop.is_set():
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (database.name,),
            ).fetchall()
            count[0] += len(rows)
            stop.wait(0.25)


@pytest.mark.skipif(
    not (os.environ.get("DATABASE_URL") or "").startswith("postgres"),
    reason="needs DATABASE_URL=postgres://...",
)
def test_postgres_connections_terminated_mid_transaction(tmp_path, database):
    mailhost = make_mailhost(tmp_path / "data", tmp_path, database_url=database.url)
    mailhost.start()
    load = Load(mailhost)
    threads = [threading.Thread(target=load.smtp, daemon=True) for _ in range(2)]
    threads.append(threading.Thread(target=load.imap, daemon=True))
    killer_stop = threading.Event()
    terminated = [0]
    killer = threading.Thread(
        target=terminate_backends, args=(database, killer_stop, terminated), daemon=True
    )
    try:
        for thread in threads:
            thread.start()
        time.sleep(1)
        killer.start()
        time.sleep(FAULT_SECONDS)
        killer_stop.set()
        killer.join(10)
        time.sleep(1)
        load.stop.set()
        for thread in threads:
            thread.join(40)

        # The server works afterwards, on every path that was hit.
        with smtplib.SMTP("127.0.0.1", mailhost.ports["smtp"], timeout=30) as client:
            token, raw = message("alice@example.org")
            load.sent[token] = raw
            client.sendmail("x@remote.test", ["alice@example.org"], raw)
            load.acked[token] = "alice"
        client = imaplib.IMAP4_SSL(
            "127.0.0.1", mailhost.ports["imaps"], ssl_context=tls_context(), timeout=30
        )
        client.login("bob@example.org", "a-long-secret")
        token, raw = message("bob@example.org")
        load.sent[token] = raw
        assert client.append("INBOX", None, None, raw)[0] == "OK"
        load.acked[token] = "bob"
        client.logout()
        assert mailhost.process.poll() is None
    finally:
        killer_stop.set()
        load.stop.set()
        mailhost.stop()

    assert terminated[0] > 0, "no backend was terminated"
    kinds = {}
    for reply in load.replies:
        kinds[reply] = kinds.get(reply, 0) + 1
    print(f"terminated={terminated[0]} replies={kinds}")
    bad = [r for r in load.replies if re.match(r"smtp 5", r) or "BAD" in r]
    assert not bad, kinds
    assert kinds.get("smtp 250", 0) > 10 and kinds.get("imap OK", 0) > 5, kinds

    rows = stored(mailhost)
    seen: dict[str, int] = {}
    for row in rows:
        assert row["raw"] is not None, f"row without its bytes: {row}"
        raw = row["raw"].encode("latin-1")
        assert len(raw) == row["size"]
        token = TOKEN.search(raw)[1].decode()
        original = load.sent[token]
        assert raw == original if row["mailbox"] == "bob" else raw.endswith(original)
        seen[token] = seen.get(token, 0) + 1
    for token, mailbox in load.acked.items():
        assert seen.get(token) == 1, (
            f"acknowledged {mailbox} message {token} stored {seen.get(token)}x"
        )
    assert all(count == 1 for count in seen.values())


# --- Disk full ---------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path) -> Path:
    """Write a file until the filesystem is full (unbuffered: every byte that fits is kept)."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def test_disk_full_gives_452_and_no_then_recovers(tmp_path, small_disk, database):
    mailhost = make_mailhost(
        small_disk / "data", tmp_path, database_url=database.url if database else None
    )
    mailhost.start()
    try:
        first_token, first = message("alice@example.org")
        with smtplib.SMTP("127.0.0.1", mailhost.ports["smtp"], timeout=30) as client:
            client.sendmail("x@remote.test", ["alice@example.org"], first)

        filler = fill(small_disk)
        assert os.statvfs(small_disk).f_bavail == 0

        full_token, full = message("alice@example.org", 200_000)
        with smtplib.SMTP("127.0.0.1", mailhost.ports["smtp"], timeout=30) as client:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                client.sendmail("x@remote.test", ["alice@example.org"], full)
            assert refused.value.smtp_code == 452
            assert refused.value.smtp_error.startswith(b"4.3.1 ")
            # The session survives the refusal.
            assert client.noop()[0] == 250

        imap = imaplib.IMAP4_SSL(
            "127.0.0.1", mailhost.ports["imaps"], ssl_context=tls_context(), timeout=30
        )
        imap.login("bob@example.org", "a-long-secret")
        append_token, appended = message("bob@example.org", 200_000)
        status, data = imap.append("INBOX", None, None, appended)
        assert status == "NO", data
        assert data[0] == b"[OVERQUOTA] Not enough disk space", data
        # What was stored before stays readable while the disk is full.
        imap.select("INBOX")
        imap.logout()
        alice = imaplib.IMAP4_SSL(
            "127.0.0.1", mailhost.ports["imaps"], ssl_context=tls_context(), timeout=30
        )
        alice.login("alice@example.org", "a-long-secret")
        alice.select("INBOX", readonly=True)
        status, data = alice.fetch("1:*", "(BODY.PEEK[])")
        assert status == "OK" and first in data[0][1], (status, data)
        alice.logout()

        filler.unlink()  # space returns
        again_token, again = message("alice@example.org", 200_000)
        with smtplib.SMTP("127.0.0.1", mailhost.ports["smtp"], timeout=30) as client:
            client.sendmail("x@remote.test", ["alice@example.org"], again)
        imap = imaplib.IMAP4_SSL(
            "127.0.0.1", mailhost.ports["imaps"], ssl_context=tls_context(), timeout=30
        )
        imap.login("bob@example.org", "a-long-secret")
        assert imap.append("INBOX", None, None, appended)[0] == "OK"
        imap.logout()
    finally:
        mailhost.stop()

    rows = stored(mailhost)
    tokens = {}
    for row in rows:
        assert row["raw"] is not None, row
        raw = row["raw"].encode("latin-1")
        assert len(raw) == row["size"]
        tokens.setdefault(TOKEN.search(raw)[1].decode(), []).append(row["mailbox"])
    assert tokens == {first_token: ["alice"], again_token: ["alice"], append_token: ["bob"]}
    assert full_token not in tokens
    # No blob file is left behind by the refused writes.
    blobs = [p for p in (small_disk / "data").rglob("*") if p.is_file() and len(p.name) == 32]
    assert len(blobs) <= len(rows)
