"""IMAP figures: LOGIN+SELECT, UID FETCH 1:* (FLAGS), UID SEARCH, APPEND, and idle connections.

The client here is a few lines over a socket (readline in C), so the time measured is the
server's, not a Python IMAP library's parsing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import statistics
import subprocess
import sys
import time

LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
# Linux's IP_BIND_ADDRESS_NO_PORT (24; the socket module names it from Python 3.14 only).
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


class ImapError(Exception):
    pass


class ImapClient:
    def __init__(self, host: str, port: int, timeout: float = 300) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb", buffering=1 << 16)
        self.greeting = self.file.readline()
        if not self.greeting.startswith(b"* OK"):
            raise ImapError(f"greeting: {self.greeting!r}")
        self.counter = 0

    def command(self, text: str, literal: bytes | None = None) -> list[bytes]:
        self.counter += 1
        tag = f"b{self.counter}".encode()
        if literal is None:
            self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        else:
            self.sock.sendall(tag + b" " + text.encode() + f" {{{len(literal)}}}\r\n".encode())
            line = self.file.readline()
            if not line.startswith(b"+"):
                raise ImapError(f"{text}: no continuation: {line!r}")
            self.sock.sendall(literal + b"\r\n")
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise ImapError(f"{text}: connection closed")
            match = LITERAL.search(line)
            while match:
                line += self.file.read(int(match.group(1)))
                rest = self.file.readline()
                line += rest
                match = LITERAL.search(rest)
            if line.startswith(tag + b" "):
                if line[len(tag) + 1 : len(tag) + 3] != b"OK":
                    raise ImapError(f"{text}: {line!r}")
                return lines
            lines.append(line)

    def close(self) -> None:
        try:
            self.command("LOGOUT")
        except (OSError, ImapError):
            pass
        self.sock.close()


def _timed(fn, repeat: int) -> float:  # noqa: ANN001
    """Median milliseconds of `repeat` calls."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def folder_figures(host: str, port: int, user: str, password: str, folder: str, repeat: int):
    """LOGIN+SELECT on a fresh connection, SELECT, UID FETCH 1:* (FLAGS), UID SEARCH."""

    def login_select() -> None:
        client = ImapClient(host, port)
        client.command(f'LOGIN "{user}" "{password}"')
        client.command(f'SELECT "{folder}"')
        client.sock.close()

    # The folder's first SELECT in this server process (nothing cached), then warm ones.
    figures = {"first_login_select_ms": _timed(login_select, 1)}
    figures["login_select_ms"] = _timed(login_select, repeat)
    client = ImapClient(host, port)
    client.command(f'LOGIN "{user}" "{password}"')
    try:
        figures["select_ms"] = _timed(lambda: client.command(f'SELECT "{folder}"'), repeat)
        exists = None
        for line in client.command(f'SELECT "{folder}"'):
            if line.endswith(b" EXISTS\r\n"):
                exists = int(line.split()[1])
        figures["exists"] = exists
        fetched = []

        def fetch() -> None:
            fetched.append(len(client.command("UID FETCH 1:* (FLAGS)")))

        figures["uid_fetch_flags_ms"] = _timed(fetch, repeat)
        figures["fetched"] = fetched[-1]
        found = []

        def search_unseen() -> None:
            lines = client.command("UID SEARCH UNSEEN")
            found.append(sum(len(line.split()) - 2 for line in lines if b"SEARCH" in line))

        figures["uid_search_unseen_ms"] = _timed(search_unseen, repeat)
        figures["unseen_found"] = found[-1]
        figures["uid_search_subject_ms"] = _timed(
            lambda: client.command('UID SEARCH SUBJECT "message 42"'), repeat
        )
    finally:
        client.close()
    return figures


def append_rate(host: str, port: int, user: str, password: str, count: int, raw: bytes) -> dict:
    client = ImapClient(host, port)
    client.command(f'LOGIN "{user}" "{password}"')
    try:
        start = time.perf_counter()
        for _ in range(count):
            client.command('APPEND "INBOX" (\\Seen)', raw)
        seconds = time.perf_counter() - start
    finally:
        client.close()
    return {"appends": count, "size": len(raw), "seconds": seconds, "per_second": count / seconds}


