"""Crash safety: SIGKILL runmail at random moments during SMTP deliveries and IMAP APPENDs.

After every kill the server is restarted and the load goes on. At the end:
- every message that got 250 (SMTP) or OK (APPEND) is stored exactly once, with its bytes;
- every stored message is one a client sent in full (nothing partial, no row without bytes);
- APPENDUIDs acknowledged across all restarts strictly increase (UIDs never go backwards) and
  name the messages they were given for;
- the spool finishes every acknowledged outbound message after the last restart.

The run uses SQLite by default and PostgreSQL + Redis when DATABASE_URL / REDIS_URL are set.
CI runs MAILHOST_CRASH_KILLS (default 20) kills; for a longer run:

    MAILHOST_CRASH_KILLS=200 .venv/bin/python -m pytest tests/reliability/test_crash_kill.py
"""

from __future__ import annotations

import contextlib
import imaplib
import json
import os
import random
import re
import smtplib
import socket
import ssl
import threading
import time
import uuid
from pathlib import Path

import pytest

from bench.mailhost_process import Mailhost, PostgresDatabase
from tests.support.smtp import RelaySink

KILLS = int(os.environ.get("MAILHOST_CRASH_KILLS", "20"))
TOKEN = re.compile(rb"crash-token-([0-9a-f]{32})")

VERIFY_SCRIPT = """
import json, hashlib
from mailboxes.models import Message
from mailboxes.selectors import blob_read
from delivery.models import OutboundRecipient
rows = []
for m in Message.objects.select_related("folder__mailbox", "blob").order_by("id"):
    try:
        raw = blob_read(m.blob)
    except OSError as exc:
        raw = None
    rows.append({
        "mailbox": m.folder.mailbox.local_part, "folder": m.folder.name, "uid": m.uid,
        "uidvalidity": m.folder.uidvalidity, "size": m.size,
        "raw": raw.decode("latin-1") if raw is not None else None,
    })
spool = [
    {k: str(v) for k, v in row.items()}
    for row in OutboundRecipient.objects.values(
        "status", "attempts", "last_reply", "lease_until", "next_attempt_at", "message_id"
    )
]
print(json.dumps({"messages": rows, "spool": spool}))
"""


def _message(token: str, *, to: str, size: int) -> bytes:
    filler = ("x" * 70 + "\r\n") * (size // 72)
    return (
        f"From: Sender <x@remote.test>\r\nTo: {to}\r\nSubject: crash-token-{token}\r\n"
        f"Message-ID: <{token}@remote.test>\r\n\r\ncrash-token-{token}\r\n{filler}"
    ).encode()


class Load:
    """SMTP senders and an IMAP appender, each recording what the server acknowledged."""

    def __init__(self, mailhost: Mailhost) -> None:
        self.mailhost = mailhost
        self.stop = threading.Event()
        self.sent: dict[str, bytes] = {}  # every message a client started to send
        self.smtp_acked: dict[str, bool] = {}  # token -> had a remote recipient
        self.append_acked: dict[str, tuple[int, int]] = {}  # token -> (uidvalidity, uid)
        self.lock = threading.Lock()
        # Six SMTP senders, so that deliveries share transactions (mailboxes.groupcommit) and
        # kills land inside shared ones too.
        self.threads = [
            threading.Thread(target=self._smtp, args=(i,), daemon=True) for i in range(6)
        ] + [threading.Thread(target=self._imap, daemon=True)]

    def wait_progress(self, timeout: float) -> None:
        """Wait until both SMTP and APPEND have had a new acknowledgement (or time out)."""
        with self.lock:
            before = (len(self.smtp_acked), len(self.append_acked))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                now = (len(self.smtp_acked), len(self.append_acked))
            if now[0] > before[0] and now[1] > before[1]:
                return
            time.sleep(0.05)

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _smtp(self, index: int) -> None:
        rng = random.Random(index)
        while not self.stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", self.mailhost.ports["smtp"], timeout=10) as client:
                    while not self.stop.is_set():
                        token = uuid.uuid4().hex
                        remote = rng.random() < 0.3
                        rcpts = ["alice@example.org"] + (["r@remote.example"] if remote else [])
                        raw = _message(
                            token, to=", ".join(rcpts), size=rng.choice([500, 5000, 50000])
                        )
                        with self.lock:
                            self.sent[token] = raw
                        # The submission port would need AUTH; relaying on 25 is refused, so
                        # remote recipients arrive through an alias pointing outside.
                        envelope = ["alice@example.org"] + (["fwd@example.org"] if remote else [])
                        client.sendmail("x@remote.test", envelope, raw)
                        with self.lock:
                            self.smtp_acked[token] = remote
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)

    def _imap(self) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        while not self.stop.is_set():
            try:
                client = imaplib.IMAP4_SSL(
                    "127.0.0.1", self.mailhost.ports["imaps"], ssl_context=context, timeout=10
                )
                client.login("bob@example.org", "a-long-secret")
                while not self.stop.is_set():
                    token = uuid.uuid4().hex
                    raw = _message(token, to="bob@example.org", size=3000)
                    with self.lock:
                        self.sent[token] = raw
                    status, data = client.append("INBOX", None, None, raw)
                    # The tagged OK carries [APPENDUID uidvalidity uid] (RFC 4315).
                    match = re.search(rb"APPENDUID (\d+) (\d+)", data[0] or b"")
                    if status == "OK" and match:
                        with self.lock:
                            self.append_acked[token] = (int(match[1]), int(match[2]))
            except (OSError, imaplib.IMAP4.error, ssl.SSLError, EOFError):
                time.sleep(0.05)


