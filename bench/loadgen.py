"""SMTP load: Postfix's smtp-source where installed, else this asyncio load generator.

Both send `messages` messages of `size` payload bytes over `sessions` parallel sessions, either
with a new connection per message or reusing each connection (smtp-source -d). The time is the
wall time from the first connect to the last reply.

    python bench/loadgen.py 127.0.0.1:2525 --messages 1000 --sessions 20 --size 1024 --reuse
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import time
from dataclasses import dataclass, field

from reference_postfix import SMTP_SOURCE, smtp_source_available

LINE = b"X" * 78 + b"\r\n"


@dataclass
class LoadResult:
    tool: str
    messages: int
    sessions: int
    size: int
    reuse: bool
    seconds: float
    ok: int
    failed: int
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0


def make_message(index: int, size: int, sender: str, recipient: str) -> bytes:
    head = (
        f"From: <{sender}>\r\nTo: <{recipient}>\r\nSubject: bench {index}\r\n"
        f"Date: Sun, 29 Nov 2026 01:00:00 +0000\r\nMessage-ID: <load-{index}-{time.time_ns()}@bench>"
        "\r\n\r\n"
    ).encode()
    body = LINE * (size // len(LINE)) + b"X" * (size % len(LINE)) + b"\r\n"
    return head + body


class SmtpError(Exception):
    pass


async def _reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise SmtpError("connection closed")
        lines.append(line.decode("latin-1").rstrip())
        if len(line) < 4 or line[3:4] != b"-":
            break
    return int(lines[-1][:3]), "\n".join(lines)


async def _expect(reader: asyncio.StreamReader, code: int) -> None:
    got, text = await _reply(reader)
    if got // 100 != code // 100:
        raise SmtpError(text)


async def _transaction(reader, writer, data: bytes, sender: str, recipient: str) -> None:  # noqa: ANN001
    writer.write(f"MAIL FROM:<{sender}>\r\n".encode())
    await _expect(reader, 250)
    writer.write(f"RCPT TO:<{recipient}>\r\n".encode())
    await _expect(reader, 250)
    writer.write(b"DATA\r\n")
    await _expect(reader, 354)
    writer.write(data + b".\r\n")
    await _expect(reader, 250)


async def _open(host: str, port: int):  # noqa: ANN202
    reader, writer = await asyncio.open_connection(host, port)
    await _expect(reader, 220)
    writer.write(b"EHLO loadgen.bench.test\r\n")
    await _expect(reader, 250)
    return reader, writer


async def _close(writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> None:
    try:
        writer.write(b"QUIT\r\n")
        await asyncio.wait_for(_reply(reader), 5)
    except (TimeoutError, OSError, SmtpError):
        pass
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass


async def _asyncio_load(
    host: str, port: int, messages: int, sessions: int, size: int, reuse: bool, sender, recipient
) -> tuple[int, int, list[str]]:
    payloads = [make_message(i, size, sender, recipient) for i in range(min(messages, 64))]
    todo = iter(range(messages))
    ok = failed = 0
    errors: list[str] = []

    async def session() -> None:
        nonlocal ok, failed
        conn = None
        for index in todo:
            try:
                if conn is None:
                    conn = await _open(host, port)
                await _transaction(*conn, payloads[index % len(payloads)], sender, recipient)
                ok += 1
            except (OSError, SmtpError) as exc:
                failed += 1
                if len(errors) < 5:
                    errors.append(str(exc)[:300])
                if conn is not None:
                    conn[1].close()
                conn = None
                continue
            if not reuse:
                await _close(conn[1], conn[0])
                conn = None
        if conn is not None:
            await _close(conn[1], conn[0])

    await asyncio.gather(*(session() for _ in range(sessions)))
    return ok, failed, errors


def run_load(
    host: str,
    port: int,
    *,
    messages: int,
    sessions: int,
    size: int,
    reuse: bool,
    sender: str = "load@sender.bench.test",
    recipient: str,
    tool: str = "auto",
) -> LoadResult:
    if tool == "auto":
        tool = "smtp-source" if smtp_source_available() else "asyncio"
    start = time.perf_counter()
    if tool == "smtp-source":
        args = [SMTP_SOURCE, "-s", str(sessions), "-m", str(messages), "-l", str(size)]
        if reuse:
            args.append("-d")
        args += ["-f", sender, "-t", recipient, "-M", "loadgen.bench.test", f"{host}:{port}"]
        result = subprocess.run(args, capture_output=True, text=True, timeout=1800)
        seconds = time.perf_counter() - start
        failed = 0 if result.returncode == 0 else messages
        errors = [result.stderr.strip()[-300:]] if result.returncode else []
        # smtp-source stops at the first error; the caller counts what was really stored.
        return LoadResult(
            tool, messages, sessions, size, reuse, seconds, messages - failed, failed, errors
        )
    ok, failed, errors = asyncio.run(
        _asyncio_load(host, port, messages, sessions, size, reuse, sender, recipient)
    )
    seconds = time.perf_counter() - start
    return LoadResult("asyncio", messages, sessions, size, reuse, seconds, ok, failed, errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="host:port")
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--to", default="box@bench.test")
    parser.add_argument("--tool", choices=["auto", "smtp-source", "asyncio"], default="auto")
    args = parser.parse_args()
    host, port = args.target.rsplit(":", 1)
    result = run_load(
        host,
        int(port),
        messages=args.messages,
        sessions=args.sessions,
        size=args.size,
        reuse=args.reuse,
        recipient=args.to,
        tool=args.tool,
    )
    print(result, f"{result.rate:.1f} msg/s")


if __name__ == "__main__":
    main()
