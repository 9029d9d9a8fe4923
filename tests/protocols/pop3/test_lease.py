"""One POP3 session per maildrop: the lease (database or Redis), across sessions and processes."""

from __future__ import annotations

import os
import poplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import global_settings

from bench.mailhost_process import free_port as _free_port
from mailboxes.selectors import folder_get
from protocols.pop3 import lease
from protocols.pop3 import responses as R
from tests.protocols.pop3.conftest import ADDRESS, PASSWORD, Client, deliver, login

pytestmark = pytest.mark.django_db(transaction=True)

REDIS_URL = os.environ.get("REDIS_URL")


@pytest.fixture(params=["database", "redis"])
def backend(request, settings):
    if request.param == "redis":
        if not REDIS_URL:
            pytest.skip("REDIS_URL is not set: the Redis lease is tested in the Redis run")
        settings.REDIS_URL = REDIS_URL
        lease._redis_client = None
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{lease.REDIS_PREFIX}*"):
            client.delete(key)
    else:
        settings.REDIS_URL = None
    yield request.param
    lease._redis_client = None


def test_only_one_holder(backend, mailbox):
    a, b = lease.new_holder(), lease.new_holder()
    assert lease.acquire(mailbox.pk, a).outcome is lease.Outcome.ACQUIRED
    assert lease.acquire(mailbox.pk, b).outcome is lease.Outcome.IN_USE
    lease.release(mailbox.pk, b)  # not b's to give back
    assert lease.acquire(mailbox.pk, b).outcome is lease.Outcome.IN_USE
    lease.release(mailbox.pk, a)
    assert lease.acquire(mailbox.pk, b).outcome is lease.Outcome.ACQUIRED
    assert lease.renew(mailbox.pk, b)
    assert not lease.renew(mailbox.pk, a)


def test_take_over_names_the_previous_holder(backend, mailbox):
    old, new, newest = lease.new_holder(), lease.new_holder(), lease.new_holder()
    assert lease.acquire(mailbox.pk, old, take_over=True) == lease.Attempt(lease.Outcome.ACQUIRED)
    assert lease.acquire(mailbox.pk, new, take_over=True) == lease.Attempt(
        lease.Outcome.TAKEN_OVER, previous=old
    )
    assert not lease.renew(mailbox.pk, old)  # the old holder learns it at its renewal
    lease.release(mailbox.pk, old)  # and giving back what is no longer its own does nothing
    assert lease.acquire(mailbox.pk, newest).outcome is lease.Outcome.IN_USE
    assert lease.acquire(mailbox.pk, newest, take_over=True).previous == new
    lease.release(mailbox.pk, newest)
    assert lease.acquire(mailbox.pk, old, take_over=True).outcome is lease.Outcome.ACQUIRED


def test_login_delay_holds_against_take_over(backend, mailbox, settings):
    settings.MAILHOST_POP3_LOGIN_DELAY = 60
    first = lease.new_holder()
    assert lease.acquire(mailbox.pk, first).outcome is lease.Outcome.ACQUIRED
    attempt = lease.acquire(mailbox.pk, lease.new_holder(), take_over=True)
    assert attempt.outcome is lease.Outcome.LOGIN_DELAY
    assert lease.renew(mailbox.pk, first)


def test_held_commits_only_for_the_holder(backend, mailbox):
    from mailboxes.models import Mailbox

    holder = lease.new_holder()
    lease.acquire(mailbox.pk, holder)
    with lease.held(mailbox.pk, holder):
        Mailbox.objects.filter(pk=mailbox.pk).update(quota=1)
    # Taken over before the transaction: nothing in it runs.
    lease.acquire(mailbox.pk, lease.new_holder(), take_over=True)
    with pytest.raises(lease.LeaseLost), lease.held(mailbox.pk, holder):
        pytest.fail("ran without the lease")
    # Taken over while the transaction runs (Redis: seen just before the commit; database:
    # the takeover waits for the commit, so only Redis can be overtaken here).
    holder = lease.new_holder()
    lease.acquire(mailbox.pk, holder, take_over=True)
    if backend == "redis":
        with pytest.raises(lease.LeaseLost), lease.held(mailbox.pk, holder):
            Mailbox.objects.filter(pk=mailbox.pk).update(quota=2)
            lease.acquire(mailbox.pk, lease.new_holder(), take_over=True)
    assert Mailbox.objects.get(pk=mailbox.pk).quota == 1


def test_a_database_take_over_waits_for_an_update_in_progress(backend, mailbox):
    """No window with the database lease: UPDATE's deletes and a takeover are serialized."""
    if backend != "database":
        pytest.skip("the Redis lease has a moment between check and commit (README)")
    from django.db import connection

    from mailboxes.models import Mailbox

    holder, attempts = lease.new_holder(), []
    lease.acquire(mailbox.pk, holder)

    def take_over() -> None:
        try:
            attempts.append(lease.acquire(mailbox.pk, lease.new_holder(), take_over=True))
        finally:
            connection.close()

    thread = threading.Thread(target=take_over)
    with lease.held(mailbox.pk, holder):
        Mailbox.objects.filter(pk=mailbox.pk).update(quota=3)
        thread.start()
        thread.join(1)
        assert thread.is_alive() and not attempts  # waiting for this commit
    thread.join(30)
    assert attempts == [lease.Attempt(lease.Outcome.TAKEN_OVER, previous=holder)]
    assert Mailbox.objects.get(pk=mailbox.pk).quota == 3


