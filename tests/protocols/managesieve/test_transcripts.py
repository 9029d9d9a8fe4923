"""ManageSieve transcripts over a real socket with real TLS: exact bytes sent, exact replies
expected (RFC 5804 2)."""

from __future__ import annotations

import base64

import pytest

from mailboxes import selectors
from protocols.managesieve import responses as R
from tests.protocols.managesieve.conftest import (
    ADDRESS,
    INVALID,
    PASSWORD,
    VALID,
    capabilities,
    plain,
    secure_login,
)

pytestmark = pytest.mark.django_db(transaction=True)


def literal(text: str, *, plus: bool = True) -> bytes:
    data = text.encode()
    return b"{%d%s}\r\n" % (len(data), b"+" if plus else b"") + data


@pytest.fixture
def session(client_for, mailbox):
    client = client_for()
    secure_login(client)
    return client


def test_greeting_capability_and_logout_before_login(client_for):
    client = client_for()
    assert client.command("CAPABILITY") == capabilities(secure=False, login=False) + (
        R.OK_CAPABILITY
    )
    assert client.command("LOGOUT") == R.OK_LOGOUT
    assert client.closed()


def test_no_password_before_tls(client_for, mailbox):
    client = client_for()
    assert client.command(f'AUTHENTICATE "PLAIN" "{plain()}"') == R.NO_ENCRYPT_NEEDED
    assert client.command("LISTSCRIPTS") == R.NO_WRONG_STATE_AUTH


def test_plaintext_login_when_the_setting_allows_it(client_for, mailbox, settings):
    settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = True
    client = client_for(greeting=False)
    assert client.response() == capabilities(secure=False, login=True) + R.OK_GREETING
    assert client.command(f'AUTHENTICATE "PLAIN" "{plain()}"') == R.OK_LOGGED_IN


def test_starttls_reissues_capabilities_and_refuses_a_second_time(client_for, mailbox):
    client = client_for()
    assert client.command("STARTTLS") == R.OK_STARTTLS
    client.starttls()
    assert client.response() == capabilities(secure=True, login=True) + R.OK_TLS_STARTED
    assert client.command("STARTTLS") == R.NO_TLS_ACTIVE
    assert client.command("CAPABILITY") == capabilities(secure=True, login=True) + (R.OK_CAPABILITY)


def test_commands_pipelined_after_starttls_in_the_clear_are_dropped(client_for, mailbox):
    client = client_for()
    client.send_raw(b'STARTTLS\r\nAUTHENTICATE "PLAIN" "' + plain().encode() + b'"\r\n')
    assert client.response() == R.OK_STARTTLS
    client.starttls()
    assert client.response() == capabilities(secure=True, login=True) + R.OK_TLS_STARTED
    assert client.command("LISTSCRIPTS") == R.NO_WRONG_STATE_AUTH


def test_authenticate_plain_with_a_challenge_and_a_literal_response(client_for, mailbox):
    client = client_for()
    client.command("STARTTLS")
    client.starttls()
    client.response()
    client.send('AUTHENTICATE "PLAIN"')
    assert client.line() == b'""\r\n'
    token = plain()
    client.send(b"{%d+}\r\n%s" % (len(token), token.encode()))
    assert client.response() == R.OK_LOGGED_IN
    assert client.command("CAPABILITY") == capabilities(secure=True, login=True, owner=ADDRESS) + (
        R.OK_CAPABILITY
    )


def test_authenticate_login_mechanism(client_for, mailbox):
    client = client_for()
    client.command("STARTTLS")
    client.starttls()
    client.response()
    client.send('AUTHENTICATE "LOGIN"')
    assert client.line() == b'"VXNlcm5hbWU6"\r\n'
    client.send(b'"' + base64.b64encode(ADDRESS.encode()) + b'"')
    assert client.line() == b'"UGFzc3dvcmQ6"\r\n'
    client.send(b'"' + base64.b64encode(PASSWORD.encode()) + b'"')
    assert client.response() == R.OK_LOGGED_IN


