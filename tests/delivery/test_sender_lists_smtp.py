"""The allow and block lists decide Junk on port 25, through the real spam verdict: a
mailbox's own entry beats its domain's, allow never junks, block always does."""

from __future__ import annotations

import pytest

from mailboxes import selectors, services
from mailboxes.models import SpecialUse
from tests.delivery.test_spam_smtp import CLEAN, gtube_message, mta, send, stored  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def folders_of(*addresses: str) -> list[list[str]]:
    return [[use for use, _ in stored(address)] for address in addresses]


def test_domain_block_with_a_mailbox_allow_that_beats_it(mta):  # noqa: F811
    alice = selectors.mailbox_get("alice@example.org")
    services.sender_list_add(domain=alice.domain, pattern="remote.example", action="block")
    services.sender_list_add(mailbox=alice, pattern="bob@remote.example", action="allow")
    send(mta, CLEAN, to=("alice@example.org", "bob@example.org"))
    assert folders_of("alice@example.org", "bob@example.org") == [
        [SpecialUse.NONE],
        [SpecialUse.JUNK],
    ]


def test_allow_listed_gtube_is_not_junk_and_not_refused(mta):  # noqa: F811
    alice = selectors.mailbox_get("alice@example.org")
    services.sender_list_add(mailbox=alice, pattern="@remote.example", action="allow")
    send(mta, gtube_message(), to=("alice@example.org", "bob@example.org"))
    assert folders_of("alice@example.org", "bob@example.org") == [
        [SpecialUse.NONE],
        [SpecialUse.JUNK],
    ]


def test_block_listed_clean_mail_goes_to_junk_and_removing_the_entry_undoes_it(mta):  # noqa: F811
    bob = selectors.mailbox_get("bob@example.org")
    entry = services.sender_list_add(mailbox=bob, pattern="bob@REMOTE.example", action="block")
    send(mta, CLEAN, to=("bob@example.org",))
    services.sender_list_remove(mailbox=bob, entry_id=entry.pk)
    send(mta, CLEAN, to=("bob@example.org",))
    assert sorted(folders_of("bob@example.org")[0]) == sorted([SpecialUse.JUNK, SpecialUse.NONE])
