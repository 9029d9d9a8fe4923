"""One log line per login and per failure on every protocol, with the address and the client
address (issue 13): `auth success|failure protocol=... client=... user=...` from the one login
path (services.mailbox_login; the admin's form), and fail2ban's filter in contrib/fail2ban/
finds exactly the failing clients in a real log, checked with Debian's fail2ban-regex."""

from __future__ import annotations

import logging
import shutil
import smtplib
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from mailhost import runner
from tests.support.logins import (
    admin_login,
    imap_login,
    pop3_login,
    smtp_login,
    web_login,
)
from tests.support.servers import running

PASSWORD = "Zebra-Pa55-q7Lm"
WRONG = "Wrong-Guess-k2Vx"
ALICE = "alice@example.org"
FILTER = Path(__file__).resolve().parents[2] / "contrib" / "fail2ban" / "filter.d" / "mailhost.conf"


@pytest.fixture
def servers(live_settings, make_mailbox, transactional_db, django_user_model):
    make_mailbox(ALICE, PASSWORD)
    django_user_model.objects.create_superuser("root", "root@example.org", PASSWORD)
    with running(runner.SMTP, runner.IMAP, runner.POP3) as ports:
        yield ports


def _auth_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "mailboxes.auth"]


def test_every_protocol_logs_logins_and_failures_with_address_and_client(servers, caplog):
    caplog.set_level(logging.INFO, logger="mailboxes.auth")
    ports = servers
    attempts = [
        ("smtp", lambda p: smtp_login(ports, ALICE, p, "PLAIN")),
        ("smtp", lambda p: smtp_login(ports, ALICE, p, "LOGIN")),
        ("imap", lambda p: imap_login(ports, ALICE, p, "LOGIN")),
        ("imap", lambda p: imap_login(ports, ALICE, p, "PLAIN")),
        ("pop3", lambda p: pop3_login(ports, ALICE, p, "USER")),
        ("pop3", lambda p: pop3_login(ports, ALICE, p, "PLAIN")),
        ("webmail", lambda p: web_login(ALICE, p, ip="198.51.100.7").status_code == 302),
    ]
    for protocol, attempt in attempts:
        caplog.clear()
        assert attempt(PASSWORD)
        assert not attempt(WRONG)
        client = "198.51.100.7" if protocol == "webmail" else "127.0.0.1"
        assert _auth_lines(caplog) == [
            f"auth success protocol={protocol} client={client} user={ALICE}",
            f"auth failure protocol={protocol} client={client} user={ALICE}",
        ]
    caplog.clear()
    assert admin_login("root", PASSWORD, ip="198.51.100.8").status_code == 302
    assert admin_login("root", WRONG, ip="198.51.100.8").status_code == 200
    assert admin_login("nobody", WRONG, ip="198.51.100.8").status_code == 200
    assert _auth_lines(caplog) == [
        "auth success protocol=admin client=198.51.100.8 user=root",
        "auth failure protocol=admin client=198.51.100.8 user=root",
        "auth failure protocol=admin client=198.51.100.8 user=nobody",
    ]


def test_a_user_name_cannot_forge_a_log_line(servers, caplog):
    caplog.set_level(logging.INFO, logger="mailboxes.auth")
    forged = "x@example.org\r\n2026-01-01 00:00:00,000 INFO mailboxes.auth auth failure"
    forged += ' protocol=imap client=203.0.113.66 user="y'
    assert web_login(forged, WRONG, ip="198.51.100.9").status_code == 401
    (line,) = _auth_lines(caplog)
    assert "\n" not in line and "\r" not in line
    assert line.startswith(
        'auth failure protocol=webmail client=198.51.100.9 user="x@example.org\\x0d'
    )
    assert line.endswith('user=\\"y"')


