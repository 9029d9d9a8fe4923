"""SIGTERM with clients connected (issue 13): `manage.py runmail` as a subprocess; every idle
IMAP session gets `* BYE` (RFC 9051 7.1.5), in IDLE too, and every POP3 session a final
`-ERR [SYS/TEMP]` line, before the connection closes; nothing is simply dropped."""

from __future__ import annotations

import imaplib
import os
import poplib
import signal
import time
import uuid

import pytest

from bench.mailhost_process import Mailhost, PostgresDatabase
from protocols.imap import responses as imap_replies
from protocols.pop3 import responses as pop3_replies
from tests.support.smtp import client_tls_context as insecure

PASSWORD = "a long enough secret 42"
BYE = imap_replies.BYE_SHUTDOWN.untagged()
ERR = pop3_replies.encode(pop3_replies.ERR_SHUTDOWN)


@pytest.fixture
def mailhost(tmp_path):
    database = None
    url = os.environ.get("DATABASE_URL")
    if url and url.startswith("postgres"):
        database = PostgresDatabase(url, f"mh_shutdown_{os.getpid()}_{uuid.uuid4().hex[:6]}")
        database.create()
    server = Mailhost(
        tmp_path / "data",
        database_url=database.url if database else None,
        redis_url=os.environ.get("REDIS_URL"),
        extra_env={"MAILHOST_ALLOW_PLAINTEXT_AUTH": "1"},
    )
    try:
        server.manage("migrate", "-v0")
        server.manage("adddomain", "example.org")
        server.manage("addmailbox", "alice@example.org", "--password-stdin", stdin=PASSWORD + "\n")
        server.manage("addmailbox", "bob@example.org", "--password-stdin", stdin=PASSWORD + "\n")
        server.start()
        yield server
    finally:
        server.stop()
        if database is not None:
            database.drop()


def test_sigterm_says_bye_to_imap_and_err_to_pop3(mailhost):
    ports = mailhost.ports
    # IMAP: one in IDLE (plain), one logged in and idle (TLS), one not logged in.
    idling = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=10)
    idling.login("alice@example.org", PASSWORD)
    idling.select("INBOX")
    idling.send(b"i1 IDLE\r\n")
    assert idling.readline().startswith(b"+ ")
    selected = imaplib.IMAP4_SSL("127.0.0.1", ports["imaps"], ssl_context=insecure(), timeout=10)
    selected.login("alice@example.org", PASSWORD)
    selected.select("INBOX")
    anonymous = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=10)
    # One in the middle of an APPEND: it finishes (the message is stored), then BYE.
    appending = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=10)
    appending.login("alice@example.org", PASSWORD)
    message = b"Subject: in flight\r\n\r\n" + b"x" * 5000 + b"\r\n"
    appending.send(b"p1 APPEND INBOX {%d}\r\n" % len(message))
    assert appending.readline().startswith(b"+ ")
    appending.send(message[:1000])
    # POP3: one in TRANSACTION over TLS, one in AUTHORIZATION.
    pop = poplib.POP3_SSL("127.0.0.1", ports["pop3s"], context=insecure(), timeout=10)
    pop.user("bob@example.org")
    pop.pass_(PASSWORD)
    assert pop.stat() == (0, 0)
    pop_anonymous = poplib.POP3("127.0.0.1", ports["pop3"], timeout=10)
    pop_anonymous.capa()

    started = time.monotonic()
    mailhost.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    appending.send(message[1000:] + b"\r\n")
    assert appending.readline().startswith(b"p1 OK [APPENDUID ")
    assert appending.readline() == BYE
    assert appending.readline() == b""
    for client in (idling, selected, anonymous):
        assert client.readline() == BYE
        assert client.readline() == b""  # then the server closes
    for client in (pop, pop_anonymous):
        assert client.file.readline() == ERR
        assert client.file.readline() == b""
    for client in (idling, selected, anonymous, appending):
        client.shutdown()
    pop.close()
    pop_anonymous.close()
    assert mailhost.process.wait(30) == 0
    elapsed = time.monotonic() - started
    assert elapsed < 10, elapsed
    assert mailhost.count_messages("alice", "INBOX") == 1
