"""A password change ends the mailbox's open IMAP, POP3 and ManageSieve sessions (real imaplib,
poplib and a ManageSieve socket), through the SIGN_OUT change event: in this process, and from
another process through Redis."""

from __future__ import annotations

import imaplib
import poplib

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from mailhost import runner
from protocols.imap import responses as imap_responses
from protocols.managesieve import responses as sieve_responses
from protocols.pop3 import responses as pop3_responses
from tests.protocols.managesieve.conftest import Client as SieveClient
from tests.protocols.managesieve.conftest import secure_login
from tests.support.logins import tls
from tests.support.servers import run_elsewhere, running
from tests.webmail.conftest import release_server_connections, sign_in

pytestmark = pytest.mark.django_db(transaction=True)
NEW_PASSWORD = "a much longer password 2026"


@pytest.fixture
def ports(live_settings):
    live_settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = False
    with running(runner.IMAP, runner.POP3, runner.MANAGESIEVE) as ports:
        yield ports
    release_server_connections()


def imap_session(port: int, password: str = "secret") -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    client.starttls(ssl_context=tls())
    client.login("alice@example.org", password)
    client.select("INBOX")
    return client


def change_password_on_the_web() -> None:
    web = Client()
    sign_in(web, "alice@example.org", "secret")
    response = web.post(
        "/settings/account/password/",
        {"old_password": "secret", "new_password": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302


def test_password_change_ends_imap_pop3_and_managesieve_sessions(ports, alice, bob):
    imap = imap_session(ports["imap"])
    idling = imap_session(ports["imap"])
    idling.send(b"i1 IDLE\r\n")
    assert idling.readline() == imap_responses.CONTINUE_IDLE
    bobs = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=10)
    bobs.starttls(ssl_context=tls())
    bobs.login("bob@example.org", "hunter2")
    pop = poplib.POP3("127.0.0.1", ports["pop3"], timeout=10)
    pop.stls(context=tls())
    pop.user("alice@example.org")
    pop.pass_("secret")
    sieve = SieveClient(ports["managesieve"], timeout=10)
    sieve.response()  # the greeting: capabilities, then OK
    secure_login(sieve)

    change_password_on_the_web()

    # Each session waiting for a command hears at once and is closed.
    assert imap.readline() == imap_responses.BYE_SIGNED_OUT.untagged()
    assert imap.readline() == b""
    assert idling.readline() == imap_responses.BYE_SIGNED_OUT.untagged()
    assert idling.readline() == b""
    assert pop.file.readline() == pop3_responses.encode(pop3_responses.ERR_SIGNED_OUT)
    assert pop.file.readline() == b""
    assert sieve.line() == sieve_responses.BYE_SIGNED_OUT
    assert sieve.closed()
    # Another mailbox's session goes on; a session signed in with the new password too.
    assert bobs.noop()[0] == "OK"
    fresh = imap_session(ports["imap"], NEW_PASSWORD)
    assert fresh.noop()[0] == "OK"
    fresh.logout()
    bobs.logout()


@pytest.mark.skipif(not settings.REDIS_URL, reason="change events cross processes via Redis")
def test_a_password_change_in_another_process_ends_the_imap_session(ports, alice, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the other process needs the same server database")
    imap = imap_session(ports["imap"])
    change = (
        "from mailboxes import selectors, services\n"
        "mailbox = selectors.mailbox_get('alice@example.org')\n"
        f"services.mailbox_change_password(mailbox=mailbox, old_password='secret', "
        f"new_password={NEW_PASSWORD!r})\n"
    )
    assert run_elsewhere(change, tmp_path / "other") == 0
    assert imap.readline() == imap_responses.BYE_SIGNED_OUT.untagged()
    assert imap.readline() == b""