def test_failed_logins_then_bye(client_for, mailbox):
    client = client_for()
    client.command("STARTTLS")
    client.starttls()
    client.response()
    assert client.command(f'AUTHENTICATE "PLAIN" "{plain(password="wrong")}"') == (R.NO_AUTH_FAILED)
    client.send('AUTHENTICATE "PLAIN"')
    assert client.line() == b'""\r\n'
    assert client.command('"*"') == R.NO_AUTH_CANCELLED
    assert client.command('AUTHENTICATE "PLAIN" "not base64!"') == R.NO_AUTH_MALFORMED
    assert client.command('AUTHENTICATE "CRAM-MD5"') == R.NO_MECHANISM
    other = plain(authzid="bob@example.org")
    assert client.command(f'AUTHENTICATE "PLAIN" "{other}"') == R.BYE_AUTH_FAILURES
    assert client.closed()


def test_script_lifecycle(session):
    assert session.command("LISTSCRIPTS") == R.OK_LISTSCRIPTS
    assert session.command(b'PUTSCRIPT "lists" ' + literal(VALID)) == R.OK_PUTSCRIPT
    # The synchronizing form is taken too, without a continuation (ManageSieve has none).
    assert session.command(b'PUTSCRIPT "other" ' + literal("keep;\r\n", plus=False)) == (
        R.OK_PUTSCRIPT
    )
    assert session.command("LISTSCRIPTS") == b'"lists"\r\n"other"\r\n' + R.OK_LISTSCRIPTS
    assert session.command('SETACTIVE "lists"') == R.OK_SETACTIVE
    assert session.command("LISTSCRIPTS") == b'"lists" ACTIVE\r\n"other"\r\n' + R.OK_LISTSCRIPTS
    assert session.command('GETSCRIPT "lists"') == (
        b"{%d}\r\n" % len(VALID) + VALID.encode() + b"\r\n" + R.OK_GETSCRIPT
    )
    assert session.command('GETSCRIPT "missing"') == R.NO_NONEXISTENT
    assert session.command('DELETESCRIPT "lists"') == R.NO_ACTIVE
    assert session.command('DELETESCRIPT "missing"') == R.NO_NONEXISTENT
    assert session.command('SETACTIVE "missing"') == R.NO_NONEXISTENT
    assert session.command('RENAMESCRIPT "lists" "other"') == R.NO_ALREADYEXISTS
    assert session.command('RENAMESCRIPT "missing" "x"') == R.NO_NONEXISTENT
    # RFC 5804 2.11.1: the active script stays active under its new name.
    assert session.command('RENAMESCRIPT "lists" "mailing lists"') == R.OK_RENAMESCRIPT
    assert session.command("LISTSCRIPTS") == (
        b'"mailing lists" ACTIVE\r\n"other"\r\n' + R.OK_LISTSCRIPTS
    )
    assert session.command('SETACTIVE ""') == R.OK_SETACTIVE
    assert session.command("LISTSCRIPTS") == b'"mailing lists"\r\n"other"\r\n' + R.OK_LISTSCRIPTS
    assert session.command('DELETESCRIPT "mailing lists"') == R.OK_DELETESCRIPT
    assert session.command("LISTSCRIPTS") == b'"other"\r\n' + R.OK_LISTSCRIPTS


def test_putscript_replaces_and_keeps_the_active_flag(session, mailbox):
    session.command(b'PUTSCRIPT "main" ' + literal("keep;\r\n"))
    session.command('SETACTIVE "main"')
    assert session.command(b'PUTSCRIPT "main" ' + literal(VALID)) == R.OK_PUTSCRIPT
    active = selectors.sievescript_active(mailbox.pk)
    assert (active.name, active.text) == ("main", VALID)


def test_invalid_scripts_are_refused_with_their_errors(session, mailbox):
    from mailboxes import sieve

    errors = sieve.check(INVALID)
    assert errors
    reply = session.command(b'PUTSCRIPT "bad" ' + literal(INVALID))
    assert reply == R.no_script_errors(errors)
    assert reply.startswith(b"NO ") and b"line " in reply
    assert session.command(b"CHECKSCRIPT " + literal(INVALID)) == R.no_script_errors(errors)
    assert session.command(b"CHECKSCRIPT " + literal(VALID)) == R.OK_CHECKSCRIPT
    assert session.command("LISTSCRIPTS") == R.OK_LISTSCRIPTS
    assert selectors.sievescripts_of(mailbox) == []


