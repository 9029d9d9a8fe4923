"""Load against `runmail` as a subprocess: many concurrent sessions, then a leak check.

- 200 concurrent SMTP sessions sending mail and 500 concurrent IMAP sessions (logged in,
  INBOX selected, FETCH, IDLE woken by the new mail) held for MAILHOST_LOAD_SECONDS (default
  5): every reply is the expected one (zero protocol errors), every accepted message is
  there afterwards.
- Memory stays flat: the server's RSS after MAILHOST_LEAK_SESSIONS short sessions (default
  1000; SMTP with DATA and IMAP LOGIN/SELECT/FETCH/LOGOUT, alternating) has not grown beyond a
  tolerance over its RSS after the first tenth of them.

The full run (10000 sessions, a minute of load):

    MAILHOST_LOAD_SECONDS=60 MAILHOST_LEAK_SESSIONS=10000 .venv/bin/python -m pytest \\
        tests/reliability/test_load.py -s

Runs on SQLite, or on PostgreSQL + Redis when DATABASE_URL / REDIS_URL are set.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import resource
import time
import uuid

import pytest

from bench.mailhost_process import Mailhost, PostgresDatabase, rss_bytes

SMTP_SESSIONS = int(os.environ.get("MAILHOST_LOAD_SMTP", "200"))
IMAP_SESSIONS = int(os.environ.get("MAILHOST_LOAD_IMAP", "500"))
HOLD_SECONDS = float(os.environ.get("MAILHOST_LOAD_SECONDS", "5"))
LEAK_SESSIONS = int(os.environ.get("MAILHOST_LEAK_SESSIONS", "1000"))
# No reply within this long is a hang (a server that lost a session), reported as such.
REPLY_TIMEOUT = 120
MAILBOXES = 10  # IMAP sessions spread over them (per-user connection limit raised below)
SETUP = """
from mailboxes import services
services.domain_create(name="example.org")
for i in range({count}):
    services.mailbox_create(address=f"user{{i}}@example.org", password="secret")
    services.message_deliver(
        raw=b"From: a@remote.test\\r\\nSubject: hello\\r\\n\\r\\nfirst message\\r\\n",
        recipients=[f"user{{i}}@example.org"],
    )
