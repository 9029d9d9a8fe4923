"""SRS: the envelope sender of forwarded mail, and the way back for its bounces."""

from __future__ import annotations

import pytest

from mailboxes import srs
from mailboxes.selectors import recipient_resolve

DAY = 86400
NOW = 20_000 * DAY + 3600  # a fixed day


@pytest.fixture(autouse=True)
def _secret(settings):
    settings.MAILHOST_SRS_SECRET = "a-long-enough-srs-secret"
    settings.MAILHOST_SRS_MAX_AGE = 21


def test_forward_writes_srs0_on_our_domain_and_reverse_reads_it_back():
    rewritten = srs.forward("Carol.Smith@sender.test", domain="example.org", now=NOW)
    local, _, domain = rewritten.rpartition("@")
    assert domain == "example.org"
    tag, hash_, stamp, orig_domain, orig_local = local.split("=", 4)
    assert (tag, orig_domain, orig_local) == ("SRS0", "sender.test", "Carol.Smith")
    assert len(hash_) == 4 and len(stamp) == 2
    assert srs.reverse(local, now=NOW) == "Carol.Smith@sender.test"
    # a relay that lower-cases the local part does not break it
    assert srs.reverse(local.lower(), now=NOW + DAY).lower() == "carol.smith@sender.test"


def test_null_sender_and_our_own_domain_are_not_rewritten():
    assert srs.forward("", domain="example.org") == ""
    assert srs.forward("alice@example.org", domain="example.org") == "alice@example.org"


def test_a_changed_address_or_hash_is_refused():
    local = srs.forward("carol@sender.test", domain="example.org", now=NOW).rpartition("@")[0]
    forged = local.replace("=carol", "=mallory")
    with pytest.raises(srs.SRSError, match="hash"):
        srs.reverse(forged, now=NOW)
    tag, hash_, rest = local.split("=", 2)
    other = "AAAA" if hash_ != "AAAA" else "BBBB"
    with pytest.raises(srs.SRSError, match="hash"):
        srs.reverse(f"{tag}={other}={rest}", now=NOW)
    with pytest.raises(srs.SRSError):
        srs.reverse("carol", now=NOW)


def test_another_key_cannot_forge_ours(settings):
    local = srs.forward("carol@sender.test", domain="example.org", now=NOW).rpartition("@")[0]
    settings.MAILHOST_SRS_SECRET = "another-secret-of-some-length"
    with pytest.raises(srs.SRSError):
        srs.reverse(local, now=NOW)


def test_the_secret_defaults_to_one_derived_from_secret_key(settings):
    settings.MAILHOST_SRS_SECRET = None
    local = srs.forward("carol@sender.test", domain="example.org", now=NOW).rpartition("@")[0]
    assert srs.reverse(local, now=NOW) == "carol@sender.test"
    settings.SECRET_KEY = "x" * 50
    with pytest.raises(srs.SRSError):
        srs.reverse(local, now=NOW)


def test_an_old_address_expires_after_max_age():
    local = srs.forward("carol@sender.test", domain="example.org", now=NOW).rpartition("@")[0]
    assert srs.reverse(local, now=NOW + 21 * DAY) == "carol@sender.test"
    with pytest.raises(srs.SRSError, match="expired"):
        srs.reverse(local, now=NOW + 22 * DAY)


def test_forwarding_an_srs0_address_again_makes_srs1_back_through_the_first_forwarder():
    first = srs.forward("carol@sender.test", domain="forwarder.test", now=NOW)
    second = srs.forward(first, domain="example.org", now=NOW)
    local = second.rpartition("@")[0]
    assert local.startswith("SRS1=") and "=forwarder.test==" in local
    assert srs.reverse(local, now=NOW) == first
    third = srs.forward(second, domain="third.test", now=NOW)
    assert third.startswith("SRS1=") and "=forwarder.test==" in third
    assert srs.reverse(third.rpartition("@")[0], now=NOW) == first


@pytest.mark.django_db
def test_a_bounce_to_our_srs_address_resolves_to_the_original_sender(make_mailbox):
    alice = make_mailbox("alice@example.org")
    remote = srs.forward("carol@sender.test", domain="example.org")
    resolution = recipient_resolve(remote)
    assert resolution.hosted and resolution.exists
    assert resolution.remote == ("carol@sender.test",) and resolution.mailbox_ids == ()
    # the original sender is one of ours (on another hosted domain): filed here
    make_mailbox("dave@example.net")
    local = srs.forward("dave@example.net", domain="example.org")
    assert (
        recipient_resolve(local).mailbox_ids != ()
        and alice.id not in recipient_resolve(local).mailbox_ids
    )
    forged = remote.replace("carol", "mallory")
    assert not recipient_resolve(forged).exists
