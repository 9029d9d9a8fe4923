"""Settings come from the environment; a bad value stops start-up with a line naming it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pytest
from django.conf import settings
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


class Bad(NamedTuple):
    """A bad value for one variable: start-up must stop with one line naming the variable
    and holding `words`. `env` holds other variables the case needs; `command` is what runs
    (`manage.py check` loads the settings, as every command does first)."""

    value: str
    words: str
    env: dict[str, str] = {}
    command: tuple[str, ...] = ("check",)


AN_EXISTING_FILE = str(REPO / "README.md")

# One row per variable in README's tables (test_every_documented_variable_has_a_bad_value
# holds us to it). Add a row with every new setting.
BAD_VALUES: dict[str, Bad] = {
    "DATABASE_URL": Bad("nosuchdb://x/y", "DATABASE_URL='nosuchdb://x/y'"),
    "REDIS_URL": Bad("localhost:6379", "is not a URL of scheme redis://"),
    "MAILHOST_DATA_DIR": Bad(AN_EXISTING_FILE, "is not a directory"),
    "MAILHOST_HOSTNAME": Bad("mail..example.org", "is not a host name"),
    "MAILHOST_BIND": Bad("999.1.1.1", "MAILHOST_BIND='999.1.1.1' is not an IP address"),
    "MAILHOST_SMTP_PORT": Bad("abc", "MAILHOST_SMTP_PORT='abc' is not a whole number"),
    "MAILHOST_SUBMISSION_PORT": Bad("-1", "must be between 0 and 65535"),
    "MAILHOST_SUBMISSIONS_PORT": Bad("465x", "is not a whole number"),
    "MAILHOST_IMAP_PORT": Bad("70000", "MAILHOST_IMAP_PORT=70000 must be between 0 and 65535"),
    "MAILHOST_IMAPS_PORT": Bad("9 93", "is not a whole number"),
    "MAILHOST_POP3_PORT": Bad("1e3", "is not a whole number"),
    "MAILHOST_POP3S_PORT": Bad("99999", "must be between 0 and 65535"),
    "MAILHOST_WEB_PORT": Bad("http", "is not a whole number"),
    "MAILHOST_WEBS_PORT": Bad("https", "MAILHOST_WEBS_PORT='https' is not a whole number"),
    # A missing file is named with its path when the settings load, not when TLS is first used.
    "MAILHOST_TLS_CERT": Bad(
        "/nonexistent/cert.pem",
        "MAILHOST_TLS_CERT='/nonexistent/cert.pem': no such file",
        env={"MAILHOST_TLS_KEY": AN_EXISTING_FILE},
    ),
    "MAILHOST_TLS_KEY": Bad("key.pem", "MAILHOST_TLS_CERT and MAILHOST_TLS_KEY"),
    "MAILHOST_ACME_DIRECTORY": Bad(
        "acme.example/directory", "MAILHOST_ACME_DIRECTORY='acme.example/directory' is not a URL"
    ),
    "MAILHOST_ACME_EMAIL": Bad("postmaster", "MAILHOST_ACME_EMAIL='postmaster' is not an address"),
    "MAILHOST_ACME_CA_FILE": Bad("/nonexistent/ca.pem", "MAILHOST_ACME_CA_FILE='/nonexistent"),
    "MAILHOST_FTS_MAX_TEXT": Bad("12", "MAILHOST_FTS_MAX_TEXT"),
    "MAILHOST_FTS_INTERVAL": Bad("often", "MAILHOST_FTS_INTERVAL"),
    "MAILHOST_SQLITE_MMAP_SIZE": Bad("-1", "MAILHOST_SQLITE_MMAP_SIZE=-1 must be at least 0"),
    "MAILHOST_SQLITE_CHECKPOINT_INTERVAL": Bad("soon", "MAILHOST_SQLITE_CHECKPOINT_INTERVAL"),
    "MAILHOST_MAX_HOPS": Bad("0", "MAILHOST_MAX_HOPS"),
    "MAILHOST_OUTBOUND_BIND": Bad(
        "mail.example.org", "MAILHOST_OUTBOUND_BIND: 'mail.example.org' is not an IP address"
    ),
    "MAILHOST_DANE": Bad("maybe", "MAILHOST_DANE='maybe' is not a boolean"),
    "MAILHOST_MTA_STS": Bad("maybe", "MAILHOST_MTA_STS='maybe' is not a boolean"),
    "MAILHOST_MTA_STS_TIMEOUT": Bad("soon", "MAILHOST_MTA_STS_TIMEOUT"),
    "MAILHOST_MTA_STS_PORT": Bad("70000", "MAILHOST_MTA_STS_PORT"),
    "MAILHOST_OUTBOUND_CA_FILE": Bad(
        "/nonexistent/ca.pem", "MAILHOST_OUTBOUND_CA_FILE='/nonexistent"
    ),
    "MAILHOST_TLS_CERTS_DIR": Bad(
        "/nonexistent/certs", "MAILHOST_TLS_CERTS_DIR='/nonexistent/certs': no such directory"
    ),
    "MAILHOST_ACME_CHALLENGE": Bad("dns-01", "MAILHOST_ACME_CHALLENGE"),
    "MAILHOST_ACME_DOMAIN_NAMES": Bad("some", "MAILHOST_ACME_DOMAIN_NAMES='some' is not a boolean"),
    "MAILHOST_ACME_RENEW_DAYS": Bad("90", "MAILHOST_ACME_RENEW_DAYS=90 must be"),
    "MAILHOST_ACME_CHECK_INTERVAL": Bad(
        "0.5", "MAILHOST_ACME_CHECK_INTERVAL='0.5' must be at least"
    ),
    "MAILHOST_DNS_SERVERS": Bad("127.0.0.1:x", "MAILHOST_DNS_SERVERS: port 'x' is not a number"),
    "MAILHOST_OUTBOUND_PORT": Bad("smtp", "is not a whole number"),
    "MAILHOST_OUTBOUND_LINE_LENGTH_LIMIT": Bad("12", "must be 0 (off) or from 78 to 998"),
    "MAILHOST_RELAYHOST": Bad("smtp.example.org:abc", "port 'abc' is not a number"),
    "MAILHOST_SECRET_KEY": Bad("short", "MAILHOST_SECRET_KEY is too short"),
    "MAILHOST_ALLOWED_HOSTS": Bad("https://mail.example.org", "is not a host name"),
    "MAILHOST_RELAYHOST_USER": Bad("relayuser", "must be set together"),
    "MAILHOST_RELAYHOST_PASSWORD": Bad("relay-secret", "must be set together"),
    "MAILHOST_MAX_MESSAGE_SIZE": Bad("50M", "is not a whole number"),
    "MAILHOST_MAX_RECIPIENTS": Bad("0", "must be at least 1"),
    "MAILHOST_DEFAULT_QUOTA": Bad("-5", "must be at least 0"),
    "MAILHOST_DEFAULT_QUOTA_MESSAGES": Bad("-5", "must be at least 0"),
    "MAILHOST_ALLOW_PLAINTEXT_AUTH": Bad("maybe", "is not a boolean"),
    "MAILHOST_MAX_CONNECTIONS": Bad("many", "is not a whole number"),
    "MAILHOST_MAX_CONNECTIONS_PER_IP": Bad("0", "must be at least 1"),
    "MAILHOST_LISTEN_BACKLOG": Bad("0", "must be at least 1"),
    "MAILHOST_PROCESSES": Bad("0", "MAILHOST_PROCESSES=0 must be at least 1"),
    "MAILHOST_BLOB_ORPHAN_AGE": Bad("1h", "is not a whole number"),
    "MAILHOST_BLOB_INLINE_MAX": Bad("64K", "is not a whole number"),
    "MAILHOST_S3_BUCKET": Bad("Mail_Blobs", "is not an S3 bucket name"),
    "MAILHOST_S3_ENDPOINT_URL": Bad("s3.example.net", "is not a URL of scheme http://, https://"),
    "MAILHOST_S3_REGION": Bad("eu west 1", "is not a region name"),
    "MAILHOST_S3_ACCESS_KEY_ID": Bad("AKIDEXAMPLE", "go together: give both"),
    "MAILHOST_S3_SECRET_ACCESS_KEY": Bad("wJalrXUtnFEMI", "go together: give both"),
    "MAILHOST_AUTH_CACHE_SECONDS": Bad("five", "is not a whole number"),
    "MAILHOST_WEBMAIL_IDLE_SECONDS": Bad("10", "must be at least 60"),
    "MAILHOST_IMAP_MAX_LINE_LENGTH": Bad("100", "must be at least 8192"),
    "MAILHOST_IMAP_MAX_LITERAL_SIZE": Bad("big", "is not a whole number"),
    "MAILHOST_IMAP_MAX_LITERAL_BEFORE_AUTH": Bad("100", "must be at least 256"),
    "MAILHOST_IMAP_MAX_KEYWORDS_PER_FOLDER": Bad("0", "must be at least 1"),
    "MAILHOST_IMAP_MAX_KEYWORDS_PER_MESSAGE": Bad("many", "is not a whole number"),
    "MAILHOST_IMAP_MAX_KEYWORD_LENGTH": Bad("0", "must be at least 1"),
    "MAILHOST_IMAP_MAX_COMMANDS_BEFORE_AUTH": Bad("1", "must be at least 5"),
    "MAILHOST_IMAP_MAX_AUTH_FAILURES": Bad("0", "must be at least 1"),
    "MAILHOST_IMAP_IDLE_TIMEOUT": Bad("60", "must be at least 1800"),
    "MAILHOST_IMAP_PREAUTH_TIMEOUT": Bad("1", "must be at least 10"),
    "MAILHOST_IMAP_MAX_CONNECTIONS": Bad("x", "is not a whole number"),
    "MAILHOST_IMAP_MAX_CONNECTIONS_PER_USER": Bad("0", "must be at least 1"),
    "MAILHOST_IMAP_WORKER_THREADS": Bad("0", "must be at least 1"),
    "MAILHOST_MALLOC_ARENA_MAX": Bad("-1", "must be at least 0"),
    "MAILHOST_EVENT_LOOP": Bad("tokio", "must be one of auto, uvloop, asyncio"),
    "MAILHOST_POP3_IDLE_TIMEOUT": Bad("60", "must be at least 600"),
    "MAILHOST_POP3_MAX_LINE_LENGTH": Bad("80", "must be at least 512"),
    "MAILHOST_POP3_MAX_AUTH_FAILURES": Bad("0", "must be at least 1"),
    "MAILHOST_POP3_MAX_BAD_COMMANDS": Bad("none", "is not a whole number"),
    "MAILHOST_POP3_LEASE_SECONDS": Bad("1", "must be at least 10"),
    "MAILHOST_POP3_LOGIN_DELAY": Bad("-1", "must be at least 0"),
    "MAILHOST_POP3_TAKEOVER": Bad("newest", "is not a boolean"),
    "MAILHOST_POP3_EXPIRE": Bad("sometimes", "must be one of NEVER, 0"),
    "MAILHOST_SRS_SECRET": Bad("short", "MAILHOST_SRS_SECRET is too short"),
    "MAILHOST_SRS_MAX_AGE": Bad("0", "must be between 1 and 1000"),
    "MAILHOST_SIEVE_MAX_REDIRECTS": Bad("lots", "is not a whole number"),
    "MAILHOST_SIEVE_MAX_HOPS": Bad("0", "must be between 1 and 100"),
    "MAILHOST_SIEVE_CPU_LIMIT_MS": Bad("0", "must be at least 1"),
    "MAILHOST_SIEVE_VACATION_MIN_SECONDS": Bad("-5", "must be between 0 and"),
    "MAILHOST_MANAGESIEVE_PORT": Bad("sieve", "is not a whole number"),
    "MAILHOST_MANAGESIEVE_IDLE_TIMEOUT": Bad("600", "must be at least 1800"),
    "MAILHOST_MANAGESIEVE_MAX_LINE_LENGTH": Bad("100", "must be at least 1024"),
    "MAILHOST_MANAGESIEVE_MAX_LITERAL_BEFORE_AUTH": Bad("10", "must be at least 256"),
    "MAILHOST_MANAGESIEVE_MAX_AUTH_FAILURES": Bad("0", "must be at least 1"),
    "MAILHOST_MANAGESIEVE_MAX_BAD_COMMANDS": Bad("-3", "must be at least 1"),
    "MAILHOST_SIEVE_MAX_SCRIPTS": Bad("0", "must be at least 1"),
    "MAILHOST_SIEVE_MAX_SCRIPT_SIZE": Bad("100", "must be at least 1024"),
    "MAILHOST_SMTP_COMMAND_TIMEOUT": Bad("0", "must be at least 1"),
    "MAILHOST_SMTP_DATA_TIMEOUT": Bad("3m", "is not a whole number"),
    "MAILHOST_SMTP_AUTH_ON_MTA": Bad("sometimes", "is not a boolean"),
    "MAILHOST_SMTP_BARE_LINE_ENDINGS": Bad("strip", "must be one of refuse, normalize"),
    "MAILHOST_SMTP_MAX_LINE_LENGTH": Bad("500", "must be between 998 and"),
    "MAILHOST_SMTP_NUL_BYTES": Bad("keep", "must be one of refuse, strip"),
    "MAILHOST_SMTP_SPOOL_THRESHOLD": Bad("1MB", "is not a whole number"),
    "MAILHOST_SMTP_DATA_TOTAL_TIMEOUT": Bad("0", "must be at least 1"),
    "MAILHOST_SUBMISSION_MAX_CONNECTIONS": Bad("0", "must be at least 1"),
    "MAILHOST_SUBMISSION_MAX_CONNECTIONS_PER_IP": Bad("x", "is not a whole number"),
    "MAILHOST_SMTP_BUSY_FRACTION": Bad("1.5", "must be above 0 and at most 1"),
    "MAILHOST_SMTP_BUSY_COMMAND_TIMEOUT": Bad("0", "must be at least 1"),
    "MAILHOST_SMTP_HOSTED_SENDER_CLIENTS": Bad("10.0.0.0/8,nohost", "'nohost' is not an IP"),
    "MAILHOST_SMTP_WORKER_THREADS": Bad("0", "must be at least 1"),
    "MAILHOST_GROUP_COMMIT_MAX": Bad("0", "must be at least 1"),
    "MAILHOST_SHUTDOWN_GRACE": Bad("-1", "must be at least 0"),
    "MAILHOST_SMTP_PROXY_PROTOCOL": Bad("v2", "is not a boolean"),
    "MAILHOST_LOG_LEVEL": Bad("verbose", "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    "MAILHOST_SESSION_AGE": Bad("10", "MAILHOST_SESSION_AGE"),
    "MAILHOST_RETRY_SCHEDULE": Bad("5m,soon", "'soon' is not a duration"),
    "MAILHOST_QUEUE_LIFETIME": Bad("5d", "is not a whole number"),
    "MAILHOST_DELAY_WARNING": Bad("-1", "must be at least 0"),
    "MAILHOST_QUEUE_KEEP": Bad("week", "is not a whole number"),
    "MAILHOST_SWEEP_INTERVAL": Bad("often", "'often' is not a duration"),
    "MAILHOST_DELIVERY_LEASE": Bad("0", "must be at least 1"),
    "MAILHOST_DELIVERY_THREADS": Bad("-1", "must be at least 0"),
    "MAILHOST_DELIVERY_PROCESSES": Bad("many", "is not a whole number"),
    "MAILHOST_DELIVERY_SHARE": Bad("3/2", "must be i/N with 0 <= i < N"),
    "MAILHOST_DELIVERY_WAKE_FD": Bad("pipe", "is not a whole number"),
    "MAILHOST_OUTBOUND_CONNECT_TIMEOUT": Bad("0", "must be at least 1"),
    "MAILHOST_OUTBOUND_TIMEOUT": Bad("5 min", "is not a whole number"),
    "MAILHOST_OUTBOUND_TLS_VERIFY": Bad("strict", "is not a boolean"),
    "MAILHOST_OUTBOUND_IDLE_TIMEOUT": Bad("a while", "is not a duration"),
    "MAILHOST_OUTBOUND_REUSE_LIMIT": Bad("-3", "must be at least 0"),
    "MAILHOST_OUTBOUND_DESTINATION_CONCURRENCY": Bad("0", "must be at least 1"),
    "MAILHOST_OUTBOUND_DESTINATION_RATE": Bad("-1", "must be at least 0 (0: no limit)"),
    "MAILHOST_DNS_TIMEOUT": Bad("ten", "'ten' is not a duration"),
    "MAILHOST_INBOUND_CHECKS": Bad("sometimes", "is not a boolean"),
    "MAILHOST_INBOUND_CHECK_TIMEOUT": Bad("soon", "'soon' is not a duration"),
    "MAILHOST_ARC_TRUSTED_SEALERS": Bad(
        "lists.example.org, not a domain", "MAILHOST_ARC_TRUSTED_SEALERS: 'not a domain' is not a"
    ),
    "MAILHOST_SPAM_BACKEND": Bad("spamassassin", "must be one of builtin, rspamd, off"),
    "MAILHOST_RSPAMD_URL": Bad("127.0.0.1:11334", "is not a URL of scheme http://, https://"),
    "MAILHOST_RSPAMD_TIMEOUT": Bad("0", "must be at least 0.1 seconds"),
    "MAILHOST_SPAM_JUNK_SCORE": Bad("five", "MAILHOST_SPAM_JUNK_SCORE='five' is not a number"),
    "MAILHOST_SPAM_REJECT_SCORE": Bad("4", "must be at least MAILHOST_SPAM_JUNK_SCORE=5"),
    "MAILHOST_DNSBL_ZONES": Bad("zen.spamhaus.org=high", "score 'high' of zen.spamhaus.org"),
    "MAILHOST_DNSWL_ZONES": Bad("list dnswl org", "'list dnswl org' is not a DNS zone name"),
    "MAILHOST_GREYLIST": Bad("sometimes", "is not a boolean"),
    "MAILHOST_GREYLIST_DELAY": Bad("soon", "'soon' is not a duration"),
    "MAILHOST_GREYLIST_RETRY_WINDOW": Bad("10", "must be at least 60 seconds"),
    "MAILHOST_GREYLIST_EXPIRY": Bad("-1d", "is not a duration"),
    "MAILHOST_PUBLIC_ADDRESSES": Bad(
        "203.0.113.5, mail.example.org",
        "MAILHOST_PUBLIC_ADDRESSES: 'mail.example.org' is not an IP address",
    ),
    "MAILHOST_CAA_ISSUERS": Bad(
        "https://letsencrypt.org", "MAILHOST_CAA_ISSUERS: 'https://letsencrypt.org' is not a"
    ),
    "MAILHOST_MTA_STS_MODE": Bad("strict", "must be one of testing, enforce"),
    "MAILHOST_TLS_REPORTS": Bad("maybe", "MAILHOST_TLS_REPORTS='maybe' is not a boolean"),
    "MAILHOST_DMARC_REPORTS": Bad("sometimes", "MAILHOST_DMARC_REPORTS='sometimes' is not a"),
    "MAILHOST_REPORTS_FROM": Bad("noreply", "MAILHOST_REPORTS_FROM='noreply' is not an address"),
    "MAILHOST_REPORTS_ORG": Bad("Example\tInc", "MAILHOST_REPORTS_ORG must be one line"),
    "MAILHOST_PASSWORD_MIN_LENGTH": Bad("0", "must be at least 1"),
    "MAILHOST_WEBMAIL_HTML_LIMIT": Bad("1M", "is not a whole number"),
    "MAILHOST_DEBUG": Bad("maybe", "MAILHOST_DEBUG='maybe' is not a boolean"),
    "MAILHOST_TRUSTED_PROXIES": Bad(
        "10.0.0.1, proxy.lan",
        "MAILHOST_TRUSTED_PROXIES='10.0.0.1, proxy.lan': 'proxy.lan' is not an IP address",
    ),
    "MAILHOST_PROXY_TRUSTED": Bad(
        "10.0.0.0/8, haproxy.lan",
        "MAILHOST_PROXY_TRUSTED='10.0.0.0/8, haproxy.lan': 'haproxy.lan' is not an IP address",
    ),
    "MAILHOST_WEB_MAX_CONNECTIONS_PER_IP": Bad("0", "must be at least 1"),
    "MAILHOST_METRICS_ALLOW": Bad(
        "127.0.0.1, monitor.lan",
        "MAILHOST_METRICS_ALLOW='127.0.0.1, monitor.lan': 'monitor.lan' is not an IP address",
    ),
    "MAILHOST_WEB_MAX_CONNECTIONS": Bad("many", "is not a whole number"),
    "MAILHOST_WEB_REQUEST_TIMEOUT": Bad("0", "must be at least 1"),
    "MAILHOST_WEB_THREADS": Bad("eight", "is not a whole number"),
    "MAILHOST_HSTS_SECONDS": Bad("-1", "must be at least 0"),
    "MAILHOST_HSTS_INCLUDE_SUBDOMAINS": Bad("sure", "is not a boolean"),
    "MAILHOST_IMAP_MAX_UPDATE_CONTEXTS": Bad("0", "must be at least 1"),
    "MAILHOST_BLOB_STREAM_MIN": Bad("1M", "is not a whole number"),
    "MAILHOST_BLOB_STREAM_CHUNK": Bad("100", "must be at least 1024"),
}


def documented_variables() -> list[str]:
    """Every variable named in the first column of a README table."""
    names: list[str] = []
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("|"):
            first_cell = line.split("|")[1]
            for name in re.findall(
                r"\b(?:MAILHOST_[A-Z0-9_]+|DATABASE_URL|REDIS_URL)\b", first_cell
            ):
                if name not in names:
                    names.append(name)
    return names


def test_every_documented_variable_has_a_bad_value():
    documented = documented_variables()
    assert len(documented) > 60, documented  # the tables were found
    missing = [name for name in documented if name not in BAD_VALUES]
    assert not missing, f"add rows to BAD_VALUES for {missing}"


def run_bad(name: str, bad: Bad, data_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MAILHOST_DATA_DIR": str(data_dir), **bad.env, name: bad.value}
    return subprocess.run(
        [sys.executable, "manage.py", *bad.command],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def bad_outcomes(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Every row run once, four at a time (each is a Python start-up of about a second)."""
    data_dir = tmp_path_factory.mktemp("data")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            name: pool.submit(run_bad, name, bad, data_dir) for name, bad in BAD_VALUES.items()
        }
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", list(BAD_VALUES))
def test_a_bad_value_stops_start_up_with_one_line_naming_the_variable(name, bad_outcomes):
    bad = BAD_VALUES[name]
    result = bad_outcomes[name]
    assert result.returncode != 0, (name, bad.value, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("mailhost: configuration error: "), lines
    variable = name if name not in {"MAILHOST_TLS_KEY", "MAILHOST_RELAYHOST_PASSWORD"} else ""
    assert variable in lines[0] and bad.words in lines[0], (name, lines[0])


def test_manage_check_passes_with_defaults_and_readme_notation(tmp_path):
    cases = [
        {},
        {"MAILHOST_RETRY_SCHEDULE": "5m,10m"},  # README's own notation for the schedule
        {"MAILHOST_LOG_LEVEL": "debug", "MAILHOST_BIND": "::1", "MAILHOST_POP3_EXPIRE": "never"},
    ]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda env: check(tmp_path, **env), cases))
    for env, result in zip(cases, results):
        assert result.returncode == 0, (env, result.stderr)


