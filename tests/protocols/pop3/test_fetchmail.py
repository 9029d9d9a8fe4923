"""fetchmail (a real POP3 client, Debian package) downloads and deletes a 50-message maildrop.

Skipped with the reason when fetchmail is not installed (`apt-get install fetchmail`).
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mailboxes.selectors import folder_get
from tests.protocols.pop3.conftest import ADDRESS, PASSWORD, deliver

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        shutil.which("fetchmail") is None,
        reason="fetchmail is not installed (Debian package 'fetchmail')",
    ),
]

COUNT = 50


def message(n: int, eol: str) -> bytes:
    """Varied messages: dot lines, an 8-bit body, long lines, an empty body, a big one."""
    body = [f"Message number {n}.", "", ".a line starting with a dot", ".", "..", "end."]
    if n % 5 == 0:
        body.append("caf\u00e9 na\u00efve \u00fcber (8-bit UTF-8)")
    if n % 7 == 0:
        body.extend(["x" * 900] * 3)
    if n % 11 == 0:
        body = []
    if n == 13:
        body.extend([f"{i:06d} " + "y" * 70 for i in range(20_000)])  # about 1.5 MB
    lines = [
        "From: Sender <sender@example.net>",
        f"To: {ADDRESS}",
        f"Subject: fetchmail test {n}",
        f"Message-ID: <fetch-{n}@example.net>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        *body,
    ]
    return (eol.join(lines) + eol).encode("utf-8")


def run_fetchmail(
    tmp_path: Path, port: int, *, implicit_tls: bool, stripcr: bool
) -> subprocess.CompletedProcess:
    home = tmp_path / "fetchmailhome"
    out = tmp_path / "delivered"
    home.mkdir()
    out.mkdir()
    # The MDA writes each message it is handed to a file of its own, as fetchmail passes it.
    mda = home / "save-message"
    mda.write_text(f'#!/bin/sh\nexec cat > "$(mktemp {out}/msg.XXXXXXXX)"\n')
    mda.chmod(0o700)
    rc = home / "fetchmailrc"
    tls = "ssl" if implicit_tls else "sslproto 'TLS1.2+'"
    rc.write_text(
        "set no syslog\n"
        "set no bouncemail\n"
        "set invisible\n"
        f"poll 127.0.0.1 protocol POP3 port {port} auth password timeout 60\n"
        f'    user "{ADDRESS}" there with password "{PASSWORD}" is "{getpass.getuser()}" here\n'
        f"    options fetchall no keep no rewrite {tls} no sslcertck\n"
        f"    {'stripcr' if stripcr else 'no stripcr'}\n"
        f'    mda "{mda}"\n'
    )
    rc.chmod(0o600)
    env = {**os.environ, "FETCHMAILHOME": str(home), "HOME": str(home)}
    result = subprocess.run(
        ["fetchmail", "-f", str(rc), "-v", "--nosyslog", "--pidfile", str(home / "pid")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result


def delivered_files(tmp_path: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted((tmp_path / "delivered").iterdir())]


@pytest.mark.parametrize(
    ("implicit_tls", "eol"),
    [(True, "\n"), (False, "\r\n")],
    ids=["pop3s-stored-with-LF", "stls-stored-with-CRLF"],
)
def test_fetchmail_downloads_and_deletes_everything(
    pop3, pop3_settings, mailbox, tmp_path, implicit_tls, eol
):
    pop3_settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = False  # fetchmail must use TLS
    sent = [message(n, eol) for n in range(1, COUNT + 1)]
    for raw in sent:
        deliver(raw)
    port = pop3["pop3s"] if implicit_tls else pop3["pop3"]
    # The server always sends CRLF; fetchmail hands the MDA the stored form back when told
    # to strip CR (LF-stored mail) or to keep it (CRLF-stored mail).
    result = run_fetchmail(tmp_path, port, implicit_tls=implicit_tls, stripcr=eol == "\n")
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    assert "not the expected length" not in log, log
    if not implicit_tls:
        assert "STLS" in log, log
    received = delivered_files(tmp_path)
    assert len(received) == COUNT, log
    # Byte for byte: each file is one delivered message, each delivered message came once.
    assert sorted(received) == sorted(sent)
    assert folder_get(mailbox, "INBOX").message_count == 0
