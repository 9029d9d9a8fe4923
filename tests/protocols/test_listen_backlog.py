"""Every listener asks listen(2) for MAILHOST_LISTEN_BACKLOG.

A burst of connects beyond the backlog overflows the kernel's accept queue; a client whose
handshake then times out on the server's side stays "connected" to a socket the server never
accepted, waiting forever for a greeting (seen with 500 IMAP clients connecting at once, when
IMAP still listened with asyncio's default backlog of 100). `ss` reports a listening socket's
backlog in its Send-Q column.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from mailhost import runner
from tests.support.servers import running

pytestmark = pytest.mark.skipif(not shutil.which("ss"), reason="needs ss (iproute2)")


def listen_backlog(port: int) -> int:
    out = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    # State Recv-Q Send-Q Local:Port Peer:Port
    return int(out[2])


@pytest.mark.django_db(transaction=True)
def test_every_listener_uses_the_configured_backlog(live_settings):
    live_settings.MAILHOST_LISTEN_BACKLOG = 777
    with running(runner.SMTP, runner.IMAP, runner.POP3, runner.WEB) as ports:
        assert set(ports) >= {"smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s"}
        backlogs = {name: listen_backlog(port) for name, port in ports.items()}
    assert backlogs == dict.fromkeys(ports, 777)
