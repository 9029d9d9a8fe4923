"""domain_create, mailbox_create, mailbox_set_password, alias_create: success and refusals."""

from __future__ import annotations

import pytest

from mailboxes import selectors, services
from mailboxes.exceptions import AlreadyExists, InvalidAddress, InvalidValue, NotFound
from mailboxes.models import DEFAULT_FOLDERS, Alias, Domain, Folder, Mailbox, SpecialUse

pytestmark = pytest.mark.django_db


def test_domain_create_stores_lower_case_ascii_with_a_dkim_key(blob_dir):
    domain = services.domain_create(name="Example.ORG.")
    assert domain.name == "example.org"
    assert domain.active
    assert domain.dkim_private_key.startswith("-----BEGIN RSA PRIVATE KEY-----")


def test_domain_create_idna(blob_dir):
    domain = services.domain_create(name="Bücher.example")
    assert domain.name == "xn--bcher-kva.example"
    assert domain.unicode_name == "bücher.example"
    assert str(domain) == "bücher.example"


@pytest.mark.parametrize("name", ["", "bad domain", "-x.example", "a..example", "x" * 64 + ".org"])
def test_domain_create_refuses_malformed_names(blob_dir, name):
    with pytest.raises(InvalidAddress):
        services.domain_create(name=name)
    assert not Domain.objects.exists()


def test_domain_create_refuses_duplicates_in_any_spelling(blob_dir):
    services.domain_create(name="bücher.example")
    with pytest.raises(AlreadyExists):
        services.domain_create(name="xn--bcher-kva.example")
    with pytest.raises(AlreadyExists):
        services.domain_create(name="BÜCHER.example")
    assert Domain.objects.count() == 1


def test_mailbox_create_makes_the_special_use_folders(make_domain):
    make_domain("example.org")
    mailbox = services.mailbox_create(address="Alice@Example.org", password="pw", quota=1000)
    assert mailbox.local_part == "Alice"
    assert mailbox.local_key == "alice"
    assert mailbox.address == "Alice@example.org"
    assert mailbox.quota == 1000
    assert mailbox.password != "pw" and mailbox.password.startswith("md5$")
    folders = {f.name: f for f in Folder.objects.filter(mailbox=mailbox)}
    assert {name: folders[name].special_use for name, _ in DEFAULT_FOLDERS} == dict(DEFAULT_FOLDERS)
    assert folders["Junk"].special_use == SpecialUse.JUNK
    assert all(f.uidnext == 1 for f in folders.values())
    assert selectors.subscriptions_of(mailbox) == set(folders)
    # UIDVALIDITY strictly increases within the mailbox (never repeats after delete+create).
    values = [f.uidvalidity for f in Folder.objects.filter(mailbox=mailbox).order_by("pk")]
    assert values == sorted(set(values))


def test_mailbox_create_default_quota_from_settings(make_domain, settings):
    make_domain("example.org")
    settings.MAILHOST_DEFAULT_QUOTA = 5000
    assert services.mailbox_create(address="a@example.org", password="pw").quota == 5000
    assert services.mailbox_create(address="b@example.org", password="pw", quota=0).quota == 0


@pytest.mark.parametrize(
    "address, error",
    [
        ("no-at-sign", InvalidAddress),
        ("two@@example.org", InvalidAddress),
        ("a b@example.org", InvalidAddress),
        (".dot@example.org", InvalidAddress),
        ("x" * 65 + "@example.org", InvalidAddress),
        ("alice@elsewhere.example", NotFound),
    ],
)
def test_mailbox_create_refuses_bad_addresses(make_domain, address, error):
    make_domain("example.org")
    with pytest.raises(error):
        services.mailbox_create(address=address, password="pw")
    assert not Mailbox.objects.exists()
    assert not Folder.objects.exists()


def test_mailbox_create_refuses_duplicates_case_insensitively(make_mailbox):
    make_mailbox("alice@example.org")
    with pytest.raises(AlreadyExists):
        services.mailbox_create(address="ALICE@example.org", password="pw")
    assert Mailbox.objects.count() == 1


def test_mailbox_create_refuses_an_address_that_is_an_alias(make_domain):
    make_domain("example.org")
    services.alias_create(address="info@example.org", destinations=["x@remote.example"])
    with pytest.raises(AlreadyExists):
        services.mailbox_create(address="info@example.org", password="pw")


