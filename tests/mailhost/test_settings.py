"""Settings come from the environment; a bad value stops start-up with a line naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from mailhost import config

REPO = Path(__file__).resolve().parents[2]


def check(tmp_path, **overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MAILHOST_DATA_DIR": str(tmp_path), **overrides}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


BAD = [
    ({"MAILHOST_SMTP_PORT": "abc"}, "MAILHOST_SMTP_PORT='abc' is not a whole number"),
    ({"MAILHOST_IMAP_PORT": "70000"}, "MAILHOST_IMAP_PORT=70000 must be between 0 and 65535"),
    ({"MAILHOST_DEBUG": "maybe"}, "MAILHOST_DEBUG='maybe' is not a boolean"),
    ({"MAILHOST_DNS_SERVERS": "127.0.0.1:x"}, "MAILHOST_DNS_SERVERS: port 'x' is not a number"),
    ({"MAILHOST_TLS_CERT": "cert.pem"}, "MAILHOST_TLS_CERT and MAILHOST_TLS_KEY"),
    ({"DATABASE_URL": "nosuchdb://x/y"}, "DATABASE_URL='nosuchdb://x/y'"),
    (
        {"MAILHOST_TRUSTED_PROXIES": "10.0.0.1, proxy.lan"},
        "MAILHOST_TRUSTED_PROXIES='10.0.0.1, proxy.lan': 'proxy.lan' is not an IP address",
    ),
]


def test_manage_check_passes_with_defaults_and_fails_on_bad_values(tmp_path):
    cases = [({}, None), *BAD]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda case: check(tmp_path, **case[0]), cases))
    ok = results[0]
    assert ok.returncode == 0, ok.stderr
    for (env, text), result in zip(BAD, results[1:]):
        assert result.returncode == 1, (env, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert lines == [f"mailhost: configuration error: {lines[0].split(': ', 2)[2]}"], lines
        assert text in lines[0], (env, lines)
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "value, expected",
    [("", 7), ("  ", 7), ("0", 0), (" 25 ", 25), ("65535", 65535)],
)
def test_env_port(monkeypatch, value, expected):
    monkeypatch.setenv("X_PORT", value)
    assert config.env_port("X_PORT", 7) == expected


@pytest.mark.parametrize("value", ["abc", "-1", "65536", "2.5"])
def test_env_port_refuses(monkeypatch, value):
    monkeypatch.setenv("X_PORT", value)
    with pytest.raises(ImproperlyConfigured, match="X_PORT"):
        config.env_port("X_PORT", 7)


def test_env_bool(monkeypatch):
    for text, value in [("1", True), ("Yes", True), ("on", True), ("0", False), ("off", False)]:
        monkeypatch.setenv("X_FLAG", text)
        assert config.env_bool("X_FLAG", not value) is value
    monkeypatch.delenv("X_FLAG")
    assert config.env_bool("X_FLAG", True) is True


def test_env_host_ports(monkeypatch):
    monkeypatch.setenv("X_DNS", "127.0.0.1, [::1]:5353,dns.example:53 ,")
    assert config.env_host_ports("X_DNS") == [("127.0.0.1", 53), ("::1", 5353), ("dns.example", 53)]
    monkeypatch.setenv("X_RELAY", "smtp.example:2525")
    assert config.env_host_port("X_RELAY", 25) == ("smtp.example", 2525)
    monkeypatch.setenv("X_RELAY", "[2001:db8::1]")
    assert config.env_host_port("X_RELAY", 25) == ("2001:db8::1", 25)
    monkeypatch.delenv("X_RELAY")
    assert config.env_host_port("X_RELAY", 25) is None


@pytest.mark.django_db
def test_sqlite_is_in_wal_mode_with_a_busy_timeout_and_synced_commits():
    if connection.vendor != "sqlite":
        pytest.skip("the database is not SQLite")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] >= 5000
        # FULL (2): every commit syncs the WAL, so an acknowledged message survives power loss.
        cursor.execute("PRAGMA synchronous")
        assert cursor.fetchone()[0] == 2
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
