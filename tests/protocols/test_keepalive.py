"""IMAP and POP3 connections carry TCP keepalive, so a client that vanished without FIN or RST
(a phone losing signal) is found dead within two minutes instead of holding its session until
the autologout. `ss -o` shows the kernel's keepalive timer on the server's accepted sockets."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess

import pytest

from mailhost import runner
from mailhost.listeners import KEEPALIVE_IDLE
from tests.support.servers import running

pytestmark = pytest.mark.skipif(not shutil.which("ss"), reason="needs ss (iproute2)")


def keepalive_seconds(port: int) -> int | None:
    """Seconds before the first keepalive probe on the socket the server accepted on `port`
    (`timer:(keepalive,59sec,0)`), or None when it has no keepalive timer."""
    out = subprocess.run(
        ["ss", "-Htno", "state", "established", f"sport = :{port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"timer:\(keepalive,(?:(\d+)min)?(?:(\d+)sec)?", out)
    if match is None:
        return None
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


@pytest.mark.django_db(transaction=True)
def test_imap_and_pop3_connections_have_keepalive(live_settings):
    with running(runner.IMAP, runner.POP3) as ports:
        for name in ("imap", "imaps", "pop3", "pop3s"):
            with socket.create_connection(("127.0.0.1", ports[name]), timeout=10):
                seconds = keepalive_seconds(ports[name])
                assert seconds is not None, f"{name}: no keepalive timer"
                assert KEEPALIVE_IDLE - 10 < seconds <= KEEPALIVE_IDLE, name
