"""`manage.py runmanagesieve` and `runmail` serve ManageSieve on MAILHOST_MANAGESIEVE_PORT (a
real process, its own SQLite database) and stop cleanly on SIGTERM."""

from __future__ import annotations

import pytest

from protocols.managesieve import responses as R
from tests.protocols.managesieve.conftest import Client, plain
from tests.protocols.smtp.test_commands import instance, start, stop, wait_for_port  # noqa: F401


def session_against(port: int) -> list[bytes]:
    client = Client(port)
    greeting = client.response()
    assert greeting.endswith(R.OK_GREETING)
    client.command("STARTTLS")
    client.starttls()
    client.response()
    replies = [
        client.command(f'AUTHENTICATE "PLAIN" "{plain("alice@example.org", "a-long-secret")}"'),
        client.command('PUTSCRIPT "main" {5+}\r\nkeep;'),
        client.command('SETACTIVE "main"'),
        client.command("LISTSCRIPTS"),
        client.command("LOGOUT"),
    ]
    client.close()
    return replies


@pytest.mark.parametrize("command", [["runmanagesieve"], ["runmail", "--no-migrate"]])
def test_the_commands_serve_managesieve(instance, command):  # noqa: F811
    env, ports, manage, tmp_path = instance
    process = start(env, command, tmp_path)
    try:
        wait_for_port(ports["MANAGESIEVE_PORT"], process)
        replies = session_against(ports["MANAGESIEVE_PORT"])
    finally:
        code, stderr = stop(process)
    assert code == 0, stderr
    assert replies == [
        R.OK_LOGGED_IN,
        R.OK_PUTSCRIPT,
        R.OK_SETACTIVE,
        b'"main" ACTIVE\r\n' + R.OK_LISTSCRIPTS,
        R.OK_LOGOUT,
    ]
    assert "protocols.managesieve.server started (1 listener(s))" in stderr
    assert "sievescript activate mailbox=" in stderr
