"""The login limiter (mailboxes/throttle.py) with real clients on every protocol (issue 13,
issue 14's admin item).

Guessing is slowed per (address, client IP), per address across IPs, and per client IP once
its budget of failures for made-up addresses is spent; a user's correct password from a place
it has logged in from before never waits on other people's failures. Delays are scaled down
here (BASE_DELAY, MAX_DELAY) so each test runs in seconds; the thresholds are the real ones.
"""

from __future__ import annotations

import pytest

from mailboxes import throttle
from mailhost import runner
from tests.support.logins import (
    admin_login,
    imap_login,
    pop3_login,
    smtp_login,
    timed,
    web_login,
)
from tests.support.servers import running

PASSWORD = "Zebra-Pa55-q7Lm"
WRONG = "Wrong-Guess-k2Vx"
ALICE = "alice@example.org"
BOB = "bob@example.org"
PROMPT = 0.5  # a login that was not made to wait answers well within this (real PBKDF2 aside)


def prompt() -> float:
    """PROMPT plus what one password check costs on this machine right now: a loaded machine
    slows PBKDF2 past PROMPT, while a login made to wait takes BASE_DELAY (1 s) more."""
    from django.contrib.auth.hashers import check_password, make_password

    encoded = make_password(PASSWORD)
    took = timed(check_password, PASSWORD, encoded)[1]
    return PROMPT + took


@pytest.fixture
def servers(live_settings, make_mailbox, transactional_db):
    make_mailbox(ALICE, PASSWORD)
    make_mailbox(BOB, PASSWORD)
    with running(runner.SMTP, runner.IMAP, runner.POP3) as ports:
        yield ports


@pytest.fixture
def scaled(monkeypatch):
    """Delays of 0.1 s doubling to 0.8 s instead of 1 s to 15 s."""
    monkeypatch.setattr(throttle, "BASE_DELAY", 0.1)
    monkeypatch.setattr(throttle, "MAX_DELAY", 0.8)
    monkeypatch.setattr(throttle, "KNOWN_CLIENT_MAX_DELAY", 0.05)


@pytest.fixture
def admin(django_user_model, transactional_db):
    return django_user_model.objects.create_superuser("root", "root@example.org", PASSWORD)


def test_made_up_logins_from_one_ip_do_not_lock_out_a_real_user(servers):
    """Issue 13: after 6 failed IMAP logins for made-up addresses from one IP, the real user's
    correct webmail login got 429 and a correct IMAP login took 4 s. Real limits, no scaling."""
    ports = servers
    for n in range(8):
        assert not imap_login(ports, f"nobody{n}@example.org", f"guess{n}")
    response, took = timed(web_login, ALICE, PASSWORD)
    assert response.status_code == 302 and took < prompt()
    ok, took = timed(imap_login, ports, ALICE, PASSWORD)
    assert ok and took < prompt()
    ok, took = timed(smtp_login, ports, BOB, PASSWORD)
    assert ok and took < prompt()


