"""ManageSieve logins of a mailbox with two-factor sign-in: its app passwords only, and a
reply that says so to the main password (transcripts over a real socket)."""

from __future__ import annotations

from mailboxes import services, totp
from protocols.managesieve import responses
from tests.protocols.managesieve.conftest import capabilities, plain, secure_login


def test_app_password_logs_in_and_the_main_password_gets_the_hint(client_for, mailbox):
    secret = totp.new_secret()
    services.totp_enable(mailbox=mailbox, secret=secret, code=totp.code_at(secret))
    _app, app_password = services.app_password_create(mailbox=mailbox, name="Sieve editor")

    client = client_for()
    assert client.command("STARTTLS") == responses.OK_STARTTLS
    client.starttls()
    assert client.response() == capabilities(secure=True, login=True) + responses.OK_TLS_STARTED
    assert (
        client.command(f'AUTHENTICATE "PLAIN" "{plain(password="secret")}"')
        == responses.NO_AUTH_APP_PASSWORD
    )

    secure_login(client_for(), password=app_password)


def test_without_two_factor_both_open_it(client_for, mailbox):
    _app, app_password = services.app_password_create(mailbox=mailbox, name="Sieve editor")
    secure_login(client_for())
    secure_login(client_for(), password=app_password)
