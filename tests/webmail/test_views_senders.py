"""The reader's own allow and block lists in the webmail: add, list, remove, scoped to the
signed-in mailbox."""

from __future__ import annotations

import pytest

from mailboxes import selectors, services
from mailboxes.models import SenderListEntry

pytestmark = pytest.mark.django_db


def test_add_allow_and_block_then_remove(web, alice, bob):
    page = web.get("/settings/senders/")
    assert page.status_code == 200
    assert 'data-empty="allow"' in page.content.decode()
    response = web.post(
        "/settings/senders/add/", {"pattern": "Friend@Remote.Example", "action": "allow"}
    )
    assert response.status_code == 302
    web.post("/settings/senders/add/", {"pattern": "@spam.example", "action": "block"})
    assert selectors.sender_lists([alice.pk, bob.pk], "friend@remote.example") == {
        alice.pk: "allow",
        bob.pk: None,
    }
    assert selectors.sender_lists([alice.pk], "x@spam.example") == {alice.pk: "block"}
    page = web.get("/settings/senders/").content.decode()
    assert 'data-sender="friend@remote.example"' in page
    assert 'data-sender="@spam.example"' in page
    assert "Mail from @spam.example goes to Junk now." in page
    entry = SenderListEntry.objects.get(pattern="@spam.example")
    assert web.post(f"/settings/senders/{entry.pk}/remove/").status_code == 302
    assert selectors.sender_lists([alice.pk], "x@spam.example") == {alice.pk: None}


def test_bad_pattern_is_a_message_not_an_entry(web):
    web.post("/settings/senders/add/", {"pattern": "no such thing", "action": "block"})
    page = web.get("/settings/senders/").content.decode()
    assert "Could not add" in page
    assert not SenderListEntry.objects.exists()
    assert (
        web.post("/settings/senders/add/", {"pattern": "a.example", "action": "x"}).status_code
        == 400
    )


def test_cannot_see_or_remove_another_mailboxs_entries(web, bob):
    entry = services.sender_list_add(mailbox=bob, pattern="secret@remote.example", action="allow")
    assert "secret@remote.example" not in web.get("/settings/senders/").content.decode()
    web.post(f"/settings/senders/{entry.pk}/remove/")
    assert SenderListEntry.objects.filter(pk=entry.pk).exists()


def test_needs_sign_in_and_post(client, alice):
    assert client.get("/settings/senders/").status_code == 302
    client.post("/login/", {"address": "alice@example.org", "password": "secret"})
    assert client.get("/settings/senders/add/").status_code == 405