def test_invalid_names_and_encodings(session):
    assert session.command(b'PUTSCRIPT "a\x01b" ' + literal("keep;")).startswith(
        b'NO "Invalid script name'
    )
    assert session.command(b'PUTSCRIPT "" ' + literal("keep;")).startswith(
        b'NO "Invalid script name'
    )
    # RFC 5804 1.6: names are NFC; "e" + COMBINING ACUTE is not.
    assert session.command('PUTSCRIPT "cafe\u0301" {5+}\r\nkeep;'.encode()).startswith(
        b'NO "Invalid script name'
    )
    assert session.command(b'PUTSCRIPT "x" {3+}\r\n\xff\xfe;') == R.NO_NOT_UTF8


def test_quota_codes(session, settings):
    settings.MAILHOST_SIEVE_MAX_SCRIPTS = 2
    settings.MAILHOST_SIEVE_MAX_SCRIPT_SIZE = 2048
    assert session.command('HAVESPACE "a" 100') == R.OK_HAVESPACE
    assert session.command('HAVESPACE "a" 4096') == R.no_quota(
        "MAXSIZE", "script is larger than 2048 octets"
    )
    session.command(b'PUTSCRIPT "a" ' + literal("keep;"))
    session.command(b'PUTSCRIPT "b" ' + literal("keep;"))
    maxscripts = R.no_quota("MAXSCRIPTS", "at most 2 scripts per mailbox")
    assert maxscripts == b'NO (QUOTA/MAXSCRIPTS) "At most 2 scripts per mailbox."\r\n'
    assert session.command('HAVESPACE "c" 10') == maxscripts
    assert session.command(b'PUTSCRIPT "c" ' + literal("keep;")) == maxscripts
    # Replacing one that exists is no new script.
    assert session.command('HAVESPACE "b" 10') == R.OK_HAVESPACE
    assert session.command(b'PUTSCRIPT "b" ' + literal("discard;")) == R.OK_PUTSCRIPT


def test_an_oversized_literal_is_skipped_and_refused(sieve_settings, client_for, mailbox):
    sieve_settings.MAILHOST_SIEVE_MAX_SCRIPT_SIZE = 2048
    client = client_for()
    secure_login(client)
    big = "#" * 5000 + "\r\nkeep;"
    assert client.command(b'PUTSCRIPT "big" ' + literal(big)) == R.NO_LITERAL_TOO_LARGE
    assert client.command("NOOP") == R.OK_NOOP  # the session goes on, in step
    assert client.command("LISTSCRIPTS") == R.OK_LISTSCRIPTS


def test_a_large_literal_before_login_closes(client_for):
    client = client_for()
    client.send_raw(b'AUTHENTICATE "PLAIN" {100000+}\r\n')
    assert client.response() == R.BYE_LITERAL_TOO_LARGE
    assert client.closed()


def test_an_overlong_line_closes(client_for):
    client = client_for()
    client.send_raw(b"NOOP " + b"x" * 9000 + b"\r\n")
    assert client.response() == R.BYE_LINE_TOO_LONG
    assert client.closed()


def test_noop_tag_unknown_commands_syntax_and_state(session):
    assert session.command("NOOP") == R.OK_NOOP
    assert session.command('NOOP "STARTTLS-SYNC-42"') == (b'OK (TAG "STARTTLS-SYNC-42") "Done"\r\n')
    assert session.command("FROBNICATE") == R.NO_UNKNOWN_COMMAND
    assert session.command('GETSCRIPT "unterminated') == R.no_syntax("Unterminated quoted string")
    assert session.command('HAVESPACE "a" lots') == R.no_syntax("Expected a number")
    assert session.command("STARTTLS") == R.NO_WRONG_STATE_LOGGED_IN
    assert session.command(f'AUTHENTICATE "PLAIN" "{plain()}"') == R.NO_WRONG_STATE_LOGGED_IN