def test_durations_take_readme_notation(monkeypatch):
    monkeypatch.setenv("X_SCHEDULE", "0, 5m, 10m,30s, 1.5, 1h, 2d")
    assert config.env_durations("X_SCHEDULE") == (0, 300, 600, 30, 1.5, 3600, 172800)
    monkeypatch.setenv("X_SCHEDULE", "5 minutes")
    with pytest.raises(ImproperlyConfigured, match="X_SCHEDULE: '5 minutes' is not a duration"):
        config.env_durations("X_SCHEDULE")


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
    # FULL (2) as configured: every commit syncs the WAL, so an acknowledged message survives
    # power loss (inside a transaction, as here, the backend runs at NORMAL and syncs the WAL
    # itself after the commit: tests/mailhost/test_sqlite_sync.py).
    assert connection.configured_sync == 2
    with connection.cursor() as cursor:
        # reads through a map of the file (MAILHOST_SQLITE_MMAP_SIZE, capped by SQLite's build)
        cursor.execute("PRAGMA mmap_size")
        assert cursor.fetchone()[0] == min(settings.MAILHOST_SQLITE_MMAP_SIZE, 0x7FFF0000)
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def sqlite_environ() -> dict[str, str]:
    """This environment with the default database (SQLite in the data dir), no Redis."""
    return {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    """A data dir whose SQLite file has the tables (listeners refuse to start without)."""
    data_dir = tmp_path_factory.mktemp("migrated")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        env={**sqlite_environ(), "MAILHOST_DATA_DIR": str(data_dir)},
        cwd=REPO,
        check=True,
        timeout=120,
    )
    return data_dir


