"""`manage.py backup` under SMTP load, then `manage.py restore` into a fresh data directory:
every message acknowledged (250) before the backup began is in the restored store, with its
bytes (verifystore passes). SQLite by default; PostgreSQL when DATABASE_URL is set (needs
pg_dump/pg_restore)."""

from __future__ import annotations

import contextlib
import os
import shutil
import smtplib
import threading
import time
import uuid
from pathlib import Path

import pytest

from bench.mailhost_process import Mailhost, PostgresDatabase

COUNT_SCRIPT = (
    "from mailboxes.models import Message\n"
    "print('\\n'.join(Message.objects.values_list('message_id', flat=True)))\n"
)


def _message(token: str, size: int) -> bytes:
    filler = ("x" * 70 + "\r\n") * (size // 72)
    return (
        f"From: <x@remote.test>\r\nTo: <alice@example.org>\r\nSubject: backup {token}\r\n"
        f"Message-ID: <{token}@remote.test>\r\n\r\n{filler}"
    ).encode()


class Sender:
    """SMTP senders recording each Message-ID the server acknowledged, in order."""

    def __init__(self, port: int, threads: int = 3) -> None:
        self.port = port
        self.stop = threading.Event()
        self.acked: list[str] = []
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._send, args=(i,), daemon=True) for i in range(threads)
        ]

    def acked_now(self) -> set[str]:
        with self.lock:
            return set(self.acked)

    def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked_now()) < count:
            assert time.monotonic() < deadline, f"only {len(self.acked)} messages acknowledged"
            time.sleep(0.05)

    def _send(self, index: int) -> None:
        # Half the messages above MAILHOST_BLOB_INLINE_MAX (64 KiB), so blob files are backed
        # up as well as inline blobs.
        sizes = [500, 100_000]
        n = index
        while not self.stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
                    while not self.stop.is_set():
                        token = uuid.uuid4().hex
                        n += 1
                        client.sendmail(
                            "x@remote.test", ["alice@example.org"], _message(token, sizes[n % 2])
                        )
                        with self.lock:
                            self.acked.append(f"<{token}@remote.test>")
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)

    def __enter__(self) -> Sender:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


@contextlib.contextmanager
def _database(suffix: str):
    """A fresh database URL (PostgreSQL) or None (SQLite in the data directory)."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        yield None
        return
    if not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        pytest.skip("pg_dump/pg_restore not installed (Debian: postgresql-client)")
    database = PostgresDatabase(url, f"mh_backup_{suffix}_{os.getpid()}")
    database.create()
    try:
        yield database.url
    finally:
        database.drop()


def test_backup_under_smtp_load_restores_everything_acknowledged_before(tmp_path: Path):
    backup_dir = tmp_path / "backup"
    with _database("src") as source_url, _database("dst") as restored_url:
        mailhost = Mailhost(tmp_path / "data", database_url=source_url)
        mailhost.data_dir.mkdir(parents=True)
        mailhost.manage("migrate", "-v0")
        mailhost.manage("adddomain", "example.org")
        mailhost.manage(
            "addmailbox", "alice@example.org", "--password-stdin", stdin="a-long-secret\n"
        )
        mailhost.start()
        try:
            with Sender(mailhost.ports["smtp"]) as sender:
                sender.wait_for(40)
                before = sender.acked_now()
                output = mailhost.manage("backup", str(backup_dir))
                after_backup = len(sender.acked_now())
                sender.wait_for(after_backup + 20)  # the load goes on after the backup
        finally:
            mailhost.stop()
        assert after_backup > len(before), "no message was acknowledged during the backup"
        assert "database" in output and "blobs" in output
        assert any((backup_dir / "blobs").rglob("*")), "no blob file in the backup"

        restored = Mailhost(tmp_path / "restored", database_url=restored_url)
        restored.data_dir.mkdir(parents=True)
        result = restored.manage("restore", str(backup_dir))
        assert "store ok" in result
        assert "store ok" in restored.manage("verifystore")
        message_ids = restored.manage("shell", "-v0", "-c", COUNT_SCRIPT).split()
        missing = before - set(message_ids)
        assert not missing, f"{len(missing)} acknowledged message(s) lost, e.g. {min(missing)}"
        assert len(message_ids) == len(set(message_ids))
        # The restored store is the one verifystore checked: not the source's blob directory.
        assert (restored.data_dir / "blobs").is_dir()
