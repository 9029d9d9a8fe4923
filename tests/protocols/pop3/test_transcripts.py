"""Transcripts of every command in every state: exact lines sent, exact lines expected."""

from __future__ import annotations

import base64

import pytest

from protocols.pop3 import responses as R
from protocols.pop3.maildrop import unique_id
from tests.protocols.pop3.conftest import ADDRESS, PASSWORD, deliver, login

FIRST = b"From: bob@example.net\r\nSubject: one\r\n\r\nHello\r\n.hidden dot\r\nbye\r\n"
# Stored with bare LF: sizes count each line end as CRLF (RFC 1939 11).
SECOND = b"From: carol@example.net\nSubject: two\n\nline 1\nline 2\nline 3\n"
SECOND_WIRE = SECOND.replace(b"\n", b"\r\n")
THIRD = b"Subject: three\r\n\r\nno final newline"
THIRD_WIRE = THIRD + b"\r\n"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def filled(mailbox):
    for raw in (FIRST, SECOND, THIRD):
        deliver(raw)
    return mailbox


def inbox_uidvalidity(mailbox) -> int:
    from mailboxes.selectors import folder_get

    return folder_get(mailbox, "INBOX").uidvalidity


SIZES = (len(FIRST), len(SECOND_WIRE), len(THIRD_WIRE))
TOTAL = sum(SIZES)


def test_greeting_and_quit_in_authorization(client_for):
    client = client_for()
    assert client.command("QUIT") == R.OK_BYE
    assert client.closed()


def test_capa_before_login_on_plain_port_offers_stls(client_for, settings):
    settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = False
    client = client_for()
    assert client.command("CAPA") == R.OK_CAPA
    assert client.multiline() == [
        "TOP",
        "UIDL",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
        "STLS",
        "IMPLEMENTATION Mailhost",
    ]


def test_capa_with_plaintext_allowed_offers_user_and_sasl(client_for):
    client = client_for()
    assert client.command("CAPA") == R.OK_CAPA
    assert client.multiline() == [
        "TOP",
        "UIDL",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
        "USER",
        "SASL PLAIN",
        "STLS",
        "IMPLEMENTATION Mailhost",
    ]


def test_capa_shows_expire_and_login_delay_when_set(client_for, settings):
    settings.MAILHOST_POP3_EXPIRE = "NEVER"
    settings.MAILHOST_POP3_LOGIN_DELAY = 300
    client = client_for(tls=True)
    assert client.command("CAPA") == R.OK_CAPA
    assert client.multiline() == [
        "TOP",
        "UIDL",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
        "USER",
        "SASL PLAIN",
        "EXPIRE NEVER",
        "LOGIN-DELAY 300",
        "IMPLEMENTATION Mailhost",
    ]


def test_capa_in_transaction(client_for, filled):
    client = client_for()
    login(client)
    assert client.command("CAPA") == R.OK_CAPA
    assert client.multiline() == [
        "TOP",
        "UIDL",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
        "IMPLEMENTATION Mailhost",
    ]


def test_user_pass_login(client_for, filled):
    client = client_for()
    assert client.command(f"USER {ADDRESS}") == R.OK_USER
    assert client.command(f"PASS {PASSWORD}") == R.ok_login(3, TOTAL)


def test_password_with_spaces(client_for, make_mailbox):
    make_mailbox("spaced@example.org", "two words  here")
    client = client_for()
    assert client.command("USER spaced@example.org") == R.OK_USER
    assert client.command("PASS two words  here") == R.ok_login(0, 0)


def test_pass_without_user(client_for, mailbox):
    client = client_for()
    assert client.command(f"PASS {PASSWORD}") == R.ERR_PASS_WITHOUT_USER
    # USER followed by another command forgets the user (RFC 1939 7).
    assert client.command(f"USER {ADDRESS}") == R.OK_USER
    client.send("CAPA")
    assert client.line() == R.OK_CAPA
    client.multiline()
    assert client.command(f"PASS {PASSWORD}") == R.ERR_PASS_WITHOUT_USER


def test_wrong_password_then_right_one(client_for, mailbox):
    client = client_for()
    assert client.command(f"USER {ADDRESS}") == R.OK_USER
    assert client.command("PASS wrong") == R.ERR_AUTH_FAILED
    assert client.command("USER nobody@example.org") == R.OK_USER
    assert client.command("PASS secret") == R.ERR_AUTH_FAILED
    assert login(client) == R.ok_login(0, 0)


