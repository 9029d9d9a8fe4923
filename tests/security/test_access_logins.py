"""Logins on every protocol: one shared guessing limiter, and passwords never logged.

- A failure on SMTP AUTH slows the next attempt for that address from that client on IMAP,
  POP3 and webmail (mailboxes/throttle.py is the one limiter; tests/security/
  test_login_limiter.py covers its per-address, per-IP and known-client rules).
- With every logger at DEBUG, successful and failed logins over SMTP (AUTH PLAIN, AUTH
  LOGIN), IMAP (LOGIN, AUTHENTICATE PLAIN), POP3 (USER/PASS, AUTH PLAIN) and webmail leave
  neither the password nor its base64 form in any log record.
"""

from __future__ import annotations

import base64
import logging

import pytest

from mailboxes import throttle
from mailhost import runner
from tests.support.logins import imap_login, pop3_login, smtp_login, timed, web_login
from tests.support.servers import running

PASSWORD = "Zebra-Pa55-q7Lm"
WRONG = "Wrong-Guess-k2Vx"


@pytest.fixture
def servers(live_settings, make_mailbox, transactional_db):
    make_mailbox("alice@example.org", PASSWORD)
    make_mailbox("bob@example.org", PASSWORD)
    with running(runner.SMTP, runner.IMAP, runner.POP3) as ports:
        yield ports


def test_one_limiter_across_protocols(servers, monkeypatch):
    monkeypatch.setattr(throttle, "BASE_DELAY", 0.2)
    ports = servers
    assert throttle.wait_for("alice@example.org", "127.0.0.1") == 0
    # Failures on SMTP (the free ones), then each next attempt anywhere waits longer.
    for _ in range(throttle.PAIR_FREE_FAILURES):
        assert not smtp_login(ports, "alice@example.org", WRONG)
    assert throttle.wait_for("alice@example.org", "127.0.0.1") == pytest.approx(0.2, abs=0.05)
    ok, took = timed(imap_login, ports, "alice@example.org", WRONG)
    assert not ok and took >= 0.18
    ok, took = timed(pop3_login, ports, "alice@example.org", WRONG)
    assert not ok and took >= 0.38
    response, took = timed(web_login, "alice@example.org", WRONG)
    assert response.status_code == 401 and took >= 0.78
    # The pair's own failures slow even its right password (it never logged in from here).
    ok, took = timed(smtp_login, ports, "alice@example.org", PASSWORD)
    assert ok and took >= 1.5
    # A fresh client IP and a fresh address go through at once.
    assert throttle.wait_for("bob@example.org", "10.1.1.1") == 0
    assert web_login("bob@example.org", PASSWORD, ip="10.1.1.1").status_code == 302


def test_passwords_never_reach_the_logs(servers, caplog):
    caplog.set_level(logging.DEBUG)
    for logger_name in ("mail.log", "asyncio", "protocols", "mailboxes", "webmail", "django"):
        logging.getLogger(logger_name).setLevel(logging.DEBUG)
    ports = servers
    for password in (PASSWORD, WRONG):
        expected = password == PASSWORD
        throttle.reset()
        assert smtp_login(ports, "alice@example.org", password, "PLAIN") is expected
        assert smtp_login(ports, "alice@example.org", password, "LOGIN") is expected
        assert imap_login(ports, "alice@example.org", password, "LOGIN") is expected
        assert imap_login(ports, "alice@example.org", password, "PLAIN") is expected
        assert pop3_login(ports, "alice@example.org", password, "USER") is expected
        assert pop3_login(ports, "alice@example.org", password, "PLAIN") is expected
        throttle.reset()  # six failures above: the webmail would answer 429 without checking
        assert web_login("alice@example.org", password).status_code == (302 if expected else 401)
    assert caplog.records, "nothing was logged at all: the capture is not working"
    forbidden = set()
    for password in (PASSWORD, WRONG):
        forbidden.add(password)
        forbidden.add(base64.b64encode(password.encode()).decode())
        forbidden.add(base64.b64encode(f"\0alice@example.org\0{password}".encode()).decode())
    for record in caplog.records:
        text = record.getMessage() + repr(record.args) + (record.exc_text or "")
        for secret in forbidden:
            assert secret not in text, f"{record.name}: {text[:300]}"
