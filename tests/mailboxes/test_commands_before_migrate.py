"""Provisioning from a shell before the database has its tables (a fresh data dir, or a shell
whose MAILHOST_DATA_DIR / DATABASE_URL are not the server's): one line saying what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

COMMANDS = [
    (("adddomain", "example.org"), ""),
    (("addmailbox", "alice@example.org", "--password-stdin"), "a long password 42\n"),
    (("addalias", "postmaster@example.org", "alice@example.org"), ""),
    (("collectblobs",), ""),
    (("createsuperuser", "--noinput", "--username", "admin", "--email", "a@example.org"), ""),
    (("changepassword", "admin"), ""),
    # Listeners and workers too: every session would fail on its first query.
    (("runsmtp",), ""),
    (("runimap",), ""),
    (("runpop3",), ""),
    (("runmanagesieve",), ""),
    (("runworker",), ""),
    (("runmail", "--no-migrate"), ""),
]


def test_every_command_on_the_database_says_to_migrate_first(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL"}  # a fresh SQLite file in a fresh data dir
    }
    env["MAILHOST_DATA_DIR"] = str(tmp_path / "fresh")
    env["MAILHOST_HOSTNAME"] = "mx.test.example"
    env["MAILHOST_BIND"] = "127.0.0.1"
    for port in (
        "SMTP",
        "SUBMISSION",
        "SUBMISSIONS",
        "IMAP",
        "IMAPS",
        "POP3",
        "POP3S",
        "MANAGESIEVE",
        "WEB",
    ):
        env[f"MAILHOST_{port}_PORT"] = "0"

    def run(case):
        args, stdin = case
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            input=stdin,
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(run, COMMANDS))
    sqlite_file = tmp_path / "fresh" / "mailhost.sqlite3"
    for (args, _), result in zip(COMMANDS, results):
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (args, lines)
        assert lines[0].startswith("mailhost: the database has no tables yet: run `manage.py"), (
            args,
            lines,
        )
        assert "MAILHOST_DATA_DIR and DATABASE_URL" in lines[0]
        assert str(sqlite_file) in lines[0], lines  # which database this shell used


def test_an_unreachable_database_is_one_line_naming_it(tmp_path):
    env = {**os.environ, "MAILHOST_DATA_DIR": str(tmp_path)}
    env["DATABASE_URL"] = "postgres://nobody@127.0.0.1:1/mailhost"  # nothing listens on port 1
    result = subprocess.run(
        [sys.executable, "manage.py", "adddomain", "example.org"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, lines
    assert lines[0].startswith("mailhost: cannot open the database 'mailhost' on 127.0.0.1:1:")
