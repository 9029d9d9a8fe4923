"""What an operator meets in the admin and the provisioning commands (issue 13): quotas in
MB/GB, Django's password validators, a warning for an alias to a local address that does not
exist, folder rows without stray "1:Archive" labels."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from mailboxes import services
from mailboxes.models import Alias, Mailbox
from mailboxes.sizes import format_size, human_size, parse_size
from tests.mailboxes.test_admin import errors_of, form_data, form_errors, submit
from tests.mailboxes.test_commands import manage

MiB, GiB = 1024**2, 1024**3


@pytest.mark.parametrize(
    "text, size",
    [
        ("500M", 500 * MiB),
        ("2G", 2 * GiB),
        ("1.5 GB", 3 * GiB // 2),
        ("1.5GiB", 3 * GiB // 2),
        ("750 mb", 750 * MiB),
        ("100k", 102400),
        ("1048576", MiB),
        ("0", 0),
        ("unlimited", 0),
        ("", 0),
    ],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "5 X", "1,5G", "G", "-1"])
def test_parse_size_refuses(text):
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)


def test_format_size_reads_back():
    for size in (0, 1000, 500 * MiB, 2 * GiB, 3 * GiB // 2, 4096):
        assert parse_size(format_size(size)) == size
    assert (format_size(500 * MiB), format_size(2 * GiB), format_size(1000)) == (
        "500M",
        "2G",
        "1000",
    )
    assert human_size(3 * GiB // 2) == "1.5 GiB"


@pytest.fixture
def staff(admin_client, blob_dir):
    return admin_client


@pytest.mark.django_db
def test_admin_takes_and_shows_quotas_in_megabytes_and_gigabytes(staff, make_domain):
    make_domain("example.org")
    response = submit(
        staff,
        reverse("admin:mailboxes_mailbox_add"),
        address="alice@example.org",
        new_password="a long enough secret",
        quota="1.5 GB",
    )
    assert response.status_code == 302, form_errors(response)
    mailbox = Mailbox.objects.get()
    assert mailbox.quota == 3 * GiB // 2
    url = reverse("admin:mailboxes_mailbox_change", args=[mailbox.pk])
    assert form_data(staff.get(url))["quota"] == "1536M"
    listing = staff.get(reverse("admin:mailboxes_mailbox_changelist")).content.decode()
    assert "1.5 GiB" in listing
    for text, size in (("500M", 500 * MiB), ("unlimited", 0), ("2G", 2 * GiB)):
        response = submit(staff, url, new_password="", quota=text)
        assert response.status_code == 302, form_errors(response)
        assert Mailbox.objects.get().quota == size
    listing = staff.get(reverse("admin:mailboxes_mailbox_changelist")).content.decode()
    assert "2.0 GiB" in listing
    assert "is not a size" in errors_of(submit(staff, url, new_password="", quota="lots"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "password, message",
    [
        ("s3cr!", "This password is too short. It must contain at least 10 characters."),
        ("password123", "This password is too common."),
        ("12345678901234", "This password is entirely numeric."),
    ],
)
def test_admin_refuses_weak_mailbox_passwords(staff, make_mailbox, password, message):
    alice = make_mailbox("alice@example.org", password="the first password")
    response = submit(
        staff,
        reverse("admin:mailboxes_mailbox_add"),
        address="bob@example.org",
        new_password=password,
    )
    assert message in errors_of(response)
    assert Mailbox.objects.count() == 1
    change = reverse("admin:mailboxes_mailbox_change", args=[alice.pk])
    assert message in errors_of(submit(staff, change, new_password=password))
    assert services.mailbox_authenticate(address="alice@example.org", password="the first password")


@pytest.mark.django_db(transaction=True)
def test_addmailbox_refuses_a_weak_password_and_takes_a_quota_in_gigabytes(child_env, make_domain):
    make_domain("example.org")
    result = manage(child_env, "addmailbox", "bob@example.org", "--password-stdin", stdin="12345\n")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "CommandError: This password is too short. It must contain at least 10 characters."
        " This password is too common. This password is entirely numeric."
    ]
    assert not Mailbox.objects.exists()
    result = manage(
        child_env,
        "addmailbox",
        "bob@example.org",
        "--password-stdin",
        "--quota",
        "2G",
        stdin="correct horse battery\n",
    )
    assert result.returncode == 0, result.stderr
    assert Mailbox.objects.get().quota == 2 * GiB


@pytest.mark.django_db
def test_admin_warns_of_an_alias_to_a_local_address_that_does_not_exist(staff, make_mailbox):
    make_mailbox("alice@example.org")
    response = submit(
        staff,
        reverse("admin:mailboxes_alias_add"),
        address="team@example.org",
        destinations="alice@example.org, bobby@example.org, someone@remote.example",
    )
    assert response.status_code == 302, form_errors(response)
    assert Alias.objects.filter(local_key="team").exists()  # created all the same
    page = staff.get(response.url).content.decode()
    warnings = re.findall(r'<li class="warning">(.*?)</li>', page, re.S)
    assert len(warnings) == 1, warnings
    # (the admin capitalizes the first letter of a message)
    assert "bobby@example.org is not a mailbox or alias here (yet)" in warnings[0].lower()


@pytest.mark.django_db(transaction=True)
def test_addalias_warns_of_a_local_address_that_does_not_exist(child_env, make_mailbox):
    make_mailbox("alice@example.org")
    result = manage(
        child_env,
        "addalias",
        "team@example.org",
        "alice@example.org",
        "bobby@example.org",
        "x@remote.example",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "alias team@example.org created"
    assert result.stderr.strip().splitlines() == [
        "warning: bobby@example.org is not a mailbox or alias here (yet): mail to"
        " team@example.org for it bounces until it is created"
    ]
    result = manage(child_env, "addalias", "info@example.org", "team@example.org")
    assert (result.returncode, result.stderr) == (0, "")  # an alias is a destination too


@pytest.mark.django_db
def test_folder_rows_have_no_stray_labels(staff, make_mailbox):
    mailbox = make_mailbox("alice@example.org")
    page = staff.get(reverse("admin:mailboxes_mailbox_change", args=[mailbox.pk])).content.decode()
    folders = page[page.index('id="folders-group"') :]
    # Only the folders group: the inlines after it (Sieve scripts, subscriptions) have rows too.
    following = re.search(r'id="[\w-]+-group"', folders[len('id="folders-group"') :])
    if following:
        folders = folders[: len('id="folders-group"') + following.start()]
    assert f"{mailbox.pk}:Archive" not in folders and f"{mailbox.pk}:INBOX" not in folders
    originals = re.findall(r'<td class="original">(.*?)</td>', folders, re.S)
    assert len(originals) == 6
    for cell in originals:
        assert "<p>" not in cell and not re.sub(r"<input[^>]*>", "", cell).strip(), cell
    for name in ("INBOX", "Sent", "Drafts", "Junk", "Trash", "Archive"):
        assert re.search(rf'<td class="field-name">\s*<p>{name}</p>\s*</td>', folders), name