def test_three_failed_logins_close_the_session(client_for, mailbox):
    client = client_for()
    assert client.command(f"USER {ADDRESS}") == R.OK_USER
    assert client.command("PASS wrong1") == R.ERR_AUTH_FAILED
    assert client.command(f"USER {ADDRESS}") == R.OK_USER
    assert client.command("PASS wrong2") == R.ERR_AUTH_FAILED
    credentials = base64.b64encode(f"\0{ADDRESS}\0wrong3".encode()).decode()
    assert client.command(f"AUTH PLAIN {credentials}") == R.ERR_AUTH_FAILED_CLOSING
    assert client.closed()


def test_auth_plain_with_initial_response(client_for, filled):
    client = client_for()
    credentials = base64.b64encode(f"\0{ADDRESS}\0{PASSWORD}".encode()).decode()
    assert client.command(f"AUTH PLAIN {credentials}") == R.ok_login(3, TOTAL)


def test_auth_plain_with_continuation(client_for, filled):
    client = client_for()
    assert client.command("AUTH PLAIN") == R.SASL_CONTINUE
    credentials = base64.b64encode(f"{ADDRESS}\0{ADDRESS}\0{PASSWORD}".encode()).decode()
    assert client.command(credentials) == R.ok_login(3, TOTAL)


def test_auth_plain_cancel_malformed_and_other_mechanisms(client_for, mailbox):
    client = client_for()
    assert client.command("AUTH PLAIN") == R.SASL_CONTINUE
    assert client.command("*") == R.ERR_AUTH_CANCELLED
    assert client.command("AUTH PLAIN") == R.SASL_CONTINUE
    assert client.command("not base64!") == R.ERR_AUTH_MALFORMED
    assert client.command("AUTH PLAIN =") == R.ERR_AUTH_MALFORMED
    assert client.command("AUTH CRAM-MD5") == R.ERR_AUTH_MECHANISM
    client.send("AUTH")
    assert client.line() == R.OK_AUTH_MECHANISMS
    assert client.multiline() == ["PLAIN"]
    # Acting as someone else (authzid) is not offered.
    other = base64.b64encode(f"bob@example.org\0{ADDRESS}\0{PASSWORD}".encode()).decode()
    assert client.command(f"AUTH PLAIN {other}") == R.ERR_AUTH_FAILED
    assert login(client) == R.ok_login(0, 0)


def test_transaction_commands_refused_before_login(client_for, mailbox):
    client = client_for()
    for line in ("STAT", "LIST", "LIST 1", "RETR 1", "DELE 1", "NOOP", "RSET", "TOP 1 0"):
        assert client.command(line) == R.ERR_WRONG_STATE, line
    assert client.command("UIDL") == R.ERR_WRONG_STATE
    assert login(client) == R.ok_login(0, 0)


def test_authorization_commands_refused_after_login(client_for, mailbox):
    client = client_for()
    login(client)
    assert client.command(f"USER {ADDRESS}") == R.ERR_WRONG_STATE
    assert client.command(f"PASS {PASSWORD}") == R.ERR_WRONG_STATE
    assert client.command("AUTH PLAIN") == R.ERR_WRONG_STATE
    assert client.command("STLS") == R.ERR_WRONG_STATE
    assert client.command("NOOP") == R.OK


def test_stat_and_list(client_for, filled):
    client = client_for()
    login(client)
    assert client.command("STAT") == R.ok_stat(3, TOTAL)
    assert client.command("LIST") == R.ok_list(3, TOTAL)
    assert client.multiline() == [R.list_entry(n, size) for n, size in enumerate(SIZES, 1)]
    assert client.command("LIST 2") == R.ok_list_one(2, SIZES[1])
    assert client.command("LIST 4") == R.ERR_NO_SUCH_MESSAGE
    assert client.command("LIST 0") == R.ERR_NO_SUCH_MESSAGE
    assert client.command("LIST 99999999999") == R.ERR_BAD_ARGUMENTS
    assert client.command("LIST x") == R.ERR_BAD_ARGUMENTS
    assert client.command("LIST 1 2") == R.ERR_BAD_ARGUMENTS
    assert client.command("LIST -1") == R.ERR_BAD_ARGUMENTS


def test_retr_sends_crlf_and_byte_stuffs(client_for, filled):
    client = client_for()
    login(client)
    assert client.command("RETR 1") == R.ok_retr(SIZES[0])
    assert client.raw_multiline() == FIRST.replace(b"\r\n.hidden", b"\r\n..hidden")
    assert client.command("RETR 2") == R.ok_retr(SIZES[1])
    assert client.raw_multiline() == SECOND_WIRE
    assert client.command("RETR 3") == R.ok_retr(SIZES[2])
    assert client.raw_multiline() == THIRD_WIRE
    assert client.command("RETR 4") == R.ERR_NO_SUCH_MESSAGE
    assert client.command("RETR") == R.ERR_BAD_ARGUMENTS


