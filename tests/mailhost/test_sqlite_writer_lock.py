"""SQLite writers of different processes queue on the writer lock (mailhost/sqlite3/base.py)
instead of sleeping in SQLite's busy handler: a writer that meets another process's open
transaction waits for its end however long it is, where SQLite's busy timeout alone would have
given up; and a forked worker takes the lock on a file of its own, not its parent's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.backend_neutral  # the lock is SQLite's: runs on its own data dir

SETUP = """
import os, sys, time
import django
django.setup()
from django.db import connection, transaction
assert connection.vendor == "sqlite", connection.vendor
with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE IF NOT EXISTS lock_test (who TEXT)")

def write(who):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("INSERT INTO lock_test VALUES (%s)", [who])

def impatient():
    # SQLite alone would give up after 0.1 s of another process's transaction.
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout=100")
"""

# Holds a write transaction until told to end it.
HOLDER = (
    SETUP
    + """
with transaction.atomic():
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO lock_test VALUES ('holder')")
    print("holding", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""
)

WRITER = (
    SETUP
    + """
impatient()
print("ready", flush=True)
sys.stdin.readline()
write("writer")
print("written", flush=True)
"""
)

# A worker forked after its parent wrote (the lock file open), as runmail's supervisor forks
# its workers: the parent holds a transaction for a second while the child writes.
FORKED = (
    SETUP
    + """
write("parent")
connection.close()
ready_r, ready_w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(ready_w)
    impatient()
    os.read(ready_r, 1)
    try:
        write("child")
    except Exception as exc:
        print(f"child failed: {exc}", flush=True)
        os._exit(1)
    os._exit(0)
os.close(ready_r)
with transaction.atomic():
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO lock_test VALUES ('parent holding')")
    os.write(ready_w, b"x")
    time.sleep(1.0)
_, status = os.waitpid(pid, 0)
with connection.cursor() as cursor:
    cursor.execute("SELECT who FROM lock_test ORDER BY rowid")
    print(os.waitstatus_to_exitcode(status), [row[0] for row in cursor.fetchall()], flush=True)
"""
)


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="mailhost.settings",
        MAILHOST_DATA_DIR=str(data_dir),
        MAILHOST_HOSTNAME="mx.test.example",
    )
    return env


def _start(script: str, data_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=_env(data_dir),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _expect(process: subprocess.Popen, line: str) -> None:
    got = process.stdout.readline().strip()
    if got != line:
        process.kill()
        raise AssertionError(f"expected {line!r}, got {got!r}: {process.stderr.read()}")


def test_a_writer_waits_out_another_process_transaction_longer_than_the_busy_timeout(tmp_path):
    writer = _start(WRITER, tmp_path)
    holder = None
    try:
        _expect(writer, "ready")
        holder = _start(HOLDER, tmp_path)
        _expect(holder, "holding")
        writer.stdin.write("go\n")
        writer.stdin.flush()
        # Five times the writer's busy timeout: it is still waiting, not failed.
        with pytest.raises(subprocess.TimeoutExpired):
            writer.wait(0.5)
        holder.stdin.write("release\n")
        holder.stdin.flush()
        _expect(holder, "released")
        _expect(writer, "written")
        assert writer.wait(30) == 0, writer.stderr.read()
        assert holder.wait(30) == 0, holder.stderr.read()
    finally:
        for process in (writer, holder):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


def test_a_forked_worker_takes_the_lock_on_a_file_of_its_own(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", FORKED],
        cwd=REPO,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # The child waited for the parent's commit (it would have failed on SQLite's lock after
    # 0.1 s with the parent's open file's lock, which the parent holds), and wrote after it.
    assert result.stdout.splitlines()[-1] == "0 ['parent', 'parent holding', 'child']"