print("ok")
"""
COUNT = """
from mailboxes.models import Message
print(Message.objects.count())
"""


def raise_open_files(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < needed:
        pytest.skip(f"RLIMIT_NOFILE cannot reach {needed}")


@pytest.fixture(scope="module")
def loaded_mailhost(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("load")
    raise_open_files(4 * (SMTP_SESSIONS + IMAP_SESSIONS) + 1024)  # both ends live here
    database = None
    url = os.environ.get("DATABASE_URL")
    if url:
        database = PostgresDatabase(url, f"mh_load_{os.getpid()}_{uuid.uuid4().hex[:6]}")
        database.create()
    mailhost = Mailhost(
        tmp_path / "data",
        database_url=database.url if database else None,
        redis_url=os.environ.get("REDIS_URL"),
        extra_env={
            "MAILHOST_ALLOW_PLAINTEXT_AUTH": "true",  # TLS is not what is measured here
            "MAILHOST_MAX_CONNECTIONS": str(4 * (SMTP_SESSIONS + IMAP_SESSIONS)),
            "MAILHOST_MAX_CONNECTIONS_PER_IP": str(4 * (SMTP_SESSIONS + IMAP_SESSIONS)),
            "MAILHOST_IMAP_MAX_CONNECTIONS_PER_USER": str(IMAP_SESSIONS),
            "MAILHOST_SHUTDOWN_GRACE": "1",
            "MAILHOST_LOG_LEVEL": "WARNING",
        },
    )
    mailhost.data_dir.mkdir(parents=True)
    mailhost.manage("migrate", "-v0")
    mailhost.manage("shell", "-v0", "-c", SETUP.format(count=MAILBOXES))
    mailhost.start()
    try:
        yield mailhost
    finally:
        mailhost.stop()
        if database:
            database.drop()


class ProtocolError(Exception):
    pass


class Imap:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.counter = 0

    @classmethod
    async def connect(cls, port: int) -> Imap:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        client = cls(reader, writer)
        greeting = await asyncio.wait_for(reader.readline(), REPLY_TIMEOUT)
        if not greeting.startswith(b"* OK"):
            raise ProtocolError(f"greeting {greeting!r}")
        return client

    async def line(self) -> bytes:
        line = await asyncio.wait_for(self.reader.readline(), REPLY_TIMEOUT)
        if not line.endswith(b"\r\n"):
            raise ProtocolError(f"connection closed: {line!r}")
        while line.endswith(b"}\r\n") and b"{" in line:  # a literal: read it and the rest
            size = int(line[line.rindex(b"{") + 1 : -3])
            line += await self.reader.readexactly(size) + await self.reader.readline()
        return line

    async def command(self, text: str) -> list[bytes]:
        self.counter += 1
        tag = f"t{self.counter}".encode()
        self.writer.write(tag + b" " + text.encode() + b"\r\n")
        lines = []
        while True:
            line = await self.line()
            lines.append(line)
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise ProtocolError(f"{text!r} -> {line!r}")
                return lines

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


async def imap_session(
    port: int, user: str, hold: asyncio.Event, mail_seen: list, idling: list
) -> None:
    client = await Imap.connect(port)
    try:
        await client.command(f'LOGIN "{user}" "secret"')
        await client.command("SELECT INBOX")
        lines = await client.command("FETCH 1:* (FLAGS ENVELOPE BODY.PEEK[HEADER])")
        if not any(b"FETCH" in line for line in lines):
            raise ProtocolError(f"empty FETCH {lines!r}")
        client.writer.write(b"idle IDLE\r\n")
        if not (await client.line()).startswith(b"+ "):
            raise ProtocolError("no IDLE continuation")
        idling.append(user)
        woken = False
        while not hold.is_set():
            try:
                line = await asyncio.wait_for(client.line(), 0.5)
            except TimeoutError:
                continue
            if line.endswith(b" EXISTS\r\n"):
                woken = True
        client.writer.write(b"DONE\r\n")
        while not (line := await client.line()).startswith(b"idle "):
            woken = woken or line.endswith(b" EXISTS\r\n")
        if not line.startswith(b"idle OK"):
            raise ProtocolError(f"IDLE ended with {line!r}")
        lines = await client.command("NOOP")
        seen_by_noop = any(line.endswith(b" EXISTS\r\n") for line in lines)
        if not (woken or seen_by_noop):
            raise ProtocolError(f"{user}: the new mail never showed")
        await client.command("LOGOUT")
        mail_seen.append(woken)
    finally:
        await client.close()


async def smtp_reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await asyncio.wait_for(reader.readline(), REPLY_TIMEOUT)
        if len(line) < 4 or not line.endswith(b"\r\n"):
            raise ProtocolError(f"SMTP connection closed: {line!r}")
        if line[3:4] == b" ":
            return line


async def smtp_expect(reader, writer, data: bytes | None, code: bytes) -> None:
    if data is not None:
        writer.write(data)
    reply = await smtp_reply(reader)
    if not reply.startswith(code):
        raise ProtocolError(f"{(data or b'')[:40]!r} -> {reply!r}")


async def smtp_session(
    port: int, hold: asyncio.Event, sent: list, once: bool = False, first: int = 0
) -> None:
    """Deliver to user<first>, then the next mailboxes in turn, until `hold` is set."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await smtp_expect(reader, writer, None, b"220")
        await smtp_expect(reader, writer, b"EHLO load.test\r\n", b"250")
        for number in itertools.count(first):
            user = f"user{number % MAILBOXES}@example.org"
            await smtp_expect(reader, writer, b"MAIL FROM:<x@remote.test>\r\n", b"250")
            await smtp_expect(reader, writer, f"RCPT TO:<{user}>\r\n".encode(), b"250")
            await smtp_expect(reader, writer, b"DATA\r\n", b"354")
            body = f"From: x@remote.test\r\nTo: {user}\r\nSubject: load\r\n\r\nhi\r\n.\r\n"
            await smtp_expect(reader, writer, body.encode(), b"250")
            sent.append(user)
            if once or hold.is_set():
                break
            await asyncio.sleep(0.2)
        await smtp_expect(reader, writer, b"QUIT\r\n", b"221")
    finally:
        writer.close()