def test_top(client_for, filled):
    client = client_for()
    login(client)
    assert client.command("TOP 2 0") == R.OK_TOP
    assert client.raw_multiline() == b"From: carol@example.net\r\nSubject: two\r\n\r\n"
    assert client.command("TOP 2 2") == R.OK_TOP
    assert client.raw_multiline() == (
        b"From: carol@example.net\r\nSubject: two\r\n\r\nline 1\r\nline 2\r\n"
    )
    assert client.command("TOP 1 10") == R.OK_TOP
    assert client.raw_multiline() == FIRST.replace(b"\r\n.hidden", b"\r\n..hidden")
    assert client.command("TOP 1") == R.ERR_BAD_ARGUMENTS
    assert client.command("TOP 1 -1") == R.ERR_BAD_ARGUMENTS
    assert client.command("TOP 9 1") == R.ERR_NO_SUCH_MESSAGE


def test_uidl(client_for, filled):
    client = client_for()
    login(client)
    validity = inbox_uidvalidity(filled)
    assert client.command("UIDL") == R.OK_UIDL
    assert client.multiline() == [
        R.uidl_entry(1, unique_id(validity, 1)),
        R.uidl_entry(2, unique_id(validity, 2)),
        R.uidl_entry(3, unique_id(validity, 3)),
    ]
    assert client.command("UIDL 3") == R.ok_uidl_one(3, unique_id(validity, 3))
    assert unique_id(validity, 3) == f"00000003{validity:08X}"
    assert client.command("UIDL 4") == R.ERR_NO_SUCH_MESSAGE


def test_dele_marks_and_rset_unmarks(client_for, filled):
    client = client_for()
    login(client)
    assert client.command("DELE 2") == R.ok_dele(2)
    assert client.command("DELE 2") == R.ERR_MESSAGE_DELETED
    assert client.command("RETR 2") == R.ERR_MESSAGE_DELETED
    assert client.command("TOP 2 0") == R.ERR_MESSAGE_DELETED
    assert client.command("LIST 2") == R.ERR_MESSAGE_DELETED
    assert client.command("UIDL 2") == R.ERR_MESSAGE_DELETED
    assert client.command("STAT") == R.ok_stat(2, SIZES[0] + SIZES[2])
    assert client.command("LIST") == R.ok_list(2, SIZES[0] + SIZES[2])
    assert client.multiline() == [R.list_entry(1, SIZES[0]), R.list_entry(3, SIZES[2])]
    assert client.command("UIDL") == R.OK_UIDL
    assert [line.split()[0] for line in client.multiline()] == ["1", "3"]
    assert client.command("DELE 7") == R.ERR_NO_SUCH_MESSAGE
    assert client.command("RSET") == R.ok_rset(3, TOTAL)
    assert client.command("STAT") == R.ok_stat(3, TOTAL)


def test_quit_in_transaction_removes_marked_messages(client_for, filled):
    from mailboxes.selectors import folder_get, messages_in

    client = client_for()
    login(client)
    assert client.command("DELE 1") == R.ok_dele(1)
    assert client.command("DELE 3") == R.ok_dele(3)
    assert client.command("QUIT") == R.ok_bye_update(2)
    assert client.closed()
    inbox = folder_get(filled, "INBOX")
    assert list(messages_in(inbox).values_list("uid", flat=True)) == [2]
    assert inbox.message_count == 1 and inbox.total_size == len(SECOND)

    again = client_for()
    assert login(again) == R.ok_login(1, SIZES[1])
    assert again.command("UIDL 1") == R.ok_uidl_one(1, unique_id(inbox.uidvalidity, 2))


def test_dropped_connection_deletes_nothing(client_for, filled):
    client = client_for()
    login(client)
    assert client.command("DELE 1") == R.ok_dele(1)
    client.close()
    again = client_for()
    # The lease is given back when the server sees the disconnect; retry briefly.
    for _ in range(50):
        reply = login(again)
        if reply != R.ERR_IN_USE:
            break
        import time

        time.sleep(0.05)
    assert reply == R.ok_login(3, TOTAL)


def test_unknown_and_malformed_commands_keep_the_session(client_for, filled):
    client = client_for()
    assert client.command("HELO there") == R.ERR_UNKNOWN_COMMAND
    assert client.command("") == R.ERR_UNKNOWN_COMMAND
    assert client.command("APOP alice 0123456789abcdef") == R.ERR_UNKNOWN_COMMAND
    assert client.command("CAPA now") == R.ERR_BAD_ARGUMENTS
    assert client.command("USER") == R.ERR_BAD_ARGUMENTS
    assert client.command("PASS") == R.ERR_BAD_ARGUMENTS
    login(client)
    assert client.command("RETR one") == R.ERR_BAD_ARGUMENTS
    assert client.command("STAT 1") == R.ERR_BAD_ARGUMENTS
    assert client.command("stat") == R.ok_stat(3, TOTAL)
    assert client.command("list 1 ") == R.ok_list_one(1, SIZES[0])


