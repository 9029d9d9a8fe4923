"""This server's name: a machine whose FQDN is "localhost" (or has no dot) must not greet,
EHLO or bounce under that name unless MAILHOST_HOSTNAME says so."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mailhost.config import server_name_refusal

REPO = Path(__file__).resolve().parents[2]

# manage.py with the resolver's answer for this machine's name replaced (socket.getfqdn).
WITH_FQDN = (
    "import runpy, socket, sys; fqdn = sys.argv.pop(1);"
    " socket.getfqdn = lambda name='': fqdn;"
    " sys.argv[0] = 'manage.py'; runpy.run_path('manage.py', run_name='__main__')"
)

PORTS = (
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


def manage(fqdn: str, *args: str, data_dir: Path, **env: str) -> subprocess.Popen:
    drop = {"MAILHOST_HOSTNAME", "DATABASE_URL", "REDIS_URL"}  # SQLite in data_dir
    environ = {k: v for k, v in os.environ.items() if k not in drop}
    environ.update(
        MAILHOST_DATA_DIR=str(data_dir),
        MAILHOST_BIND="127.0.0.1",
        **{f"MAILHOST_{port}_PORT": "0" for port in PORTS},
        **env,
    )
    return subprocess.Popen(
        [sys.executable, "-c", WITH_FQDN, fqdn, *args],
        env=environ,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    "hostname, from_environment, refused",
    [
        ("localhost", False, True),
        ("localhost.localdomain", False, True),
        ("vm", False, True),
        ("mail.example.org", False, False),
        ("localhost", True, False),  # the operator said so
        ("vm", True, False),
    ],
)
def test_server_name_refusal(hostname, from_environment, refused):
    refusal = server_name_refusal(hostname, from_environment=from_environment)
    assert (refusal is not None) is refused
    if refused:
        assert "MAILHOST_HOSTNAME" in refusal and repr(hostname) in refusal


COMMANDS = ["runmail", "runsmtp", "runimap", "runpop3", "runworker", "rqworker"]


def test_every_command_that_sends_or_greets_refuses_localhost(tmp_path):
    def outcome(command: str) -> subprocess.CompletedProcess:
        process = manage("localhost", command, data_dir=tmp_path / command)
        stdout, stderr = process.communicate(timeout=120)
        return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(outcome, COMMANDS))
    for result in results:
        assert result.returncode != 0, (result.args, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (result.args, lines)
        assert lines[0].startswith("mailhost: configuration error: MAILHOST_HOSTNAME is unset")
        assert "'localhost' is not a fully qualified domain name" in lines[0]


def test_a_machine_name_without_a_dot_is_refused_and_an_explicit_name_starts(tmp_path):
    refused = manage("vm", "runsmtp", data_dir=tmp_path)
    _, stderr = refused.communicate(timeout=120)
    assert refused.returncode != 0 and "MAILHOST_HOSTNAME" in stderr, stderr

    migrate = manage("localhost", "migrate", "--verbosity", "0", data_dir=tmp_path)
    assert migrate.wait(120) == 0, migrate.stderr.read()
    started = manage("localhost", "runsmtp", data_dir=tmp_path, MAILHOST_HOSTNAME="localhost")
    try:
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:
            line = started.stderr.readline()
            if not line:
                break
            lines.append(line)
            if line.rstrip().endswith(" ready"):
                break
        assert lines and lines[-1].rstrip().endswith(" ready"), lines
        # The generated certificate is announced at every start while it is in use.
        assert any("WARNING mailhost.tls tls SELF-SIGNED certificate" in x for x in lines), lines
    finally:
        started.send_signal(signal.SIGTERM)
        started.communicate(timeout=60)
