"""DKIM key rotation (issue 18): a new key (RSA or Ed25519, RFC 8463) is published before it
signs, activated once DNS serves it, the old one kept published until retired; signatures
verify against the records `dnsrecords` prints, served by a real DNS server."""

from __future__ import annotations

import datetime
from io import StringIO

import dkim
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import timezone

from delivery.dkim import dkim_sign
from delivery.dnsrecords import domain_records
from mailboxes import services
from mailboxes.models import DkimKey

RAW = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: bob@remote.test\r\n"
    b"Subject: rotation\r\n"
    b"Date: Thu, 03 Dec 2026 01:00:00 +0000\r\n"
    b"Message-ID: <rot@example.org>\r\n"
    b"\r\n"
    b"Hi Bob.\r\n"
)


def dkimkey(*args: str) -> str:
    out = StringIO()
    call_command("dkimkey", *args, stdout=out)
    return out.getvalue()


def publish(zone, domain) -> list[str]:
    """Serve every DKIM record dnsrecords lists for the domain; their names."""
    names = []
    for record in domain_records(domain, addresses=[]):
        if "._domainkey." in record.name:
            zone.add(record.name, "TXT", record.value)
            names.append(record.name)
    return names


def selector_of(signed: bytes) -> str:
    header = signed.split(b"\r\n\r\n", 1)[0].decode()
    return header.split(" s=", 1)[1].split(";", 1)[0]


def states(domain) -> dict[str, str]:
    return dict(DkimKey.objects.filter(domain=domain).values_list("selector", "state"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "flag,algorithm", [([], b"rsa-sha256"), (["--ed25519"], b"ed25519-sha256")]
)
def test_rotation_publish_activate_retire(make_domain, dns_server, flag, algorithm):
    domain = make_domain("example.org")
    assert states(domain) == {"mailhost": "active"}

    out = dkimkey("example.org", "--new", "--selector", "next", *flag)
    assert "next: new" in out and "--activate next" in out
    assert states(domain) == {"mailhost": "active", "next": "published"}
    # Published ahead of use: both records listed, the old key still signs.
    assert publish(dns_server, domain) == [
        "mailhost._domainkey.example.org",
        "next._domainkey.example.org",
    ]
    signed = dkim_sign(RAW, mail_from="alice@example.org")
    assert selector_of(signed) == "mailhost"
    assert dkim.verify(signed, dnsfunc=dns_server.txt_lookup)

    dkimkey("example.org", "--activate", "next")
    assert states(domain) == {"mailhost": "published", "next": "active"}
    signed_new = dkim_sign(RAW, mail_from="alice@example.org")
    assert selector_of(signed_new) == "next" and b"a=" + algorithm in signed_new
    assert dkim.verify(signed_new, dnsfunc=dns_server.txt_lookup)
    assert dkim.verify(signed, dnsfunc=dns_server.txt_lookup)  # mail in flight still verifies

    with pytest.raises(CommandError, match="activate another key before retiring"):
        dkimkey("example.org", "--retire", "next")
    out = dkimkey("example.org", "--retire", "mailhost")
    assert "remove its record mailhost._domainkey.example.org" in out
    assert [r.name for r in domain_records(domain, addresses=[]) if "_domainkey" in r.name] == [
        "next._domainkey.example.org"
    ]
    assert DkimKey.objects.get(selector="mailhost").private_key == ""
    with pytest.raises(CommandError, match="retired"):
        dkimkey("example.org", "--activate", "mailhost")


@pytest.mark.django_db
def test_ed25519_record_is_rfc8463(make_domain):
    domain = make_domain("example.org")
    key = services.dkim_key_create(domain=domain, algorithm="ed25519", selector="ed")
    (record,) = [r for r in domain_records(domain, addresses=[]) if r.name.startswith("ed.")]
    # RFC 8463 4.2: k=ed25519, p= the base64 of the bare 32-octet public key (44 characters).
    value = record.value.strip('"')
    assert value.startswith("v=DKIM1; k=ed25519; p=") and len(value.split("p=")[1]) == 44
    assert key.private_key.startswith("-----BEGIN PRIVATE KEY-----")


@pytest.mark.django_db
def test_default_selectors_are_dated_and_distinct(make_domain):
    domain = make_domain("example.org")
    today = f"mh{timezone.now():%Y%m%d}"
    first = services.dkim_key_create(domain=domain)
    second = services.dkim_key_create(domain=domain)
    assert (first.selector, second.selector) == (today, f"{today}-2")
    with pytest.raises(CommandError, match="exists|has a DKIM key"):
        dkimkey("example.org", "--new", "--selector", today)
    with pytest.raises(CommandError, match="not a DNS label"):
        dkimkey("example.org", "--new", "--selector", "bad_selector")
    with pytest.raises(CommandError, match="no domain"):
        dkimkey("nowhere.example", "--new")


@pytest.mark.django_db
def test_activate_keeps_one_active_key(make_domain):
    domain = make_domain("example.org")
    for n in range(3):
        services.dkim_key_create(domain=domain, selector=f"k{n}")
        services.dkim_key_activate(domain=domain, selector=f"k{n}")
    assert DkimKey.objects.filter(domain=domain, state="active").count() == 1
    assert domain.dkim_selector == "k2"


@pytest.mark.django_db
def test_admin_actions_create_activate_and_retire(admin_client, make_domain):
    domain = make_domain("example.org")
    response = admin_client.post(
        reverse("admin:mailboxes_domain_changelist"),
        {"action": "new_dkim_key_ed25519", "_selected_action": [domain.pk]},
        follow=True,
    )
    assert "not signing yet" in response.content.decode()
    new = DkimKey.objects.get(domain=domain, algorithm="ed25519")
    assert new.state == "published"
    page = admin_client.get(reverse("admin:mailboxes_domain_change", args=[domain.pk]))
    assert f"{new.selector}._domainkey.example.org. IN TXT" in page.content.decode()

    keys = reverse("admin:mailboxes_dkimkey_changelist")
    admin_client.post(keys, {"action": "activate", "_selected_action": [new.pk]})
    old = DkimKey.objects.get(domain=domain, selector="mailhost")
    assert (DkimKey.objects.get(pk=new.pk).state, old.state) == ("active", "published")
    admin_client.post(keys, {"action": "retire", "_selected_action": [old.pk]})
    assert DkimKey.objects.get(pk=old.pk).state == "retired"
    response = admin_client.post(
        keys, {"action": "retire", "_selected_action": [new.pk]}, follow=True
    )
    assert "activate another key before retiring" in response.content.decode()
    assert DkimKey.objects.get(pk=new.pk).state == "active"


@pytest.mark.django_db(transaction=True)
def test_migration_moves_each_domain_key_into_the_table():
    before, after = [("mailboxes", "0004_blob_data")], [("mailboxes", "0005_dkim_keys")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old_apps = executor.loader.project_state(before).apps
        Domain = old_apps.get_model("mailboxes", "Domain")
        Domain.objects.create(name="keyed.example", dkim_selector="sel1", dkim_private_key="PEM")
        Domain.objects.create(name="keyless.example", dkim_private_key="")
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        new_apps = executor.loader.project_state(after).apps
        Key = new_apps.get_model("mailboxes", "DkimKey")
        rows = list(Key.objects.values_list("domain__name", "selector", "private_key", "state"))
        assert rows == [("keyed.example", "sel1", "PEM", "active")]
        activated = Key.objects.get().activated_at
        assert timezone.now() - activated < datetime.timedelta(minutes=5)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
