"""The SMTP session's own cost on the event loop: protocols.smtp.session.SMTPSession on the
configured loop (uvloop where installed) with a handler that only answers (MAIL and RCPT
accepted from memory, DATA one hop to a DbPool thread that does nothing, as port 25's one hop
a message), under smtp-source's load. No database, no acceptance: what is left is the line
reading, the replies, the timers, the wake-ups and the hop, which bench/profile_server.py's
figures hold among the accept path's.

    MAILHOST_DATA_DIR=<scratch dir> .venv/bin/python bench/profile_session.py [--messages N]
        [--size OCTETS] [--sessions N] [--new-connections] [--callgrind]

Prints the process's CPU a message (noisy: the machine's load); with --callgrind, run under
valgrind (`valgrind --tool=callgrind --callgrind-out-file=OUT.%p .venv/bin/python
bench/profile_session.py --callgrind`): the counters are zeroed after a warm-up batch and
dumped after the N messages (OUT.<pid>.1, whose "totals:" line divided by N is the
instructions a message, the same from run to run within about 0.1%). Needs Postfix's
smtp-source (bench/loadgen.py's).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")

import django  # noqa: E402

django.setup()

from reference_postfix import SMTP_SOURCE  # noqa: E402

from mailhost import eventloop  # noqa: E402
from protocols.common.dbpool import DbPool  # noqa: E402
from protocols.smtp import replies  # noqa: E402
from protocols.smtp.session import Mode, SMTPSession  # noqa: E402

WARM_UP = 200  # messages before the counters are zeroed: sessions started, caches filled


class AnsweringHandler:
    """The hooks' replies without their checks; DATA takes one hop as port 25's does."""

    def __init__(self, pool: DbPool) -> None:
        self.pool = pool

    async def handle_MAIL(self, server, session, envelope, address, params):  # noqa: ANN001
        envelope.mail_from = address
        envelope.params = params
        return replies.S250_SENDER_OK

    async def handle_RCPT(self, server, session, envelope, address, params):  # noqa: ANN001
        envelope.rcpt_tos.append(address)
        return replies.S250_RECIPIENT_OK

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        content = envelope.content
        await self.pool.run(asyncio.get_running_loop(), lambda: len(content))
        return replies.S250_QUEUED.format("BENCH")


def callgrind(action: str) -> None:
    subprocess.run(["callgrind_control", action, str(os.getpid())], capture_output=True)


async def run(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    handler = AnsweringHandler(DbPool(2, "bench-db"))
    server = await loop.create_server(
        lambda: SMTPSession(handler, mode=Mode.MTA, loop=loop), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]

    async def load(messages: int) -> None:
        command = [SMTP_SOURCE, "-s", str(args.sessions), "-m", str(messages)]
        command += ["-l", str(args.size), *([] if args.new_connections else ["-d"])]
        command += ["-f", "sender@bench.test", "-t", "box@bench.test", f"127.0.0.1:{port}"]
        process = subprocess.Popen(command)
        while process.poll() is None:
            await asyncio.sleep(0.05)

    await load(WARM_UP)
    if args.callgrind:
        callgrind("-z")
    started = time.process_time()
    await load(args.messages)
    cpu = time.process_time() - started
    if args.callgrind:
        callgrind("-d")
    server.close()
    print(f"{cpu * 1e6 / args.messages:.1f} us of CPU a message", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--new-connections", action="store_true")
    parser.add_argument("--callgrind", action="store_true", help="under valgrind's callgrind")
    args = parser.parse_args()
    eventloop.run(run(args))


if __name__ == "__main__":
    main()
