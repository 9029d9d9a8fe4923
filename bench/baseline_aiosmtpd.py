"""The Python ceiling: a bare aiosmtpd server whose DATA handler only answers 250.

Run as its own process (so it has a core and a GIL of its own, like Mailhost):

    python bench/baseline_aiosmtpd.py --port 2526

It prints "ready" once listening. The same handler, counting, is the outbound sink
(`Sink`), run inside the bench on 127.0.0.x port 25-like high ports.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading
import time

from aiosmtpd.smtp import SMTP


class OkHandler:
    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001
        return "250 OK"


class CountingHandler:
    def __init__(self) -> None:
        self.count = 0
        self.recipients = 0
        self.sessions = 0  # EHLO/HELO greetings: one per connection (no STARTTLS here)
        self.arrivals: list[float] = []  # perf_counter() of each message
        self.signed = 0  # messages that arrived with a DKIM-Signature field
        self.changed = threading.Condition()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: ANN001
        self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):  # noqa: ANN001
        self.sessions += 1
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001
        with self.changed:
            self.count += 1
            self.recipients += len(envelope.rcpt_tos)
            self.arrivals.append(time.perf_counter())
            head = envelope.content.split(b"\r\n\r\n", 1)[0].lower()
            if head.startswith(b"dkim-signature:") or b"\ndkim-signature:" in head:
                self.signed += 1
            self.changed.notify_all()
        return "250 OK"

    def wait_for(self, recipients: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.recipients >= recipients, timeout)


class Sink:
    """An aiosmtpd sink on its own loop in a thread, counting what it is handed."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.handler = CountingHandler()
        self.loop = asyncio.new_event_loop()
        self.server = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

        async def serve():  # noqa: ANN202
            return await self.loop.create_server(
                lambda: SMTP(self.handler, hostname="sink.bench.test"), self.host, self.port
            )

        self.server = asyncio.run_coroutine_threadsafe(serve(), self.loop).result(10)

    def stop(self) -> None:
        if self.server is not None:
            self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(OkHandler(), hostname="baseline.bench.test"), host, port, backlog=1024
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
