"""Logins on every protocol: one shared guessing limiter, and passwords never logged.

- A failure on SMTP AUTH slows the next attempt for that address on IMAP, POP3 and webmail
  (mailboxes/throttle.py is the one limiter), per address (another client IP is slowed too)
  and per client IP (another address from the same IP is slowed too).
- With every logger at DEBUG, successful and failed logins over SMTP (AUTH PLAIN, AUTH
  LOGIN), IMAP (LOGIN, AUTHENTICATE PLAIN), POP3 (USER/PASS, AUTH PLAIN) and webmail leave
  neither the password nor its base64 form in any log record.
"""

from __future__ import annotations

import base64
import imaplib
import logging
import poplib
import smtplib
import ssl
import time

import pytest
from django.test import Client

from mailboxes import throttle
from protocols import runner
from tests.support.servers import running

PASSWORD = "Zebra-Pa55-q7Lm"
WRONG = "Wrong-Guess-k2Vx"


def _tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@pytest.fixture
def servers(live_settings, make_mailbox, transactional_db):
    make_mailbox("alice@example.org", PASSWORD)
    make_mailbox("bob@example.org", PASSWORD)
    with running(runner.SMTP, runner.IMAP, runner.POP3) as ports:
        yield ports


def smtp_login(ports, address: str, password: str, mechanism: str = "PLAIN") -> bool:
    with smtplib.SMTP_SSL("127.0.0.1", ports["submissions"], context=_tls(), timeout=30) as client:
        client.ehlo()
        try:
            if mechanism == "PLAIN":
                client.auth("PLAIN", lambda challenge=None: f"\0{address}\0{password}")
            else:
                client.user, client.password = address, password
                client.auth("LOGIN", client.auth_login)
            return True
        except smtplib.SMTPAuthenticationError:
            return False


def imap_login(ports, address: str, password: str, mechanism: str = "LOGIN") -> bool:
    client = imaplib.IMAP4_SSL("127.0.0.1", ports["imaps"], ssl_context=_tls(), timeout=30)
    try:
        if mechanism == "LOGIN":
            client.login(address, password)
        else:
            client.authenticate("PLAIN", lambda _: f"\0{address}\0{password}".encode())
    except imaplib.IMAP4.error:
        client.shutdown()
        return False
    client.logout()
    return True


def pop3_login(ports, address: str, password: str, mechanism: str = "USER") -> bool:
    client = poplib.POP3_SSL("127.0.0.1", ports["pop3s"], context=_tls(), timeout=30)
    try:
        if mechanism == "USER":
            client.user(address)
            client.pass_(password)
        else:
            token = base64.b64encode(f"\0{address}\0{password}".encode()).decode()
            client._shortcmd(f"AUTH PLAIN {token}")
        client.quit()
        return True
    except poplib.error_proto:
        return False
    finally:
        client.close()


def web_login(address: str, password: str, ip: str = "127.0.0.1") -> int:
    return Client(REMOTE_ADDR=ip).post("/login/", {"address": address, "password": password})


def timed(function, *args, **kwargs):
    start = time.monotonic()
    result = function(*args, **kwargs)
    return result, time.monotonic() - start


def test_one_limiter_across_protocols(servers, monkeypatch):
    monkeypatch.setattr(throttle, "FREE_FAILURES", 1)
    monkeypatch.setattr(throttle, "BASE_DELAY", 0.4)
    ports = servers
    assert imap_login(ports, "alice@example.org", PASSWORD)
    assert throttle.delay_for("alice@example.org", "127.0.0.1") == 0

    # One failure on SMTP: the next attempt anywhere waits BASE_DELAY, then doubles.
    assert not smtp_login(ports, "alice@example.org", WRONG)
    assert throttle.delay_for("alice@example.org", "127.0.0.1") == pytest.approx(0.4)
    ok, took = timed(imap_login, ports, "alice@example.org", WRONG)
    assert not ok and took >= 0.38
    ok, took = timed(pop3_login, ports, "alice@example.org", WRONG)
    assert not ok and took >= 0.78
    # Per address: the same address from another client IP is slowed (webmail, 10.9.9.9).
    response, took = timed(web_login, "alice@example.org", WRONG, ip="10.9.9.9")
    assert response.status_code == 401 and took >= 1.5
    # Per client: another address from the guessing IP is slowed too.
    ok, took = timed(imap_login, ports, "bob@example.org", PASSWORD)
    assert ok and took >= 1.5
    # A fresh client IP and a fresh address go through at once.
    response, took = timed(web_login, "bob@example.org", PASSWORD, ip="10.1.1.1")
    assert response.status_code == 302 and took < 0.4


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