def test_too_many_bad_commands_close_the_session(client_for, settings):
    settings.MAILHOST_POP3_MAX_BAD_COMMANDS = 3
    client = client_for()
    for _ in range(3):
        assert client.command("BOGUS") == R.ERR_UNKNOWN_COMMAND
    assert client.command("BOGUS") == R.ERR_TOO_MANY_ERRORS
    assert client.closed()


def test_overlong_line_is_refused_and_the_session_goes_on(client_for, settings, mailbox):
    client = client_for()
    client.send("NOOP " + "x" * 5000)
    assert client.line() == R.ERR_LINE_TOO_LONG
    assert login(client) == R.ok_login(0, 0)
    assert client.command("NOOP") == R.OK


def test_pipelined_commands(client_for, filled):
    client = client_for()
    client.send_raw(
        f"USER {ADDRESS}\r\nPASS {PASSWORD}\r\nSTAT\r\nLIST 1\r\nUIDL 9\r\nNOOP\r\n".encode()
    )
    assert client.line() == R.OK_USER
    assert client.line() == R.ok_login(3, TOTAL)
    assert client.line() == R.ok_stat(3, TOTAL)
    assert client.line() == R.ok_list_one(1, SIZES[0])
    assert client.line() == R.ERR_NO_SUCH_MESSAGE
    assert client.line() == R.OK


def test_plaintext_login_refused_before_stls(client_for, settings, mailbox):
    settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = False
    client = client_for()
    assert client.command(f"USER {ADDRESS}") == R.ERR_PLAINTEXT_DISALLOWED
    assert client.command(f"PASS {PASSWORD}") == R.ERR_PLAINTEXT_DISALLOWED
    credentials = base64.b64encode(f"\0{ADDRESS}\0{PASSWORD}".encode()).decode()
    assert client.command(f"AUTH PLAIN {credentials}") == R.ERR_PLAINTEXT_DISALLOWED
    client.send("AUTH")
    assert client.line() == R.OK_AUTH_MECHANISMS
    assert client.multiline() == []
    assert client.command("STLS") == R.OK_STLS
    client.starttls()
    assert client.command("STLS") == R.ERR_TLS_ACTIVE
    assert login(client) == R.ok_login(0, 0)


def test_stls_refused_on_implicit_tls_port(client_for, mailbox):
    client = client_for(tls=True)
    assert client.command("STLS") == R.ERR_TLS_ACTIVE
    assert login(client) == R.ok_login(0, 0)


def test_expire_0_deletes_retrieved_messages_at_quit(client_for, settings, filled):
    # RFC 2449 6.7: with EXPIRE 0 no retrieved mail is left on the server.
    settings.MAILHOST_POP3_EXPIRE = "0"
    client = client_for()
    login(client)
    assert client.command("RETR 2") == R.ok_retr(SIZES[1])
    client.raw_multiline()
    assert client.command("TOP 3 0") == R.OK_TOP  # TOP is not a retrieval
    client.raw_multiline()
    assert client.command("QUIT") == R.ok_bye_update(1)
    from mailboxes.selectors import folder_get, messages_in

    assert list(messages_in(folder_get(filled, "INBOX")).values_list("uid", flat=True)) == [1, 3]


def test_retrieved_messages_kept_on_the_server_become_seen(client_for, filled):
    client = client_for()
    login(client)
    for number in (1, 2):
        assert client.command(f"RETR {number}") == R.ok_retr(SIZES[number - 1])
        client.raw_multiline()
    assert client.command("TOP 3 1") == R.OK_TOP
    client.raw_multiline()
    assert client.command("DELE 2") == R.ok_dele(2)
    assert client.command("QUIT") == R.ok_bye_update(1)
    from mailboxes.selectors import folder_get, messages_in

    inbox = folder_get(filled, "INBOX")
    assert list(messages_in(inbox).values_list("uid", "seen")) == [(1, True), (3, False)]
    assert inbox.unseen_count == 1


def test_dropped_connection_marks_nothing_seen(client_for, filled):
    client = client_for()
    login(client)
    assert client.command("RETR 1") == R.ok_retr(SIZES[0])
    client.raw_multiline()
    client.close()
    again = client_for()
    for _ in range(50):
        if login(again) != R.ERR_IN_USE:
            break
        import time

        time.sleep(0.05)
    from mailboxes.selectors import folder_get, messages_in

    assert not messages_in(folder_get(filled, "INBOX")).filter(seen=True).exists()
