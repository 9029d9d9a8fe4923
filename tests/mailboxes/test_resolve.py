"""recipient_resolve and mailbox_owns_address: where mail for an address goes."""

from __future__ import annotations

import pytest

from mailboxes import services
from mailboxes.selectors import mailbox_owns_address, recipient_resolve

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(make_mailbox):
    return make_mailbox("alice@example.org")


@pytest.fixture
def bob(make_mailbox):
    return make_mailbox("bob@example.org")


def test_mailbox(alice):
    r = recipient_resolve("alice@example.org")
    assert r.hosted and r.exists
    assert r.mailbox_ids == (alice.id,)
    assert r.remote == ()


def test_unknown_local_part_in_hosted_domain(alice):
    r = recipient_resolve("nobody@example.org")
    assert r.hosted and not r.exists


def test_foreign_domain_is_not_hosted(alice):
    r = recipient_resolve("someone@remote.example")
    assert not r.hosted
    assert r.remote == ("someone@remote.example",)


def test_malformed_address_is_not_hosted(alice):
    r = recipient_resolve("not an address")
    assert not r.hosted and not r.exists


def test_inactive_mailbox_and_domain(alice):
    alice.active = False
    alice.save()
    assert not recipient_resolve("alice@example.org").exists
    alice.active = True
    alice.save()
    alice.domain.active = False
    alice.domain.save()
    assert not recipient_resolve("alice@example.org").hosted


def test_alias_is_recursive_and_mixes_local_and_remote(alice, bob):
    services.alias_create(
        address="team@example.org", destinations=["dev@example.org", "x@r.example"]
    )
    services.alias_create(
        address="dev@example.org", destinations=["alice@example.org", "bob@example.org"]
    )
    r = recipient_resolve("team@example.org")
    assert r.hosted and r.exists
    assert sorted(r.mailbox_ids) == sorted([alice.id, bob.id])
    assert r.remote == ("x@r.example",)


def test_alias_to_remote_only(alice):
    services.alias_create(address="fwd@example.org", destinations=["Someone@Remote.Example"])
    r = recipient_resolve("fwd@example.org")
    assert r.exists and r.mailbox_ids == ()
    assert r.remote == ("Someone@remote.example",)


def test_alias_loop_is_safe(alice):
    services.alias_create(address="a@example.org", destinations=["b@example.org"])
    services.alias_create(
        address="b@example.org", destinations=["a@example.org", "alice@example.org"]
    )
    r = recipient_resolve("a@example.org")
    assert r.mailbox_ids == (alice.id,)
    services.alias_create(address="c@example.org", destinations=["d@example.org"])
    services.alias_create(address="d@example.org", destinations=["c@example.org"])
    r = recipient_resolve("c@example.org")
    assert r.hosted and not r.exists  # a pure loop delivers nowhere (and does not hang)


def test_alias_self_loop_and_deep_chain(alice, settings):
    services.alias_create(address="me@example.org", destinations=["me@example.org"])
    assert not recipient_resolve("me@example.org").exists
    settings.MAILHOST_ALIAS_MAX_DEPTH = 3
    for i in range(6):
        services.alias_create(address=f"c{i}@example.org", destinations=[f"c{i + 1}@example.org"])
    services.alias_create(address="c6@example.org", destinations=["alice@example.org"])
    assert not recipient_resolve("c0@example.org").exists  # deeper than the limit
    assert recipient_resolve("c4@example.org").mailbox_ids == (alice.id,)


def test_alias_across_hosted_domains(alice, make_domain):
    make_domain("other.example")
    services.alias_create(address="x@other.example", destinations=["alice@example.org"])
    assert recipient_resolve("x@other.example").mailbox_ids == (alice.id,)


def test_catch_all_takes_only_unknown_local_parts(alice, bob):
    services.alias_create(address="*@example.org", destinations=["bob@example.org"])
    assert recipient_resolve("whatever@example.org").mailbox_ids == (bob.id,)
    assert recipient_resolve("alice@example.org").mailbox_ids == (alice.id,)


def test_inactive_alias_is_ignored(alice):
    services.alias_create(address="x@example.org", destinations=["alice@example.org"], active=False)
    assert not recipient_resolve("x@example.org").exists


def test_plus_addressing(alice):
    assert recipient_resolve("alice+news@example.org").mailbox_ids == (alice.id,)
    assert recipient_resolve("ALICE+News+More@example.org").mailbox_ids == (alice.id,)
    assert not recipient_resolve("bob+news@example.org").exists
    # A leading separator is not a sub-address.
    assert not recipient_resolve("+alice@example.org").exists


def test_plus_addressing_of_an_alias_and_an_exact_plus_mailbox(alice, make_mailbox):
    services.alias_create(address="list@example.org", destinations=["alice@example.org"])
    assert recipient_resolve("list+tag@example.org").mailbox_ids == (alice.id,)
    exact = make_mailbox("alice+work@example.org")
    assert recipient_resolve("alice+work@example.org").mailbox_ids == (exact.id,)


def test_plus_separator_setting(alice):
    domain = alice.domain
    domain.plus_separator = "-"
    domain.save()
    assert recipient_resolve("alice-news@example.org").mailbox_ids == (alice.id,)
    assert not recipient_resolve("alice+news@example.org").exists
    domain.plus_separator = ""
    domain.save()
    assert not recipient_resolve("alice-news@example.org").exists


def test_case_insensitive_domain_and_local_part(alice):
    assert recipient_resolve("ALICE@EXAMPLE.ORG").mailbox_ids == (alice.id,)
    assert recipient_resolve("<Alice@Example.Org>").mailbox_ids == (alice.id,)


def test_case_sensitive_domain_setting(make_domain):
    domain = make_domain("strict.example")
    domain.case_sensitive_local_parts = True
    domain.save()
    upper = services.mailbox_create(address="Alice@strict.example", password="pw")
    assert recipient_resolve("Alice@STRICT.example").mailbox_ids == (upper.id,)
    assert not recipient_resolve("alice@strict.example").exists


def test_idna_domain_and_utf8_local_part(make_mailbox):
    mailbox = make_mailbox("jörg@bücher.example")
    for spelling in ("jörg@bücher.example", "JÖRG@BÜCHER.EXAMPLE", "jörg@xn--bcher-kva.example"):
        assert recipient_resolve(spelling).mailbox_ids == (mailbox.id,), spelling
    services.alias_create(address="ñandú@bücher.example", destinations=["jörg@bücher.example"])
    assert recipient_resolve("Ñandú@bücher.example").mailbox_ids == (mailbox.id,)


def test_mailbox_owns_address(alice, bob):
    services.alias_create(address="sales@example.org", destinations=["alice@example.org"])
    services.alias_create(address="*@example.org", destinations=["alice@example.org"])
    assert mailbox_owns_address(alice, "alice@example.org")
    assert mailbox_owns_address(alice, "Alice+tag@EXAMPLE.org")
    assert mailbox_owns_address(alice, "sales@example.org")
    assert not mailbox_owns_address(bob, "sales@example.org")
    assert not mailbox_owns_address(alice, "bob@example.org")
    assert not mailbox_owns_address(alice, "random@example.org")  # a catch-all is no identity
    assert not mailbox_owns_address(alice, "alice@remote.example")