def test_known_client_never_waits_on_other_peoples_failures(servers, scaled, monkeypatch):
    monkeypatch.setattr(throttle, "MAX_DELAY", 3.0)
    ports = servers
    assert imap_login(ports, ALICE, PASSWORD)  # alice has used 127.0.0.1 before
    # A scanner on the same IP spends its budget for made-up addresses and goes on: any
    # address new to this IP now waits (bob has never logged in from it).
    for n in range(throttle.UNKNOWN_ADDRESS_BUDGET + 3):
        assert not imap_login(ports, f"scan{n}@example.org", WRONG)
    ok, took = timed(imap_login, ports, BOB, PASSWORD)
    assert ok and took >= 0.35
    # Someone guesses alice's password from many IPs: past ADDRESS_FREE_FAILURES the address
    # is slowed wherever the next guess comes from, a new place of alice's own included.
    for n in range(throttle.ADDRESS_FREE_FAILURES + 2):
        assert web_login(ALICE, WRONG, ip=f"10.9.9.{n}").status_code == 401
    response, took = timed(web_login, ALICE, PASSWORD, ip="10.1.1.1")
    assert response.status_code == 302 and took >= 0.35

    # alice from where she logged in before, while both attacks go on: at most
    # KNOWN_CLIENT_MAX_DELAY, on every protocol.
    logins = [
        lambda: imap_login(ports, ALICE, PASSWORD),
        lambda: smtp_login(ports, ALICE, PASSWORD),
        lambda: pop3_login(ports, ALICE, PASSWORD),
        lambda: web_login(ALICE, PASSWORD).status_code == 302,
    ]
    for n, login in enumerate(logins):
        # More failures of each attack just before (as the clients above made them), so that
        # a stranger would wait 3 s right now; the known client answers well within 1 s.
        for i in range(3):
            throttle.record_failure(f"again{n}.{i}@example.org", "127.0.0.1", user_exists=False)
            throttle.record_failure(ALICE, f"10.8.{n}.{i}", user_exists=True)
        assert throttle.wait_for(f"new{n}@example.org", "127.0.0.1") >= 2.5
        assert throttle.wait_for(ALICE, f"10.7.7.{n}") >= 2.5
        ok, took = timed(login)
        assert ok and took < 1.0, n
    assert throttle.wait_for(ALICE, "127.0.0.1") <= throttle.KNOWN_CLIENT_MAX_DELAY


def test_unknown_address_budget_is_per_client_ip(servers, scaled):
    ports = servers
    for n in range(throttle.UNKNOWN_ADDRESS_BUDGET - 1):
        assert not imap_login(ports, f"made-up{n}@example.org", WRONG)
    # A wrong password for an address that exists does not spend the budget.
    assert not imap_login(ports, ALICE, WRONG)
    assert throttle.wait_for("made-up-x@example.org", "127.0.0.1") == 0
    assert not imap_login(ports, "made-up-x@example.org", WRONG)
    # That was the last one of the budget: now every new address from this IP waits.
    assert throttle.wait_for("made-up-y@example.org", "127.0.0.1") == pytest.approx(0.1, abs=0.02)
    ok, took = timed(imap_login, ports, "made-up-y@example.org", WRONG)
    assert not ok and took >= 0.09
    ok, took = timed(pop3_login, ports, "made-up-z@example.org", WRONG)
    assert not ok and took >= 0.18
    # Another client IP has its own budget.
    assert throttle.wait_for("made-up-y@example.org", "10.2.2.2") == 0
    assert web_login("made-up-y@example.org", WRONG, ip="10.2.2.2").status_code == 401


def _attempt(protocol: str, ports, password: str) -> bool:
    if protocol == "smtp":
        return smtp_login(ports, ALICE, password)
    if protocol == "imap":
        return imap_login(ports, ALICE, password)
    if protocol == "pop3":
        return pop3_login(ports, ALICE, password)
    if protocol == "webmail":
        return web_login(ALICE, password).status_code == 302
    return admin_login("root", password).status_code == 302


@pytest.mark.parametrize("protocol", ["smtp", "imap", "pop3", "webmail", "admin"])
def test_many_wrong_passwords_for_one_address_are_slowed_on_every_protocol(
    servers, scaled, admin, protocol
):
    ports = servers
    user = "root" if protocol == "admin" else ALICE
    took = []
    for _ in range(7):
        ok, seconds = timed(_attempt, protocol, ports, WRONG)
        assert not ok
        took.append(seconds)
    # Free typos, then BASE_DELAY doubling to MAX_DELAY: 0, 0, 0.1, 0.2, 0.4, 0.8, 0.8.
    expected = [throttle.penalty(n, throttle.PAIR_FREE_FAILURES) for n in range(7)]
    assert expected[-1] == throttle.MAX_DELAY and expected[2] == 0.1
    for seconds, least in zip(took, expected, strict=True):
        assert least * 0.9 <= seconds < least + 2.0, (took, expected)  # 2.0: a busy machine
    assert took[5] > took[1]
    # The rest of 200 guesses, as the limiter counts them: the delay never drops back.
    waits = []
    for _ in range(193):
        throttle.record_failure(user, "127.0.0.1", user_exists=True)
        waits.append(throttle.wait_for(user, "127.0.0.1"))
    assert min(waits) >= throttle.MAX_DELAY * 0.9
    # Even the right password waits: this pair never logged in, so it is a stranger's guess.
    ok, seconds = timed(_attempt, protocol, ports, PASSWORD)
    assert ok and seconds >= throttle.MAX_DELAY * 0.9