@pytest.mark.parametrize("password, quota", [("", None), ("pw", -1)])
def test_mailbox_create_refuses_empty_password_and_negative_quota(make_domain, password, quota):
    make_domain("example.org")
    with pytest.raises(InvalidValue):
        services.mailbox_create(address="a@example.org", password=password, quota=quota)
    assert not Mailbox.objects.exists()


def test_case_sensitive_domain_keeps_distinct_local_parts(make_domain):
    domain = make_domain("strict.example")
    domain.case_sensitive_local_parts = True
    domain.save()
    a = services.mailbox_create(address="Alice@strict.example", password="pw")
    b = services.mailbox_create(address="alice@strict.example", password="pw")
    assert a.local_key == "Alice" and b.local_key == "alice"


def test_utf8_local_part(make_domain):
    make_domain("bücher.example")
    mailbox = services.mailbox_create(address="Jörg@bücher.example", password="pw")
    assert mailbox.local_key == "jörg"
    assert mailbox.address == "Jörg@bücher.example"
    assert mailbox.ascii_address == "Jörg@xn--bcher-kva.example"


def test_mailbox_set_password(make_mailbox):
    mailbox = make_mailbox("alice@example.org", password="old")
    services.mailbox_set_password(mailbox=mailbox, password="new")
    assert services.mailbox_authenticate(address="alice@example.org", password="new")
    assert services.mailbox_authenticate(address="alice@example.org", password="old") is None
    with pytest.raises(InvalidValue):
        services.mailbox_set_password(mailbox=mailbox, password="")


def test_alias_create_local_remote_and_catch_all(make_mailbox):
    make_mailbox("alice@example.org")
    alias = services.alias_create(
        address="Team@example.org",
        destinations=["alice@example.org", "Bob@Remote.Example", "alice@example.org"],
    )
    assert alias.local_key == "team"
    assert alias.destination_list == ["alice@example.org", "Bob@remote.example"]
    catch_all = services.alias_create(address="*@example.org", destinations=["alice@example.org"])
    assert catch_all.is_catch_all and catch_all.address == "*@example.org"
    with pytest.raises(AlreadyExists):
        services.alias_create(address="@example.org", destinations=["alice@example.org"])


def test_alias_create_accepts_a_destination_string(make_mailbox):
    make_mailbox("alice@example.org")
    alias = services.alias_create(
        address="x@example.org", destinations="alice@example.org, b@remote.example"
    )
    assert alias.destination_list == ["alice@example.org", "b@remote.example"]


@pytest.mark.parametrize(
    "address, destinations, error",
    [
        ("bad address@example.org", ["alice@example.org"], InvalidAddress),
        ("x@elsewhere.example", ["alice@example.org"], NotFound),
        ("x@example.org", [], InvalidAddress),
        ("x@example.org", ["not-an-address"], InvalidAddress),
        ("alice@example.org", ["b@remote.example"], AlreadyExists),
        ("*@nowhere.example", ["alice@example.org"], NotFound),
    ],
)
def test_alias_create_refusals(make_mailbox, address, destinations, error):
    make_mailbox("alice@example.org")
    with pytest.raises(error):
        services.alias_create(address=address, destinations=destinations)
    assert not Alias.objects.exists()


def test_alias_duplicate_refused(make_mailbox):
    make_mailbox("alice@example.org")
    services.alias_create(address="x@example.org", destinations=["alice@example.org"])
    with pytest.raises(AlreadyExists):
        services.alias_create(address="X@example.org", destinations=["alice@example.org"])
    assert Alias.objects.count() == 1


def test_selectors_find_what_was_created(make_mailbox):
    mailbox = make_mailbox("alice@example.org")
    assert selectors.mailbox_get("ALICE@EXAMPLE.ORG") == mailbox
    assert selectors.mailbox_get("nobody@example.org") is None
    assert selectors.mailbox_get("garbage") is None
    assert selectors.domain_is_hosted("Example.org")
    assert not selectors.domain_is_hosted("elsewhere.example")
    assert selectors.folder_get(mailbox, "inbox").name == "INBOX"
    assert selectors.folder_by_special_use(mailbox, SpecialUse.TRASH).name == "Trash"
    assert [f.name for f in selectors.folders_of(mailbox)] == sorted(n for n, _ in DEFAULT_FOLDERS)
