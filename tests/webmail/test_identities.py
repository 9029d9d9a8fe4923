"""Identities (own address and aliases), signatures, From chosen in compose, suggestions."""

from __future__ import annotations

import pytest

from mailboxes import selectors, services
from mailboxes.exceptions import InvalidAddress
from mailboxes.models import Message
from tests.webmail.conftest import deliver, folder, make_raw

pytestmark = pytest.mark.django_db


@pytest.fixture
def aliases(alice, bob):
    services.alias_create(address="sales@example.org", destinations=["alice@example.org"])
    services.alias_create(address="team@example.org", destinations=["sales@example.org"])
    services.alias_create(address="bobs@example.org", destinations=["bob@example.org"])


def test_identities_are_own_address_and_aliases_delivering_to_it(alice, aliases):
    addresses = [i["address"] for i in selectors.identities_of(alice)]
    assert addresses == ["alice@example.org", "sales@example.org", "team@example.org"]


def test_identity_of_another_mailbox_is_refused(alice, aliases):
    with pytest.raises(InvalidAddress):
        services.identity_save(
            mailbox=alice, address="bobs@example.org", name="x", signature="", is_default=False
        )


def test_settings_page_saves_name_signature_and_default(web, alice, aliases):
    page = web.get("/settings/identities/").content.decode()
    assert "sales@example.org" in page and "team@example.org" in page
    web.post(
        "/settings/identities/",
        {"address": "sales@example.org", "name": "Sales", "signature": "Sales team\nACME",
         "default": "1"},
    )  # fmt: skip
    first = selectors.identities_of(alice)[0]
    assert first == {
        "address": "sales@example.org",
        "name": "Sales",
        "signature": "Sales team\nACME",
        "default": True,
    }


def test_compose_starts_with_the_default_identity_and_its_signature(web, alice, aliases):
    services.identity_save(
        mailbox=alice, address="alice@example.org", name="Alice A", signature="Alice\n+1 555",
        is_default=True,
    )  # fmt: skip
    response = web.get("/compose/")
    draft = response.context["draft"]
    assert draft.from_address == "alice@example.org"
    assert draft.body.endswith("\n\n-- \nAlice\n+1 555\n")
    body = response.content.decode()
    assert 'value="sales@example.org"' in body and 'data-signature="Alice' in body


def test_sending_as_an_alias_writes_it_in_from(web, alice, bob, aliases):
    services.identity_save(
        mailbox=alice, address="sales@example.org", name="ACME Sales", signature="",
        is_default=False,
    )  # fmt: skip
    response = web.post(
        "/compose/",
        {"from": "sales@example.org", "to": "bob@example.org", "subject": "Offer",
         "body": "Hello", "action": "send"},
    )  # fmt: skip
    assert response.status_code == 302
    received = Message.objects.get(folder=folder(bob, "INBOX"), subject="Offer")
    assert received.from_display == "ACME Sales <sales@example.org>"


def test_a_from_not_owned_falls_back_to_the_default(web, alice, bob, aliases):
    web.post(
        "/compose/",
        {"from": "bobs@example.org", "to": "bob@example.org", "subject": "Sneaky",
         "body": "x", "action": "send"},
    )  # fmt: skip
    received = Message.objects.get(folder=folder(bob, "INBOX"), subject="Sneaky")
    assert received.from_address == "alice@example.org"


def test_address_suggestions_from_past_correspondents(web, alice):
    deliver(make_raw(sender="Dana Scully <dana@fbi.example>"))
    deliver(make_raw(sender="Dana Scully <dana@fbi.example>"))
    deliver(make_raw(sender="Daniel Jackson <daniel@sgc.example>"))
    deliver(make_raw(sender="Fox <fox@fbi.example>"))
    sent = folder(alice, "Sent")
    services.message_append(folder=sent, raw=make_raw(sender="alice@example.org",
                            to="Walter Skinner <skinner@fbi.example>"), flags=["\\Seen"])  # fmt: skip
    assert web.get("/api/addresses/?q=dan").json()["addresses"] == [
        "Dana Scully <dana@fbi.example>",
        "Daniel Jackson <daniel@sgc.example>",
    ]
    found = web.get("/api/addresses/?q=fbi").json()["addresses"]
    assert found[0] == "Dana Scully <dana@fbi.example>"
    assert set(found) == {
        "Dana Scully <dana@fbi.example>",
        "Fox <fox@fbi.example>",
        "Walter Skinner <skinner@fbi.example>",
    }
    assert web.get("/api/addresses/?q=d").json()["addresses"] == []
    assert "alice@example.org" not in str(web.get("/api/addresses/?q=alice").json())


def test_rich_text_is_sent_sanitized_with_a_plain_alternative(web, alice, bob):
    from email import message_from_bytes, policy

    from mailboxes import selectors as sel

    response = web.post(
        "/compose/",
        {"to": "bob@example.org", "subject": "Rich", "format": "html", "body": "",
         "html": '<p>Hello <b>Bob</b></p><script>alert(1)</script><img src="x" onerror="y">',
         "action": "send"},
    )  # fmt: skip
    assert response.status_code == 302
    received = Message.objects.get(folder=folder(bob, "INBOX"), subject="Rich")
    parsed = message_from_bytes(sel.blob_read(received.blob), policy=policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    plain, html = parsed.get_payload()
    assert plain.get_content_type() == "text/plain" and plain.get_content().strip() == "Hello Bob"
    assert "<b>Bob</b>" in html.get_content()
    assert "script" not in html.get_content() and "onerror" not in html.get_content()
    assert received.preview == "Hello Bob"


def test_plain_text_stays_plain(web, alice, bob):
    web.post(
        "/compose/",
        {"to": "bob@example.org", "subject": "Plain", "body": "just text", "html": "<b>x</b>",
         "action": "send"},
    )  # fmt: skip
    received = Message.objects.get(folder=folder(bob, "INBOX"), subject="Plain")
    assert b"text/html" not in selectors.blob_read(received.blob)