LISTENER_ENV = {
    "MAILHOST_HOSTNAME": "mx.test.example",
    "MAILHOST_BIND": "127.0.0.1",
    **{f"MAILHOST_{port}_PORT": "0" for port in ("SMTP", "SUBMISSION", "SUBMISSIONS")},
}


@pytest.mark.parametrize(
    "env, words",
    [
        # Files that exist but hold no certificate: found when the listener loads them.
        (
            {"MAILHOST_TLS_CERT": AN_EXISTING_FILE, "MAILHOST_TLS_KEY": AN_EXISTING_FILE},
            "MAILHOST_TLS_CERT=",
        ),
        # A valid address that is not this machine's (TEST-NET-1, RFC 5737).
        ({"MAILHOST_BIND": "192.0.2.1"}, "MAILHOST_BIND=192.0.2.1"),
    ],
    ids=["tls-files-hold-no-certificate", "bind-address-not-ours"],
)
def test_a_listener_that_cannot_start_says_which_setting_in_one_line(migrated, env, words):
    result = subprocess.run(
        [sys.executable, "manage.py", "runsmtp"],
        env={**sqlite_environ(), "MAILHOST_DATA_DIR": str(migrated), **LISTENER_ENV, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "configuration error" in line]
    assert len(errors) == 1 and words in errors[0], result.stderr


def test_gunicorn_with_a_bad_value_stops_with_one_line(tmp_path):
    gunicorn = Path(sys.executable).with_name("gunicorn")
    result = subprocess.run(
        [str(gunicorn), "--bind", "127.0.0.1:0", "mailhost.wsgi"],
        env={**sqlite_environ(), "MAILHOST_DATA_DIR": str(tmp_path), "MAILHOST_LOG_LEVEL": "loud"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,  # gunicorn must stop, not restart the worker forever
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "configuration error" in line]
    assert errors == [
        "mailhost: configuration error: MAILHOST_LOG_LEVEL='loud' must be one of DEBUG, INFO,"
        " WARNING, ERROR, CRITICAL"
    ], result.stderr