def test_a_lease_nobody_renews_runs_out(backend, mailbox, settings):
    # A front end that crashed stops renewing; its lease must not lock the user out for good.
    settings.MAILHOST_POP3_LEASE_SECONDS = 1
    crashed, next_one = lease.new_holder(), lease.new_holder()
    assert lease.acquire(mailbox.pk, crashed).outcome is lease.Outcome.ACQUIRED
    time.sleep(0.5)
    assert lease.renew(mailbox.pk, crashed)
    time.sleep(0.7)  # 1.2 s after taking it, but renewed at 0.5 s
    assert lease.acquire(mailbox.pk, next_one).outcome is lease.Outcome.IN_USE
    time.sleep(1.2)
    assert lease.acquire(mailbox.pk, next_one).outcome is lease.Outcome.ACQUIRED
    assert not lease.renew(mailbox.pk, crashed)


def test_login_delay(backend, mailbox, settings):
    settings.MAILHOST_POP3_LOGIN_DELAY = 1
    first, second = lease.new_holder(), lease.new_holder()
    assert lease.acquire(mailbox.pk, first).outcome is lease.Outcome.ACQUIRED
    lease.release(mailbox.pk, first)
    assert lease.acquire(mailbox.pk, second).outcome is lease.Outcome.LOGIN_DELAY
    time.sleep(1.1)
    assert lease.acquire(mailbox.pk, second).outcome is lease.Outcome.ACQUIRED


def test_second_session_gets_in_use_until_the_first_quits(client_for, mailbox, settings):
    settings.MAILHOST_POP3_TAKEOVER = False  # takeover: tests/protocols/pop3/test_takeover.py
    deliver(b"Subject: hi\r\n\r\nbody\r\n")
    first = client_for()
    assert login(first) == R.ok_login(1, 21)
    second = client_for()
    assert login(second) == R.ERR_IN_USE
    # The refused session stays in AUTHORIZATION and may try again (RFC 1939 4).
    assert first.command("DELE 1") == R.ok_dele(1)
    assert first.command("QUIT") == R.ok_bye_update(1)
    assert first.closed()
    assert login(second) == R.ok_login(0, 0)


def test_quit_frees_the_maildrop_before_its_reply(client_for, mailbox, settings, monkeypatch):
    # fetchmail and friends log in again the moment they read QUIT's +OK, perhaps on another
    # front end; a slow release (a loaded database) must not make that login see [IN-USE].
    settings.MAILHOST_POP3_TAKEOVER = False
    release = lease.release

    def slow_release(mailbox_id: int, holder: str) -> None:
        time.sleep(0.3)
        release(mailbox_id, holder)

    monkeypatch.setattr(lease, "release", slow_release)
    for _ in range(3):
        first = client_for()
        assert login(first) == R.ok_login(0, 0)
        second = client_for()
        assert second.command(f"USER {ADDRESS}") == R.OK_USER
        assert first.command("QUIT") == R.ok_bye_update(0)
        assert second.command(f"PASS {PASSWORD}") == R.ok_login(0, 0)
        assert second.command("QUIT") == R.ok_bye_update(0)


def test_login_delay_over_the_wire(client_for, mailbox, settings):
    settings.MAILHOST_POP3_LOGIN_DELAY = 60
    first = client_for()
    assert login(first) == R.ok_login(0, 0)
    assert first.command("QUIT") == R.ok_bye_update(0)
    second = client_for()
    assert login(second) == R.ERR_LOGIN_DELAY


def test_the_store_stays_writable_during_a_session(client_for, mailbox):
    """The lease is POP3's alone: the store stays writable while a POP3 session is open."""
    from mailboxes import services
    from mailboxes.selectors import folder_get

    first = client_for()
    login(first)
    services.message_append(folder=folder_get(mailbox, "INBOX"), raw=b"Subject: x\r\n\r\ny\r\n")
    assert first.command("STAT") == R.ok_stat(0, 0)


def _database_url() -> str:
    from django.db import connection

    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    host = params.get("HOST") or "127.0.0.1"
    port = params.get("PORT") or 5432
    user = params.get("USER") or ""
    return f"postgres://{user}@{host}:{port}/{params['NAME']}"


@pytest.fixture
def shared_mailbox(settings, make_mailbox):
    """The mailbox, with a password hash another process (default hashers) can check."""
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    return make_mailbox(ADDRESS, PASSWORD)