@pytest.fixture
def crash_mailhost(tmp_path: Path):
    database = None
    database_url = os.environ.get("DATABASE_URL")
    if database_url:
        database = PostgresDatabase(database_url, f"mh_crash_{os.getpid()}")
        database.create()
        database_url = database.url
    sink = RelaySink()
    sink.controller.start()
    mailhost = Mailhost(
        tmp_path / "data",
        database_url=database_url,
        redis_url=os.environ.get("REDIS_URL"),
        extra_env={
            "MAILHOST_RELAYHOST": f"127.0.0.1:{sink.port}",
            "MAILHOST_SWEEP_INTERVAL": "1",
            "MAILHOST_DELIVERY_LEASE": "3",
            "MAILHOST_RETRY_SCHEDULE": "1,1,1,1",
            "MAILHOST_SHUTDOWN_GRACE": "1",
        },
    )
    mailhost.data_dir.mkdir(parents=True)
    mailhost.manage("migrate", "-v0")
    mailhost.manage("adddomain", "example.org")
    for address in ("alice@example.org", "bob@example.org"):
        mailhost.manage("addmailbox", address, "--password-stdin", stdin="a-long-secret\n")
    mailhost.manage("addalias", "fwd@example.org", "r@remote.example")
    try:
        yield mailhost, sink
    finally:
        with contextlib.suppress(Exception):
            mailhost.stop(grace=5)
        sink.controller.stop()
        if database:
            database.drop()


def _kill(mailhost: Mailhost) -> None:
    assert mailhost.process is not None
    mailhost.process.kill()
    mailhost.process.wait(10)
    mailhost.process = None


