"""Allow and block lists of senders: the pattern syntax, the precedence rule of
selectors.sender_lists (mailbox beats domain, most specific pattern wins), the services, and
the admin's inlines on the domain and mailbox pages."""

from __future__ import annotations

import pytest
from django.urls import reverse

from mailboxes import selectors, senderlists, services
from mailboxes.exceptions import InvalidValue
from mailboxes.models import SenderListEntry
from tests.mailboxes.test_admin import form_data

ALLOW, BLOCK = "allow", "block"


@pytest.mark.parametrize(
    "text, stored",
    [
        ("Ann@Example.COM", "ann@example.com"),
        ("<ann@example.com>", "ann@example.com"),
        ("@Example.com", "@example.com"),
        ("*@example.com", "@example.com"),
        ("example.com", "example.com"),
        ("*.example.com", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("@bücher.example", "@xn--bcher-kva.example"),
    ],
)
def test_pattern_normalize(text, stored):
    assert senderlists.pattern_normalize(text) == stored


@pytest.mark.parametrize(
    "text", ["", "com", "a b@example.com", "@", "x@", "exa mple.com", "@-x.com"]
)
def test_pattern_normalize_refuses(text):
    with pytest.raises(InvalidValue):
        senderlists.pattern_normalize(text)


def test_candidates_most_specific_first():
    assert senderlists.sender_candidates("Bob@Mail.Example.co.uk") == [
        "bob@mail.example.co.uk",
        "@mail.example.co.uk",
        "mail.example.co.uk",
        "example.co.uk",
        "co.uk",
    ]
    assert senderlists.sender_candidates("") == []
    assert senderlists.sender_candidates("not an address") == []


@pytest.fixture
def boxes(make_mailbox):
    alice = make_mailbox("alice@example.org")
    bob = make_mailbox("bob@example.org")
    carol = make_mailbox("carol@other.example")
    return alice, bob, carol


@pytest.mark.django_db
def test_no_entries_says_none(boxes):
    ids = [m.pk for m in boxes]
    assert selectors.sender_lists(ids, "spammer@bad.example") == dict.fromkeys(ids)
    assert selectors.sender_lists(ids, "") == dict.fromkeys(ids)


@pytest.mark.django_db
def test_domain_entry_holds_for_every_mailbox_of_the_domain_only(boxes):
    alice, bob, carol = boxes
    services.sender_list_add(domain=alice.domain, pattern="bad.example", action=BLOCK)
    verdict = selectors.sender_lists([alice.pk, bob.pk, carol.pk], "x@mail.bad.example")
    assert verdict == {alice.pk: BLOCK, bob.pk: BLOCK, carol.pk: None}
    # "bad.example" covers subdomains; "@bad.example" only the domain itself.
    assert selectors.sender_lists([alice.pk], "x@notbad.example") == {alice.pk: None}


@pytest.mark.django_db
def test_mailbox_entry_beats_domain_entry(boxes, django_assert_max_num_queries):
    alice, bob, _ = boxes
    services.sender_list_add(domain=alice.domain, pattern="@news.example", action=BLOCK)
    services.sender_list_add(mailbox=alice, pattern="news.example", action=ALLOW)
    with django_assert_max_num_queries(1):
        verdict = selectors.sender_lists([alice.pk, bob.pk], "letter@news.example")
    assert verdict == {alice.pk: ALLOW, bob.pk: BLOCK}
    # Even a less specific mailbox entry beats the domain's exact address.
    services.sender_list_add(domain=alice.domain, pattern="boss@news.example", action=ALLOW)
    assert selectors.sender_lists([alice.pk, bob.pk], "boss@news.example") == {
        alice.pk: ALLOW,
        bob.pk: ALLOW,
    }


def test_single_label_pattern_refused():
    with pytest.raises(InvalidValue):
        senderlists.pattern_normalize("example")


@pytest.mark.django_db
def test_most_specific_pattern_wins_within_a_list(boxes):
    alice = boxes[0]
    services.sender_list_add(mailbox=alice, pattern="example.com", action=BLOCK)
    services.sender_list_add(mailbox=alice, pattern="friends.example.com", action=ALLOW)
    services.sender_list_add(mailbox=alice, pattern="@friends.example.com", action=BLOCK)
    services.sender_list_add(mailbox=alice, pattern="Ann@friends.example.com", action=ALLOW)
    assert selectors.sender_lists([alice.pk], "ann@FRIENDS.example.com")[alice.pk] == ALLOW
    assert selectors.sender_lists([alice.pk], "joe@friends.example.com")[alice.pk] == BLOCK
    assert selectors.sender_lists([alice.pk], "joe@a.friends.example.com")[alice.pk] == ALLOW
    assert selectors.sender_lists([alice.pk], "joe@b.example.com")[alice.pk] == BLOCK


@pytest.mark.django_db
def test_add_again_changes_the_action_and_remove_is_scoped(boxes):
    alice, bob, _ = boxes
    first = services.sender_list_add(mailbox=alice, pattern="x@y.example", action=BLOCK)
    again = services.sender_list_add(mailbox=alice, pattern="X@Y.example", action=ALLOW)
    assert first.pk == again.pk and SenderListEntry.objects.get().action == ALLOW
    assert not services.sender_list_remove(mailbox=bob, entry_id=first.pk)
    assert services.sender_list_remove(mailbox=alice, entry_id=first.pk)
    assert not SenderListEntry.objects.exists()
    with pytest.raises(InvalidValue):
        services.sender_list_add(
            mailbox=alice, domain=alice.domain, pattern="a.example", action=ALLOW
        )
    with pytest.raises(InvalidValue):
        services.sender_list_add(mailbox=alice, pattern="a.example", action="maybe")


@pytest.fixture
def staff(admin_client, blob_dir):
    return admin_client


def _inline_post(client, url: str, prefix: str, rows: dict[int, dict]) -> object:
    data = form_data(client.get(url))
    for index, values in rows.items():
        for key, value in values.items():
            data[f"{prefix}-{index}-{key}"] = value
    return client.post(url, data)


@pytest.mark.django_db
def test_admin_domain_and_mailbox_lists(staff, boxes):
    alice, bob, _ = boxes
    url = reverse("admin:mailboxes_domain_change", args=[alice.domain.pk])
    page = staff.get(url).content.decode()
    assert "allowed and blocked senders" in page.lower()
    prefix = "sender_list"
    response = _inline_post(staff, url, prefix, {0: {"pattern": "*@Spam.Example", "action": BLOCK}})
    assert response.status_code == 302, response.content.decode()[:3000]
    entry = SenderListEntry.objects.get()
    assert (entry.domain_id, entry.mailbox_id, entry.pattern) == (
        alice.domain.pk,
        None,
        "@spam.example",
    )
    murl = reverse("admin:mailboxes_mailbox_change", args=[alice.pk])
    response = _inline_post(
        staff, murl, prefix, {0: {"pattern": "friend@spam.example", "action": ALLOW}}
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert selectors.sender_lists([alice.pk, bob.pk], "friend@spam.example") == {
        alice.pk: ALLOW,
        bob.pk: BLOCK,
    }
    # A bad pattern is a form error, not a 500, and nothing is saved.
    response = _inline_post(staff, murl, prefix, {1: {"pattern": "no way", "action": BLOCK}})
    assert response.status_code == 200 and "errorlist" in response.content.decode()
    # Deleting the domain's entry through the inline.
    data = form_data(staff.get(url))
    data[f"{prefix}-0-DELETE"] = "on"
    assert staff.post(url, data).status_code == 302
    assert list(SenderListEntry.objects.values_list("pattern", flat=True)) == [
        "friend@spam.example"
    ]