@contextmanager
def other_front_end(settings, tmp_path, *, takeover: bool) -> Iterator[int]:
    """Another `manage.py runpop3` process on the same database (and Redis): its POP3 port."""
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "MAILHOST_DATA_DIR": str(tmp_path / "other"),
        "MAILHOST_BIND": "127.0.0.1",
        "MAILHOST_HOSTNAME": "other.test.example",
        "MAILHOST_ALLOW_PLAINTEXT_AUTH": "1",
        "MAILHOST_POP3_TAKEOVER": "1" if takeover else "0",
    }
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    else:
        env.pop("REDIS_URL", None)
    repo = Path(__file__).resolve().parents[3]
    for _ in range(3):
        # A free port may be taken by another test's server before this process binds it.
        port = _free_port()
        env.update(MAILHOST_POP3_PORT=str(port), MAILHOST_POP3S_PORT=str(_free_port()))
        other = subprocess.Popen(
            [sys.executable, "manage.py", "runpop3"],
            cwd=repo,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if _greets(other, port):
            break
        other.terminate()
        other.wait(30)
    else:
        raise AssertionError(other.stderr.read().decode())
    try:
        yield port
    finally:
        other.terminate()
        other.wait(30)


def _greets(process: subprocess.Popen, port: int) -> bool:
    """True once `process` answers on `port` (not some other server that took the port)."""
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                if sock.recv(100).startswith(b"+OK other.test.example "):
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def test_one_session_per_maildrop_across_processes(pop3, settings, shared_mailbox, tmp_path):
    """A second front end (another `manage.py runpop3` process) refuses the same maildrop
    when MAILHOST_POP3_TAKEOVER is off."""
    deliver(b"Subject: one\r\n\r\nbody\r\n")
    with other_front_end(settings, tmp_path, takeover=False) as port:
        here = poplib.POP3("127.0.0.1", pop3["pop3"], timeout=30)
        here.user(ADDRESS)
        here.pass_(PASSWORD)

        there = Client(port)
        assert there.line() == R.greeting("other.test.example")
        assert login(there) == R.ERR_IN_USE

        here.dele(1)
        here.quit()
        assert login(there) == R.ok_login(0, 0)
        assert there.command("QUIT") == R.ok_bye_update(0)
        there.close()


def test_another_front_end_takes_the_maildrop_over(pop3, settings, shared_mailbox, tmp_path):
    """The phone comes back through another front end: it takes the maildrop over, and the
    half-open session here ends at its next renewal, its DELE discarded."""
    settings.MAILHOST_POP3_LEASE_SECONDS = 10  # renewed every 3.3 s here
    raw = b"Subject: one\r\n\r\nbody\r\n"
    deliver(raw)
    with other_front_end(settings, tmp_path, takeover=True) as port:
        here = Client(pop3["pop3"])
        here.line()
        assert login(here) == R.ok_login(1, len(raw))
        assert here.command("DELE 1") == R.ok_dele(1)

        there = Client(port)
        assert there.line() == R.greeting("other.test.example")
        assert login(there) == R.ok_login(1, len(raw))
        here.sock.settimeout(settings.MAILHOST_POP3_LEASE_SECONDS)
        assert here.line() == R.ERR_TAKEN_OVER
        assert here.closed()
        assert folder_get(shared_mailbox, "INBOX").message_count == 1
        assert there.command("RETR 1") == R.ok_retr(len(raw))
        assert there.raw_multiline() == raw
        assert there.command("QUIT") == R.ok_bye_update(0)
        there.close()


def test_session_renews_its_lease_and_ends_when_it_is_taken(client_for, mailbox, settings):
    settings.MAILHOST_POP3_LEASE_SECONDS = 1  # renewed every third of a second
    settings.MAILHOST_POP3_TAKEOVER = False
    first = client_for()
    assert login(first) == R.ok_login(0, 0)
    time.sleep(1.5)  # longer than the lease: only renewal keeps it
    second = client_for()
    assert login(second) == R.ERR_IN_USE
    assert first.command("NOOP") == R.OK
    # Someone else holds the maildrop now (as after a long database outage): the session
    # must stop rather than work on a maildrop it no longer owns.
    if settings.REDIS_URL:
        import redis

        redis.Redis.from_url(settings.REDIS_URL).set(
            f"{lease.REDIS_PREFIX}lease:{mailbox.pk}", "thief", px=60_000
        )
    else:
        from protocols.pop3.models import MaildropLease

        MaildropLease.objects.filter(mailbox_id=mailbox.pk).update(holder="thief")
    time.sleep(1)
    assert first.line() == R.ERR_TAKEN_OVER
    assert first.closed()


def test_server_shutdown_ends_sessions_without_update_and_frees_leases(pop3_settings, mailbox):
    from mailboxes.selectors import folder_get
    from mailhost import runner
    from tests.support.servers import running

    raw = b"Subject: stays\r\n\r\nbody\r\n"
    deliver(raw)
    with running(runner.POP3) as ports:
        client = Client(ports["pop3"])
        client.line()
        assert login(client) == R.ok_login(1, len(raw))
        assert client.command("DELE 1") == R.ok_dele(1)
    # The listeners are closed and their sessions ended before `running` returns, each
    # with a last -ERR [SYS/TEMP] line.
    assert client.line() == R.ERR_SHUTDOWN
    assert client.closed()
    assert folder_get(mailbox, "INBOX").message_count == 1
    assert lease.acquire(mailbox.pk, lease.new_holder()).outcome is lease.Outcome.ACQUIRED