def _fail2ban(log: Path, filter_spec: str) -> list[str]:
    """fail2ban-regex's matched hosts, one per matched line, in log order."""
    result = subprocess.run(
        ["fail2ban-regex", "-o", "ip", str(log), filter_spec],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.split()


@contextmanager
def _logging_to(path: Path):
    """Every log record at INFO and above into `path`, in the project's own log format."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(
        logging.Formatter(django_settings.LOGGING["formatters"]["plain"]["format"])
    )
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


needs_fail2ban = pytest.mark.skipif(
    shutil.which("fail2ban-regex") is None,
    reason="fail2ban-regex is not installed (Debian package fail2ban; .ci/run installs it)",
)


@needs_fail2ban
def test_fail2ban_filter_finds_exactly_the_failing_clients(servers, tmp_path):
    """A real log from a live server: failures from 127.0.0.1 on SMTP, IMAP and POP3 (known and
    made-up addresses) and one from a webmail client whose user name tries to forge a client;
    successes from 127.0.0.1 and from another client. The filter matches every failure line
    and nothing else, and names the client that failed."""
    log = tmp_path / "mailhost.log"
    ports = servers
    with _logging_to(log):
        assert imap_login(ports, ALICE, PASSWORD)
        assert web_login(ALICE, PASSWORD, ip="198.51.100.7").status_code == 302
        assert not smtp_login(ports, ALICE, WRONG)
        assert not imap_login(ports, "nobody@example.org", WRONG)
        assert not pop3_login(ports, ALICE, WRONG)
        assert not pop3_login(ports, "nobody@example.org", WRONG, "PLAIN")
        forged = "x@example.org client=203.0.113.66 user=y"
        assert web_login(forged, WRONG, ip="198.51.100.9").status_code == 401
    text = log.read_text(encoding="utf-8")
    failures = [line for line in text.splitlines() if " auth failure " in line]
    assert len(failures) == 5, text
    assert _fail2ban(log, str(FILTER)) == ["127.0.0.1"] * 4 + ["198.51.100.9"], text


@needs_fail2ban
def test_fail2ban_aggressive_mode_counts_smtp_rejections(servers, tmp_path):
    log = tmp_path / "mailhost.log"
    ports = servers
    with _logging_to(log):
        assert not imap_login(ports, ALICE, WRONG)
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=30) as client:
            client.ehlo("peer.example.net")
            client.mail("someone@peer.example.net")
            assert client.rcpt("nobody@example.org")[0] == 550
            assert client.rcpt("someone@elsewhere.example")[0] == 554
    text = log.read_text(encoding="utf-8")
    rejects = [line for line in text.splitlines() if " smtp reject client=" in line]
    if not rejects:
        pytest.skip("this build logs no `smtp reject client=...` lines (the smtp helper's)")
    assert _fail2ban(log, str(FILTER)) == ["127.0.0.1"], text
    assert _fail2ban(log, f"{FILTER}[mode=aggressive]") == ["127.0.0.1"] * (1 + len(rejects))


def test_behind_a_trusted_proxy_the_forwarded_client_is_logged_and_limited(
    servers, settings, caplog
):
    """The web sign-ins take the client address from mailhost.proxy.client_address: behind a
    proxy in MAILHOST_TRUSTED_PROXIES the limiter and the log see the forwarded client, and
    a client's own X-Forwarded-For (no trusted proxy) changes nothing."""
    import ipaddress

    from django.test import Client

    from mailboxes import throttle

    settings.MAILHOST_TRUSTED_PROXIES = (ipaddress.ip_network("10.0.0.1/32"),)
    caplog.set_level(logging.INFO, logger="mailboxes.auth")
    proxied = Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    direct = Client(REMOTE_ADDR="198.51.100.3", HTTP_X_FORWARDED_FOR="203.0.113.10")
    for client in (proxied, direct):
        client.post("/login/", {"address": ALICE, "password": WRONG})
        client.post("/admin/login/", {"username": "root", "password": WRONG})
    assert _auth_lines(caplog) == [
        f"auth failure protocol=webmail client=203.0.113.9 user={ALICE}",
        "auth failure protocol=admin client=203.0.113.9 user=root",
        f"auth failure protocol=webmail client=198.51.100.3 user={ALICE}",
        "auth failure protocol=admin client=198.51.100.3 user=root",
    ]
    for _ in range(throttle.PAIR_FREE_FAILURES):
        proxied.post("/login/", {"address": ALICE, "password": WRONG})
    assert throttle.wait_for(ALICE, "203.0.113.9") > 0
    assert throttle.wait_for(ALICE, "10.0.0.1") == 0


def test_acting_as_someone_else_is_a_logged_failure(servers, caplog):
    """SASL PLAIN with an authorization identity other than the user's (RFC 4616 2) is refused
    on every protocol, and logged and counted as a failed login of that user."""
    import base64
    import imaplib
    import poplib

    from tests.support.logins import tls

    caplog.set_level(logging.INFO, logger="mailboxes.auth")
    ports = servers
    token = base64.b64encode(f"root@example.org\0{ALICE}\0{PASSWORD}".encode()).decode()
    with smtplib.SMTP_SSL("127.0.0.1", ports["submissions"], context=tls(), timeout=30) as smtp:
        smtp.ehlo()
        assert smtp.docmd("AUTH", f"PLAIN {token}")[0] == 535
    imap = imaplib.IMAP4_SSL("127.0.0.1", ports["imaps"], ssl_context=tls(), timeout=30)
    with pytest.raises(imaplib.IMAP4.error):
        imap.authenticate("PLAIN", lambda _: base64.b64decode(token))
    imap.shutdown()
    pop = poplib.POP3_SSL("127.0.0.1", ports["pop3s"], context=tls(), timeout=30)
    with pytest.raises(poplib.error_proto):
        pop._shortcmd(f"AUTH PLAIN {token}")
    pop.close()
    assert _auth_lines(caplog) == [
        f"auth failure protocol={protocol} client=127.0.0.1 user={ALICE}"
        for protocol in ("smtp", "imap", "pop3")
    ]
