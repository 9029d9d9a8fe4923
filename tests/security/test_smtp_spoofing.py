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