class IdleCrowd:
    """Many connections, each logged in with INBOX selected and in IDLE (connection `index`
    from source address 127.0.0.(10 + index % 200), the first one `first`)."""

    def __init__(self, host: str, port: int, user: str, password: str, first: int = 0) -> None:
        self.host, self.port, self.user, self.password = host, port, user, password
        self.first = first
        self.connections: list[asyncio.StreamWriter] = []
        self.failed = 0
        self.errors: list[str] = []

    async def _one(self, index: int) -> None:
        # Spread over 127.0.0.10-127.0.0.209 so no source address nears a per-IP limit, and
        # the source port chosen at connect(), per (source, destination) pair: bound before
        # it, every port would be taken from one range shared by all addresses (28k on
        # Linux's default), short of 50000 connections.
        source = f"127.0.0.{10 + index % 200}"
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source, 0))
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (self.host, self.port))
        except BaseException:
            sock.close()
            raise
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 16)
        try:
            greeting = await reader.readline()
            if not greeting.startswith(b"* OK"):
                raise ImapError(greeting)
            for tag, text in (
                (b"a", f'LOGIN "{self.user}" "{self.password}"'),
                (b"b", "SELECT INBOX"),
            ):
                writer.write(tag + b" " + text.encode() + b"\r\n")
                while True:
                    line = await reader.readline()
                    if not line:
                        raise ImapError(f"closed after {text.split()[0]}")
                    if line.startswith(tag + b" "):
                        if not line.startswith(tag + b" OK"):
                            raise ImapError(line)
                        break
            writer.write(b"c IDLE\r\n")
            line = await reader.readline()
            while line.startswith(b"* "):
                line = await reader.readline()
            if not line.startswith(b"+"):
                raise ImapError(f"IDLE: {line!r}")
        except BaseException:
            writer.close()
            raise
        self.connections.append(writer)

    async def grow(self, total: int, parallel: int = 100) -> None:
        semaphore = asyncio.Semaphore(parallel)

        async def guarded(index: int) -> None:
            async with semaphore:
                try:
                    await asyncio.wait_for(self._one(index), 120)
                except (TimeoutError, OSError, ImapError) as exc:
                    self.failed += 1
                    if len(self.errors) < 5:
                        self.errors.append(repr(exc)[:200])

        start = len(self.connections) + self.failed
        await asyncio.gather(*(guarded(self.first + i) for i in range(start, total)))

    async def close(self) -> None:
        for writer in self.connections:
            try:
                writer.write(b"DONE\r\n")
                writer.close()
            except OSError:
                pass
        self.connections.clear()
        await asyncio.sleep(0.5)


class IdleCrowds:
    """An IdleCrowd spread over child processes of `per_process` connections at most: one
    process's file limit bounds its crowd, and a sandboxed root may not raise the hard limit.
    Each child (`python bench/imapbench.py crowd ...`) holds its connections open between
    the commands it reads ("grow N", "close") and answers each grow with a JSON line."""

    def __init__(self, host: str, port: int, user: str, password: str, per_process: int) -> None:
        self.args = [host, str(port), user, password]
        self.per_process = per_process
        self.children: list[subprocess.Popen] = []
        self.connections = self.failed = 0
        self.errors: list[str] = []

    def grow(self, total: int) -> None:
        """Every child to its share of `total` (the first ones full), answers read after all
        were asked, so that the children connect in parallel."""
        needed = (total + self.per_process - 1) // self.per_process
        while len(self.children) < needed:
            first = str(len(self.children) * self.per_process)
            self.children.append(
                subprocess.Popen(
                    [sys.executable, __file__, "crowd", *self.args, first],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for index, child in enumerate(self.children):
            share = min(self.per_process, max(0, total - index * self.per_process))
            child.stdin.write(f"grow {share}\n")
            child.stdin.flush()
        self.connections = self.failed = 0
        for child in self.children:
            line = child.stdout.readline()
            if not line:
                raise ImapError(f"crowd process {child.pid} exited ({child.poll()})")
            state = json.loads(line)
            self.connections += state["connections"]
            self.failed += state["failed"]
            self.errors = (self.errors + state["errors"])[:5]

    def close(self) -> None:
        for child in self.children:
            with contextlib.suppress(OSError):
                child.stdin.write("close\n")
                child.stdin.close()
        for child in self.children:
            try:
                child.wait(60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(10)
        self.children.clear()


async def crowd_main(host: str, port: str, user: str, password: str, first: str) -> None:
    """A child of IdleCrowds: "grow N" on standard input grows the crowd to N connections
    (failed ones are not retried) and answers its state as JSON; "close" or the end of the
    input closes them all."""
    crowd = IdleCrowd(host, int(port), user, password, int(first))
    loop = asyncio.get_running_loop()
    try:
        while True:
            command = (await loop.run_in_executor(None, sys.stdin.readline)).split()
            if not command or command[0] != "grow":
                break
            await crowd.grow(int(command[1]))
            state = {"connections": len(crowd.connections), "failed": crowd.failed}
            print(json.dumps({**state, "errors": crowd.errors[:5]}), flush=True)
            crowd.errors.clear()
    finally:
        await crowd.close()


if __name__ == "__main__" and sys.argv[1:2] == ["crowd"]:
    asyncio.run(crowd_main(*sys.argv[2:7]))
