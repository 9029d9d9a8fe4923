"""End to end with Python's smtplib over real sockets and real TLS."""

from __future__ import annotations

import smtplib
import threading

import pytest

from delivery.models import OutboundMessage
from mailboxes.groupcommit import committer
from mailboxes.models import Blob, Folder, Mailbox, Message
from mailboxes.selectors import blob_read
from tests.support.smtp import client_tls_context

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.org>\r\n"
    b"Subject: end to end\r\n"
    b"\r\n"
    b"Hello over a real socket.\r\n"
)


def inbox(local_part: str):
    return Message.objects.filter(folder__mailbox__local_part=local_part, folder__name="INBOX")


def test_starttls_on_587_with_auth_plain(smtp_ports, hosted):
    with smtplib.SMTP("127.0.0.1", smtp_ports["submission"], timeout=15) as client:
        client.ehlo("laptop.example.net")
        assert client.has_extn("starttls") and not client.has_extn("auth")
        client.starttls(context=client_tls_context())
        client.ehlo("laptop.example.net")
        assert client.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        client.login("alice@example.org", "secret", initial_response_ok=True)  # PLAIN
        refused = client.sendmail("alice@example.org", ["bob@example.org"], MESSAGE)
    assert refused == {}
    assert blob_read(inbox("bob").get().blob).endswith(MESSAGE)


def test_implicit_tls_on_465_with_auth_login(smtp_ports, hosted):
    with smtplib.SMTP_SSL(
        "127.0.0.1", smtp_ports["submissions"], timeout=15, context=client_tls_context()
    ) as client:
        client.ehlo("laptop.example.net")
        client.user, client.password = "alice@example.org", "secret"
        code, _ = client.auth("LOGIN", client.auth_login, initial_response_ok=False)
        assert code == 235
        client.sendmail("alice@example.org", ["carol@example.org"], MESSAGE)
    assert inbox("carol").count() == 1


def test_pipelining_over_smtplib_many_messages_one_connection(smtp_ports, hosted):
    with smtplib.SMTP("127.0.0.1", smtp_ports["smtp"], timeout=15) as client:
        client.ehlo("relay.example.net")
        assert client.has_extn("pipelining")
        for _ in range(20):
            client.sendmail("x@remote.example", ["alice@example.org", "bob@example.org"], MESSAGE)
    assert inbox("alice").count() == 20 and inbox("bob").count() == 20
    assert Blob.objects.count() == 20  # one blob per message, shared by both mailboxes


def test_three_local_and_one_remote_in_one_transaction(smtp_ports, hosted):
    with smtplib.SMTP_SSL(
        "127.0.0.1", smtp_ports["submissions"], timeout=15, context=client_tls_context()
    ) as client:
        client.login("alice@example.org", "secret")
        client.sendmail(
            "alice@example.org",
            ["alice@example.org", "bob@example.org", "carol@example.org", "dan@remote.example"],
            MESSAGE,
        )
    messages = Message.objects.filter(folder__name="INBOX")
    assert messages.count() == 3
    assert {m.folder.mailbox.local_part for m in messages} == {"alice", "bob", "carol"}
    assert len({m.blob_id for m in messages}) == 1
    spool = OutboundMessage.objects.get()
    assert spool.blob_id == messages[0].blob_id
    assert [r.address for r in spool.recipients.all()] == ["dan@remote.example"]
    assert Blob.objects.count() == 1


def test_smtputf8_addresses(smtp_ports, hosted, make_mailbox):
    make_mailbox("jörg@example.org")
    body = "From: x@remote.example\r\nSubject: Grüße\r\n\r\nGrüße aus Köln\r\n".encode()
    with smtplib.SMTP("127.0.0.1", smtp_ports["smtp"], timeout=15) as client:
        client.ehlo("relay.example.net")
        assert client.has_extn("smtputf8")
        client.sendmail(
            "müller@remote.example",
            ["jörg@example.org"],
            body,
            mail_options=["SMTPUTF8", "BODY=8BITMIME"],
        )
    stored = blob_read(inbox("jörg").get().blob)
    assert stored.endswith(body)
    assert b" with UTF8SMTP id " in stored


def test_bdat_over_a_raw_socket_with_smtplib_helpers(smtp_ports, hosted):
    # smtplib has no BDAT; drive it with docmd and send the chunk bytes ourselves.
    with smtplib.SMTP("127.0.0.1", smtp_ports["smtp"], timeout=15) as client:
        client.ehlo("relay.example.net")
        assert client.has_extn("chunking")
        assert client.mail("x@remote.example")[0] == 250
        assert client.rcpt("alice@example.org")[0] == 250
        client.send(f"BDAT {len(MESSAGE)} LAST\r\n".encode() + MESSAGE)
        code, text = client.getreply()
        assert code == 250 and text.startswith(b"2.0.0 OK queued as ")
    assert blob_read(inbox("alice").get().blob).endswith(MESSAGE)


def test_dsn_parameters_reach_the_spool(smtp_ports, hosted):
    with smtplib.SMTP_SSL(
        "127.0.0.1", smtp_ports["submissions"], timeout=15, context=client_tls_context()
    ) as client:
        client.login("alice@example.org", "secret")
        client.sendmail(
            "alice@example.org",
            ["dan@remote.example"],
            MESSAGE,
            mail_options=["RET=HDRS", "ENVID=QQ314159"],
            rcpt_options=["NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;dan@remote.example"],
        )
    spool = OutboundMessage.objects.get()
    assert (spool.ret, spool.envid) == ("HDRS", "QQ314159")
    recipient = spool.recipients.get()
    assert (recipient.notify, recipient.orcpt) == ("SUCCESS,DELAY", "rfc822;dan@remote.example")


def test_concurrent_sessions_every_250_stored_once(smtp_ports, hosted):
    """Sessions that end DATA together share transactions (mailboxes.groupcommit): every
    message that got 250 is in each mailbox exactly once, with UIDs 1..n and counters that
    match the rows."""
    sessions, per_session = 8, 6
    errors: list[BaseException] = []
    start = threading.Barrier(sessions)

    def send(n: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", smtp_ports["smtp"], timeout=30) as client:
                client.ehlo("relay.example.net")
                start.wait(30)
                for i in range(per_session):
                    subject = f"Subject: s{n}-m{i}\r\n".encode()
                    client.sendmail(
                        "x@remote.example",
                        ["alice@example.org", "bob@example.org"],
                        subject + MESSAGE,
                    )
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    print(f"transactions shared by several messages: {committer.batches}")
    expected = {f"s{n}-m{i}" for n in range(sessions) for i in range(per_session)}
    for name in ("alice", "bob"):
        rows = list(inbox(name).order_by("uid").values_list("uid", "subject", "size"))
        assert [uid for uid, _, _ in rows] == list(range(1, len(expected) + 1))
        assert {subject for _, subject, _ in rows} == expected
        folder = Folder.objects.get(mailbox__local_part=name, name="INBOX")
        used = sum(size for _, _, size in rows)
        assert (folder.message_count, folder.total_size, folder.uidnext) == (
            len(expected),
            used,
            len(expected) + 1,
        )
        assert Mailbox.objects.get(local_part=name).used_bytes == used
    assert Blob.objects.count() == len(expected)
