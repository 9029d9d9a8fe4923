"""`manage.py runsmtp` and `manage.py runmail` as real processes: start, mail, SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.mailhost_process import free_port

REPO = Path(__file__).resolve().parents[3]
PORT_NAMES = (
    "SMTP_PORT",
    "SUBMISSION_PORT",
    "SUBMISSIONS_PORT",
    "IMAP_PORT",
    "IMAPS_PORT",
    "POP3_PORT",
    "POP3S_PORT",
    "MANAGESIEVE_PORT",
    "WEB_PORT",
)


@pytest.fixture
def instance(tmp_path):
    """A fresh data dir (SQLite, no Redis) with example.org and alice, on high free ports."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        MAILHOST_DATA_DIR=str(tmp_path / "data"),
        MAILHOST_BIND="127.0.0.1",
        MAILHOST_HOSTNAME="mx.test.example",
        PYTHONUNBUFFERED="1",
    )
    ports = {name: free_port() for name in PORT_NAMES}
    env.update({f"MAILHOST_{name}": str(port) for name, port in ports.items()})

    def manage(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    manage("migrate", "--verbosity", "0")
    manage("adddomain", "example.org")
    manage("addmailbox", "alice@example.org", "--password-stdin", stdin="a-long-secret\n")
    return env, ports, manage, tmp_path


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early: {process.stderr.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"port {port} never opened")


def inbox_count(manage) -> int:
    code = (
        "from mailboxes.models import Message;"
        "print(Message.objects.filter(folder__name='INBOX',"
        " folder__mailbox__local_part='alice').count())"
    )
    return int(manage("shell", "-c", code).split()[-1])


def start(env, args, tmp_path) -> subprocess.Popen:
    log = open(tmp_path / "server.log", "w+")  # noqa: SIM115 - closed by the caller via the process
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        raise AssertionError(f"no clean exit after SIGTERM: {stderr}") from None
    return process.returncode, stderr


def test_runsmtp_takes_mail_and_stops_cleanly_on_sigterm(instance):
    env, ports, manage, tmp_path = instance
    process = start(env, ["runsmtp"], tmp_path)
    try:
        for name in ("SMTP_PORT", "SUBMISSION_PORT", "SUBMISSIONS_PORT"):
            wait_for_port(ports[name], process)
        with smtplib.SMTP("127.0.0.1", ports["SMTP_PORT"], timeout=15) as client:
            client.sendmail(
                "x@remote.example", ["alice@example.org"], b"Subject: via runsmtp\r\n\r\nhi\r\n"
            )
    finally:
        code, stderr = stop(process)
    assert code == 0, stderr
    assert "stopped" in stderr
    assert "smtp accepted client=127.0.0.1 " in stderr  # the one transaction log line
    assert inbox_count(manage) == 1


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_swaks_against_runmail(instance):
    env, ports, manage, tmp_path = instance
    process = start(env, ["runmail", "--no-migrate"], tmp_path)
    try:
        wait_for_port(ports["SUBMISSION_PORT"], process)
        done = subprocess.run(
            [
                "swaks",
                "--server",
                "127.0.0.1",
                "--port",
                str(ports["SUBMISSION_PORT"]),
                "--tls",
                "--auth",
                "PLAIN",
                "--auth-user",
                "alice@example.org",
                "--auth-password",
                "a-long-secret",
                "--from",
                "alice@example.org",
                "--to",
                "alice@example.org",
                "--header",
                "Subject: swaks test",
                "--pipeline",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "<~  250 2.0.0 OK queued as " in done.stdout
    finally:
        code, stderr = stop(process)
    assert code == 0, stderr
    assert inbox_count(manage) == 1
