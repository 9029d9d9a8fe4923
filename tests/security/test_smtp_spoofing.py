"""Spoofed envelope senders on submission: a user sends only as addresses they own."""

from __future__ import annotations

import base64

import pytest

from mailboxes.services import alias_create
from protocols.smtp import replies
from tests.support.smtp import Transcript

pytestmark = pytest.mark.django_db(transaction=True)

SPOOFS = [
    "<bob@example.org>",
    "<BOB@example.org>",
    "<ceo@elsewhere.example>",
    "<alice@elsewhere.example>",
    "<>",
    "<postmaster@example.org>",
    "<@example.org:bob@example.org>",
    "<sales@example.org>",  # an alias for bob, not alice
    "<anything@example.org>",  # caught by a catch-all that delivers to alice
]


@pytest.fixture
def alice(smtp_ports, hosted):
    alias_create(address="sales@example.org", destinations=["bob@example.org"])
    alias_create(address="@example.org", destinations=["alice@example.org"])
    client = Transcript(smtp_ports["submissions"], implicit_tls=True)
    client.ehlo()
    token = base64.b64encode(b"\x00alice@example.org\x00secret").decode()
    client.command(f"AUTH PLAIN {token}", replies.S235_AUTH_OK)
    yield client
    client.close()


@pytest.mark.parametrize("sender", SPOOFS)
def test_spoofed_sender_is_refused(alice, sender):
    alice.command(f"MAIL FROM:{sender}", replies.S553_SENDER_NOT_OWNED)


@pytest.mark.parametrize(
    "sender", ["<alice@example.org>", "<ALICE@Example.ORG>", "<alice+news@example.org>"]
)
def test_own_addresses_are_accepted(alice, sender):
    alice.command(f"MAIL FROM:{sender}", replies.S250_SENDER_OK)


# --- The From header (issue 14): DKIM signs it, so it must be the user's too -------------------

FROM_SPOOFS = [
    "<bob@victim.test>",
    "bob@example.org",
    "Alice <bob@example.org>",
    '"alice@example.org" <bob@example.org>',
    "alice@example.org, bob@example.org",  # one of two
    "Sales <sales@example.org>",  # an alias for bob, not alice
    "=?utf-8?q?Alice?= <ceo@elsewhere.example>",
    "undisclosed:;",  # no address a receiver could check
]
FROM_OWN = [
    "alice@example.org",
    "Alice Example <ALICE@Example.ORG>",
    "<alice+lists@example.org>",
    "Team <team@example.org>",  # an alias whose destinations include alice
]


def submit_over_587(port: int, from_header: str) -> tuple[int, bytes]:
    """smtplib on 587: STARTTLS, AUTH as alice, envelope sender alice; returns DATA's reply."""
    import smtplib

    from tests.support.smtp import client_tls_context

    message = f"From: {from_header}\r\nTo: carol@example.org\r\nSubject: hi\r\n\r\nHi.\r\n"
    with smtplib.SMTP("127.0.0.1", port, timeout=15) as client:
        client.starttls(context=client_tls_context())
        client.login("alice@example.org", "secret")
        client.mail("alice@example.org")
        client.rcpt("carol@example.org")
        code, text = client.data(message.encode())
        client.rset()  # the session goes on
        assert client.noop()[0] == 250
    return code, text


@pytest.fixture
def aliases(hosted):
    alias_create(address="sales@example.org", destinations=["bob@example.org"])
    alias_create(address="team@example.org", destinations=["alice@example.org", "bob@example.org"])


@pytest.mark.parametrize("from_header", FROM_SPOOFS)
def test_from_header_not_owned_is_refused_at_end_of_data(smtp_ports, aliases, from_header):
    from mailboxes.models import Message

    code, text = submit_over_587(smtp_ports["submission"], from_header)
    assert f"{code} {text.decode()}" == str(replies.S553_FROM_NOT_OWNED)
    assert not Message.objects.exists()


@pytest.mark.parametrize("from_header", FROM_OWN)
def test_own_from_header_is_accepted(smtp_ports, aliases, from_header):
    code, text = submit_over_587(smtp_ports["submission"], from_header)
    assert code == 250, text


def test_webmail_send_refuses_a_from_header_not_owned(aliases):
    """The webmail submits through message_submit, the same acceptance path."""
    from delivery import accept
    from mailboxes.models import Mailbox, Message

    alice = Mailbox.objects.get(local_part="alice")
    spoof = b"From: <bob@victim.test>\r\nTo: carol@example.org\r\nSubject: x\r\n\r\nx\r\n"
    with pytest.raises(accept.FromNotAllowed):
        accept.message_submit(
            mailbox=alice,
            raw=spoof,
            mail_from="alice@example.org",
            recipients=["carol@example.org"],
        )
    assert not Message.objects.exists()
    own = spoof.replace(b"<bob@victim.test>", b"Alice <alice@example.org>")
    result = accept.message_submit(
        mailbox=alice, raw=own, mail_from="alice@example.org", recipients=["carol@example.org"]
    )
    assert result.accepted


def test_webmail_from_header_of_a_non_ascii_address(make_mailbox):
    """The webmail writes a non-ASCII local part as email's SMTP policy does (RFC 2047 words);
    it is still the user's own address. Words that decode to someone else's are not."""
    from delivery import accept
    from webmail.compose import Draft, build

    jorg = make_mailbox("jörg@example.org")
    make_mailbox("carol@example.org")
    raw, _ = build(
        mailbox=jorg, draft=Draft(to="carol@example.org", subject="x"), include_bcc=False
    )
    assert b"From: =?utf-8?q?j=C3=B6rg?=@example.org" in raw
    result = accept.message_submit(
        mailbox=jorg, raw=raw, mail_from=jorg.ascii_address, recipients=["carol@example.org"]
    )
    assert result.accepted
    other = raw.replace(b"=?utf-8?q?j=C3=B6rg?=@", b"=?utf-8?q?b=C3=B6b?=@")
    with pytest.raises(accept.FromNotAllowed):
        accept.message_submit(
            mailbox=jorg, raw=other, mail_from=jorg.ascii_address, recipients=["carol@example.org"]
        )
