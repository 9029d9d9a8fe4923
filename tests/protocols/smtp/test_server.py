"""The listener family: connection caps, storage failures, clean shutdown."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from delivery import accept
from mailboxes.models import Message
from mailhost import eventloop, runner
from protocols.smtp import replies
from protocols.smtp.server import start
from tests.support.servers import running
from tests.support.smtp import Transcript

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = b"Subject: s\r\n\r\nbody\r\n"


def transaction_to_data(client: Transcript) -> None:
    client.ehlo()
    client.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    client.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
    client.command("DATA", replies.S354_START_DATA)


def test_start_returns_three_named_listeners(live_settings, transactional_db):
    with running(runner.SMTP) as ports:
        assert set(ports) == {"smtp", "submission", "submissions"}
        assert len(set(ports.values())) == 3 and all(ports.values())


def test_storage_failure_is_451_4_3_0_and_nothing_is_kept(smtp_ports, hosted, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(accept, "message_deliver", broken)
    client = Transcript(smtp_ports["smtp"])
    transaction_to_data(client)
    client.send(MESSAGE + b".\r\n")
    client.expect(replies.S451_LOCAL_ERROR)
    client.command("NOOP", replies.S250_NOOP)  # the session goes on
    client.close()
    assert not Message.objects.exists()


def test_connection_caps_total_and_per_address(live_settings, transactional_db, hosted):
    live_settings.MAILHOST_MAX_CONNECTIONS = 3
    live_settings.MAILHOST_MAX_CONNECTIONS_PER_IP = 2
    with running(runner.SMTP) as ports:
        first = Transcript(ports["smtp"])
        second = Transcript(ports["smtp"])
        third = Transcript(ports["smtp"], greet=False)
        assert third.line() == str(replies.S421_TOO_MANY_FROM_ADDRESS.format("mx.test.example"))
        assert third.closed()
        other_sock = socket.create_connection(
            ("127.0.0.1", ports["smtp"]), timeout=10, source_address=("127.0.0.2", 0)
        )
        other = other_sock.makefile("rb")
        assert other.readline().startswith(b"220 ")
        fourth_sock = socket.create_connection(
            ("127.0.0.1", ports["smtp"]), timeout=10, source_address=("127.0.0.3", 0)
        )
        line = fourth_sock.makefile("rb").readline().decode().rstrip()
        assert line == str(replies.S421_TOO_MANY_CONNECTIONS.format("mx.test.example"))
        # A slot frees up when a client leaves.
        first.command("QUIT", replies.S221_BYE)
        first.close()

        time.sleep(0.2)
        again = Transcript(ports["smtp"])
        assert again.greeting.startswith("220 ")
        for client in (second, third, again):
            client.close()
        other_sock.close()
        fourth_sock.close()


def test_shutdown_finishes_transactions_in_flight(live_settings, transactional_db, hosted):
    loop = eventloop.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        listeners = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
        port = next(lst.port for lst in listeners if lst.name == "smtp")
        idle = Transcript(port)
        idle.ehlo()
        busy = Transcript(port)
        transaction_to_data(busy)
        busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n")

        async def stop():
            for listener in listeners:
                listener.close()
            await asyncio.gather(*(listener.wait_closed() for listener in listeners))

        stopping = asyncio.run_coroutine_threadsafe(stop(), loop)
        idle.expect(replies.S421_SHUTTING_DOWN.format("mx.test.example"))
        assert idle.closed()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        busy.send(b"second half\r\n.\r\n")
        assert busy.line().startswith("250 2.0.0 OK queued as ")
        busy.expect(replies.S421_SHUTTING_DOWN.format("mx.test.example"))
        stopping.result(10)
        idle.close()
        busy.close()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
    assert Message.objects.get().subject == "in flight"


def test_shutdown_grace_is_bounded(live_settings, transactional_db, hosted):
    live_settings.MAILHOST_SHUTDOWN_GRACE = 1
    loop = eventloop.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        listeners = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
        port = next(lst.port for lst in listeners if lst.name == "smtp")
        stuck = Transcript(port)
        transaction_to_data(stuck)
        stuck.send(b"Subject: never finished\r\n")

        async def stop():
            for listener in listeners:
                listener.close()
            await asyncio.gather(*(listener.wait_closed() for listener in listeners))

        started = time.monotonic()
        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        assert 0.9 < time.monotonic() - started < 5
        assert stuck.closed()
        stuck.close()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
    assert not Message.objects.exists()