async def hold_and_load(mailhost: Mailhost) -> tuple[list, list, list, int, int]:
    hold = asyncio.Event()
    sent: list = []
    woken: list = []
    idling: list = []

    def open_imap(numbers) -> list:
        return [
            asyncio.ensure_future(
                imap_session(
                    mailhost.ports["imap"], f"user{i % MAILBOXES}@example.org", hold, woken, idling
                )
            )
            for i in numbers
        ]

    async def wait_idling(count: int, tasks: list) -> None:
        deadline = time.monotonic() + 120
        while len(idling) < count and time.monotonic() < deadline:
            if any(t.done() for t in tasks):
                return
            await asyncio.sleep(0.1)

    # One session per mailbox first: its password check (PBKDF2) fills the login cache, as
    # a user's first client does; the rest log in against the cache.
    t_start = time.monotonic()
    imap = open_imap(range(MAILBOXES))
    await wait_idling(MAILBOXES, imap)
    imap += open_imap(range(MAILBOXES, IMAP_SESSIONS))
    await wait_idling(IMAP_SESSIONS, imap)
    held = len(idling)
    smtp = [
        asyncio.ensure_future(smtp_session(mailhost.ports["smtp"], hold, sent, first=i))
        for i in range(SMTP_SESSIONS)
    ]
    t_smtp = time.monotonic()
    await asyncio.sleep(HOLD_SECONDS)
    # Hold on until every SMTP session has delivered once (session i delivers first to
    # user<i % MAILBOXES>, so every mailbox then has new mail for its IDLE sessions), or a task has failed.
    deadline = time.monotonic() + 120
    while len(sent) < SMTP_SESSIONS and time.monotonic() < deadline:
        if any(t.done() for t in imap + smtp):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1)  # the last deliveries reach IDLE
    peak = rss_bytes(mailhost.pid)
    print(f"imap logins {t_smtp - t_start:.1f}s, smtp held {time.monotonic() - t_smtp:.1f}s")
    hold.set()
    results = await asyncio.gather(*imap, *smtp, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    return errors, sent, woken, peak, held


def test_200_smtp_and_500_imap_sessions_at_once(loaded_mailhost):
    mailhost = loaded_mailhost
    # A hang must fail the test, never stall the run.
    errors, sent, woken, peak, held = asyncio.run(
        asyncio.wait_for(hold_and_load(mailhost), timeout=600)
    )
    assert not errors, f"{len(errors)} sessions failed, e.g. {errors[:5]}\n{mailhost.log_tail()}"
    assert len(woken) == IMAP_SESSIONS and held == IMAP_SESSIONS
    assert len(sent) >= SMTP_SESSIONS
    # Every session saw its mailbox's new mail (checked in the session); most during IDLE.
    assert sum(woken) >= IMAP_SESSIONS // 2, sum(woken)
    stored = int(mailhost.manage("shell", "-v0", "-c", COUNT).strip().splitlines()[-1])
    assert stored == MAILBOXES + len(sent)
    print(
        f"held imap={held} smtp={SMTP_SESSIONS} for {HOLD_SECONDS}s: "
        f"idle_woken={sum(woken)} messages={len(sent)} lost=0 protocol_errors=0 "
        f"peak_rss={peak >> 20} MiB"
    )


async def short_sessions(mailhost: Mailhost, count: int, concurrency: int = 8) -> None:
    hold = asyncio.Event()
    sent: list = []
    queue = iter(range(count))

    async def worker() -> None:
        for index in queue:
            if index % 2:
                await smtp_session(mailhost.ports["smtp"], hold, sent, once=True, first=index)
            else:
                client = await Imap.connect(mailhost.ports["imap"])
                try:
                    await client.command(f'LOGIN "user{index % MAILBOXES}@example.org" "secret"')
                    await client.command("SELECT INBOX")
                    # A bounded range: the mailboxes grow as SMTP delivers, and the work
                    # per session must not grow with them, or RSS would rise for that alone.
                    await client.command("FETCH 1 (FLAGS BODY.PEEK[])")
                    await client.command("FETCH * (FLAGS ENVELOPE)")
                    await client.command("LOGOUT")
                finally:
                    await client.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def test_memory_flat_across_many_sessions(loaded_mailhost):
    mailhost = loaded_mailhost
    warmup = max(100, LEAK_SESSIONS // 10)
    asyncio.run(asyncio.wait_for(short_sessions(mailhost, warmup), timeout=600))
    time.sleep(1)
    after_warmup = rss_bytes(mailhost.pid)
    started = time.monotonic()
    asyncio.run(asyncio.wait_for(short_sessions(mailhost, LEAK_SESSIONS - warmup), timeout=600))
    took = time.monotonic() - started
    time.sleep(1)
    after_all = rss_bytes(mailhost.pid)
    growth = after_all - after_warmup
    print(
        f"sessions={LEAK_SESSIONS} rss_after_{warmup}={after_warmup >> 20} MiB "
        f"rss_after_all={after_all >> 20} MiB growth={growth / 2**20:.1f} MiB in {took:.0f}s"
    )
    # A leak of even 2 KiB per session shows over 10000 sessions; allocator noise does not.
    assert growth < max(16 << 20, after_warmup * 0.10), (after_warmup, after_all)