def test_unauthenticate_returns_to_the_login_state(session):
    assert session.command("UNAUTHENTICATE") == R.OK_UNAUTHENTICATED
    assert session.command("LISTSCRIPTS") == R.NO_WRONG_STATE_AUTH
    assert session.command("CAPABILITY") == capabilities(secure=True, login=True) + (
        R.OK_CAPABILITY
    )
    assert session.command(f'AUTHENTICATE "PLAIN" "{plain()}"') == R.OK_LOGGED_IN


def test_too_many_bad_commands_close(session, settings):
    settings.MAILHOST_MANAGESIEVE_MAX_BAD_COMMANDS = 2
    assert session.command("X1") == R.NO_UNKNOWN_COMMAND
    assert session.command("X2") == R.NO_UNKNOWN_COMMAND
    assert session.command("X3") == R.BYE_TOO_MANY_ERRORS
    assert session.closed()


def test_scripts_are_per_mailbox(client_for, mailbox, make_mailbox):
    make_mailbox("bob@example.org", "bobsecret")
    alice = client_for()
    secure_login(alice)
    alice.command(b'PUTSCRIPT "mine" ' + literal("keep;"))
    bob = client_for()
    secure_login(bob, "bob@example.org", "bobsecret")
    assert bob.command("LISTSCRIPTS") == R.OK_LISTSCRIPTS
    assert bob.command('GETSCRIPT "mine"') == R.NO_NONEXISTENT


def test_rfc5804_details(client_for, mailbox, settings):
    settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = True
    settings.MAILHOST_SIEVE_MAX_SCRIPT_SIZE = 2048
    client = client_for(greeting=False)
    client.response()
    # 2.1: LOGIN's server speaks first, so an initial response is refused.
    assert client.command('AUTHENTICATE "LOGIN" "YWxpY2U="') == R.NO_INITIAL_RESPONSE
    assert client.command(f'AUTHENTICATE "PLAIN" "{plain()}"') == R.OK_LOGGED_IN
    # 1.7: STARTTLS is not advertised once AUTHENTICATE succeeded (even without TLS).
    assert client.command("CAPABILITY") == capabilities(secure=True, login=True, owner=ADDRESS) + (
        R.OK_CAPABILITY
    )
    # 2.6: a script of zero length is refused.
    assert client.command(b'PUTSCRIPT "empty" {0+}\r\n') == R.NO_EMPTY_SCRIPT
    # 2.12: CHECKSCRIPT checks no quota: an oversized script is refused without QUOTA.
    big = "#" * 3000 + "\r\nkeep;"
    assert client.command(b"CHECKSCRIPT " + literal(big)) == R.NO_CHECK_TOO_LARGE
    assert client.command(b'PUTSCRIPT "big" ' + literal(big)) == R.NO_LITERAL_TOO_LARGE


def test_names_with_utf8_quotes_and_backslashes_travel_intact(session, mailbox):
    name = 'café "quoted" \\ 🙂'
    wire = name.replace("\\", "\\\\").replace('"', '\\"').encode()
    assert session.command(b'PUTSCRIPT "' + wire + b'" ' + literal("keep;")) == R.OK_PUTSCRIPT
    # As a literal too (a name may be sent either way).
    assert session.command(b"PUTSCRIPT {2+}\r\nab " + literal("keep;")) == R.OK_PUTSCRIPT
    assert session.command("LISTSCRIPTS") == (b'"ab"\r\n"' + wire + b'"\r\n' + R.OK_LISTSCRIPTS)
    assert selectors.sievescript_get(mailbox.pk, name).text == "keep;"
    assert session.command(b'SETACTIVE "' + wire + b'"') == R.OK_SETACTIVE


def test_includes_are_checked_against_the_users_scripts(session):
    main = 'require "include";\r\ninclude "rules";\r\n'
    reply = session.command(b"CHECKSCRIPT " + literal(main))
    assert reply.startswith(b'NO "line 2, column 1: included personal script')
    assert session.command(b'PUTSCRIPT "main" ' + literal(main)) == reply
    assert session.command(b'PUTSCRIPT "rules" ' + literal("keep;")) == R.OK_PUTSCRIPT
    assert session.command(b"CHECKSCRIPT " + literal(main)) == R.OK_CHECKSCRIPT
    assert session.command(b'PUTSCRIPT "main" ' + literal(main)) == R.OK_PUTSCRIPT