def _wait_port_free(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
                return
            except OSError:
                time.sleep(0.1)


def test_sigkill_during_smtp_and_append_loses_nothing(crash_mailhost):
    mailhost, sink = crash_mailhost
    _kill_and_check(mailhost, sink, KILLS)


SIEVE_SCRIPT = """require ["fileinto", "mailbox", "copy"];
fileinto :create "Filed";
redirect :copy "r2@remote.example";
"""
GIVE_SCRIPT = f"""
from mailboxes import services
from mailboxes.selectors import mailbox_get
services.sievescript_put(
    mailbox=mailbox_get("alice@example.org"), name="s", text={SIEVE_SCRIPT!r}, activate=True
)
"""


def test_sigkill_with_a_sieve_script_loses_nothing(crash_mailhost):
    """The same, with alice's script filing every message into a folder it creates and
    redirecting a copy out: every acknowledged message is filed once and its redirect
    leaves (the filing and the spooling commit together, or neither does)."""
    mailhost, sink = crash_mailhost
    mailhost.manage("shell", "-v0", "-c", GIVE_SCRIPT)
    state, acked_smtp = _kill_and_check(mailhost, sink, max(KILLS // 2, 3))
    folders = {row["folder"] for row in state["messages"] if row["mailbox"] == "alice"}
    assert folders == {"Filed"}
    redirected = {
        TOKEN.search(raw)[1].decode()
        for raw in sink.received
        if b"Delivered-To: alice@example.org\r\n" in raw and TOKEN.search(raw)
    }
    assert set(acked_smtp) <= redirected, f"redirects lost: {set(acked_smtp) - redirected}"


def _kill_and_check(mailhost: Mailhost, sink: RelaySink, kills: int) -> tuple[dict, dict]:
    rng = random.Random(1234)
    load = Load(mailhost)
    mailhost.start()
    load.start()
    for _kill_number in range(kills):
        # Let both clients make progress (logins are deliberately slow), then kill at a
        # random moment: mid-greeting, mid-DATA, mid-APPEND literal, mid-commit.
        load.wait_progress(timeout=30)
        time.sleep(rng.uniform(0.0, 0.8))
        _kill(mailhost)
        # Every listener's port: the workers die with the supervisor (PR_SET_PDEATHSIG), each
        # closing its sockets as it exits, so SMTP's can be free while IMAP's is not yet.
        for port in mailhost.ports.values():
            _wait_port_free(port)
        mailhost.start()
    time.sleep(1)
    load.join()

    # Let the spool finish what was acknowledged, then look at the store.
    deadline = time.monotonic() + 90
    while True:
        output = mailhost.manage("shell", "-v0", "-c", VERIFY_SCRIPT)
        state = json.loads(output.strip().splitlines()[-1])
        pending = [s for s in state["spool"] if s["status"] != "delivered"]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(1)
    mailhost.stop()
    assert not pending, f"spool unfinished: {pending}\n{mailhost.log_tail(60)}"

    acked_smtp = dict(load.smtp_acked)
    acked_append = dict(load.append_acked)
    assert len(acked_smtp) > kills and len(acked_append) > kills // 2, "too little load"

    stored: dict[tuple[str, str], list[dict]] = {}
    for row in state["messages"]:
        assert row["raw"] is not None, f"message row without its bytes: {row}"
        raw = row["raw"].encode("latin-1")
        assert len(raw) == row["size"]
        token = TOKEN.search(raw)[1].decode()
        original = load.sent[token]
        if row["mailbox"] == "bob":
            assert raw == original, "APPENDed bytes changed"
        else:
            assert raw.endswith(original), "delivered bytes are not the sent message"
        stored.setdefault((row["mailbox"], token), []).append(row)

    for token in acked_smtp:
        assert len(stored.get(("alice", token), [])) == 1, f"SMTP {token} not stored once"
    for token, (validity, uid) in acked_append.items():
        rows = stored.get(("bob", token), [])
        assert len(rows) == 1, f"APPEND {token} not stored once"
        assert (rows[0]["uidvalidity"], rows[0]["uid"]) == (validity, uid)
    # No row is stored twice for one token (a retried DATA after a kill is a new token).
    assert all(len(rows) == 1 for rows in stored.values())

    # UIDs never go backwards: acknowledged APPENDUIDs in acknowledgement order increase.
    uids = [uid for _validity, uid in acked_append.values()]
    assert uids == sorted(uids) and len(set(uids)) == len(uids)
    assert len({validity for validity, _uid in acked_append.values()}) == 1

    remote_tokens = {t for t, remote in acked_smtp.items() if remote}
    delivered = {TOKEN.search(raw)[1].decode() for raw in sink.received if TOKEN.search(raw)}
    assert remote_tokens <= delivered, f"outbound lost: {remote_tokens - delivered}"
    print(
        f"kills={kills} smtp_acked={len(acked_smtp)} append_acked={len(acked_append)} "
        f"stored={len(state['messages'])} outbound={len(remote_tokens)} lost=0"
    )
    return state, acked_smtp