def test_admin_login_refuses_with_retry_after_then_lets_the_right_password_in(
    admin, monkeypatch, transactional_db
):
    """Issue 14: 30 wrong admin passwords took 6.7 s, then the right one went in at once."""
    now = [1000.0]
    monkeypatch.setattr(throttle, "clock", lambda: now[0], raising=False)
    monkeypatch.setattr(
        "webmail.views.auth.sleep", lambda seconds: now.__setitem__(0, now[0] + seconds)
    )
    statuses = [admin_login("root", WRONG).status_code for _ in range(30)]
    assert statuses[:4] == [200] * 4  # the form again, with its error
    assert 429 in statuses
    response = admin_login("root", PASSWORD)
    assert response.status_code == 429
    wait = int(response["Retry-After"])
    assert wait >= 2
    assert f"Try again in {wait} seconds".encode() in response.content
    now[0] += wait
    assert admin_login("root", PASSWORD).status_code == 302


def test_parallel_guesses_past_the_longest_wait_get_a_temporary_failure_unchecked(
    servers, scaled, caplog
):
    """Parallel attempts each reserve the next slot; one whose slot is beyond MAX_DELAY is
    held MAX_DELAY and refused without a password check: SMTP 454 4.7.0 (RFC 4954 6), IMAP
    NO [UNAVAILABLE] (RFC 5530), POP3 -ERR [SYS/TEMP] (RFC 3206), with an `auth throttled`
    line. The right password is refused too: it was never checked."""
    import imaplib
    import poplib
    import smtplib

    from tests.support.logins import tls

    ports = servers
    for _ in range(throttle.PAIR_FREE_FAILURES + 3):
        throttle.record_failure(ALICE, "127.0.0.1", user_exists=True)

    def crowd() -> None:  # attempts in flight from other connections, slots 3 s ahead
        while throttle.admit(ALICE, "127.0.0.1", max_wait=60).wait < 3:
            pass

    crowd()
    with smtplib.SMTP_SSL("127.0.0.1", ports["submissions"], context=tls(), timeout=30) as smtp:
        smtp.ehlo()
        code, text = smtp.docmd("AUTH", "PLAIN " + _plain(ALICE, PASSWORD))
    assert (code, text[:5]) == (454, b"4.7.0")
    crowd()
    imap = imaplib.IMAP4_SSL("127.0.0.1", ports["imaps"], ssl_context=tls(), timeout=30)
    with pytest.raises(imaplib.IMAP4.error, match=r"\[UNAVAILABLE\]"):
        imap.login(ALICE, PASSWORD)
    imap.shutdown()
    crowd()
    pop = poplib.POP3_SSL("127.0.0.1", ports["pop3s"], context=tls(), timeout=30)
    pop.user(ALICE)
    with pytest.raises(poplib.error_proto, match=r"\[SYS/TEMP\]"):
        pop.pass_(PASSWORD)
    pop.close()
    throttled = [r.getMessage() for r in caplog.records if "auth throttled" in r.getMessage()]
    assert len(throttled) == 3
    assert all(f"client=127.0.0.1 user={ALICE} retry=" in line for line in throttled)
    assert not [r for r in caplog.records if "auth success" in r.getMessage()]


def _plain(user: str, password: str) -> str:
    import base64

    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()
