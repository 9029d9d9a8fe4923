"""The Django admin, driven like a browser: GET the form, fill it in, POST it back."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.urls import reverse

from mailboxes import selectors, services
from mailboxes.models import Alias, Domain, Folder, Mailbox
from mailboxes.selectors import recipient_resolve

pytestmark = pytest.mark.django_db


class FormFields(HTMLParser):
    """The values a browser would submit, per POST form on the page."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict[str, str]] = []
        self._form: dict[str, str] | None = None
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and (a.get("method") or "").lower() == "post":
            self._form = {}
            self.forms.append(self._form)
            return
        if self._form is None:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text")
            if kind in {"checkbox", "radio"}:
                if "checked" in a:
                    self._form[name] = a.get("value") or "on"
            elif kind not in {"submit", "button", "file"}:
                self._form[name] = a.get("value") or ""
        elif tag == "select" and name:
            self._select = name
            self._form.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in a:
            self._form[self._select] = a.get("value") or ""
        elif tag == "textarea" and name:
            self._textarea = name
            self._form[name] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self._form = None

    def handle_data(self, data):
        if self._textarea and self._form is not None:
            self._form[self._textarea] += data


def form_data(response) -> dict[str, str]:
    """The main form of an admin page (the logout button is a form too: skip it)."""
    parser = FormFields()
    parser.feed(response.content.decode())
    return max(parser.forms, key=len)


def submit(client, url: str, **values):
    page = client.get(url)
    assert page.status_code == 200
    data = form_data(page)
    data.update({k: v for k, v in values.items() if v is not None})
    for k, v in values.items():
        if v is None:
            data.pop(k, None)  # an unchecked checkbox
    return client.post(url, data)


def errors_of(response) -> str:
    assert response.status_code == 200, response.status_code
    text = response.content.decode()
    assert "errorlist" in text, "expected a form error"
    return text


@pytest.fixture
def staff(admin_client, blob_dir):
    return admin_client


def test_create_domain_shows_the_dkim_record(staff):
    response = submit(staff, reverse("admin:mailboxes_domain_add"), name="Bücher.Example")
    assert response.status_code == 302
    domain = Domain.objects.get()
    assert domain.name == "xn--bcher-kva.example"
    assert domain.dkim_private_key.startswith("-----BEGIN")
    page = staff.get(reverse("admin:mailboxes_domain_change", args=[domain.pk]))
    text = page.content.decode()
    assert "mailhost._domainkey.xn--bcher-kva.example. IN TXT" in text
    assert "v=DKIM1; k=rsa; p=MII" in text
    listing = staff.get(reverse("admin:mailboxes_domain_changelist")).content.decode()
    assert "bücher.example" in listing


def test_domain_form_errors(staff):
    services.domain_create(name="example.org")
    text = errors_of(submit(staff, reverse("admin:mailboxes_domain_add"), name="EXAMPLE.org"))
    assert "already exists" in text
    errors_of(submit(staff, reverse("admin:mailboxes_domain_add"), name="bad domain"))
    assert Domain.objects.count() == 1


def test_create_mailbox_with_password_quota_and_folders(staff):
    services.domain_create(name="example.org")
    response = submit(
        staff,
        reverse("admin:mailboxes_mailbox_add"),
        address="Alice@example.org",
        new_password="s3cret!-and-more",
        display_name="Alice A.",
        quota="1048576",
    )
    assert response.status_code == 302, form_errors(response)
    mailbox = Mailbox.objects.get()
    assert (mailbox.address, mailbox.quota, mailbox.display_name) == (
        "Alice@example.org",
        1048576,
        "Alice A.",
    )
    assert Folder.objects.filter(mailbox=mailbox).count() == 6
    assert services.mailbox_authenticate(address="alice@example.org", password="s3cret!-and-more")
    services.message_deliver(
        raw=b"Subject: x\r\n\r\n" + b"y" * 5000, recipients=["alice@example.org"]
    )
    page = staff.get(reverse("admin:mailboxes_mailbox_change", args=[mailbox.pk])).content.decode()
    for folder in ("INBOX", "Sent", "Drafts", "Junk", "Trash", "Archive"):
        assert folder in page
    assert "4.9 KiB (0%)" in page  # usage against the quota
    listing = staff.get(reverse("admin:mailboxes_mailbox_changelist")).content.decode()
    assert "1.0 MiB" in listing and "4.9 KiB (0%)" in listing


def form_errors(response) -> str:
    import re

    return " | ".join(
        re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', response.content.decode(), re.S)
    )


def test_change_password_in_the_form(staff, make_mailbox):
    mailbox = make_mailbox("alice@example.org", password="old-password")
    url = reverse("admin:mailboxes_mailbox_change", args=[mailbox.pk])
    response = submit(staff, url, new_password="new-password", quota="2000")
    assert response.status_code == 302, form_errors(response)
    assert services.mailbox_authenticate(address="alice@example.org", password="new-password")
    assert (
        services.mailbox_authenticate(address="alice@example.org", password="old-password") is None
    )
    assert Mailbox.objects.get(pk=mailbox.pk).quota == 2000
    # Saving without a new password keeps the current one.
    response = submit(staff, url, new_password="", display_name="Alice")
    assert response.status_code == 302, form_errors(response)
    assert services.mailbox_authenticate(address="alice@example.org", password="new-password")
    assert Folder.objects.filter(mailbox=mailbox).count() == 6


def test_folder_subscription_is_editable_inline(staff, make_mailbox):
    mailbox = make_mailbox("alice@example.org")
    url = reverse("admin:mailboxes_mailbox_change", args=[mailbox.pk])
    data = form_data(staff.get(url))
    archive_index = next(
        k.split("-")[1]
        for k, v in data.items()
        if k.endswith("-id") and v == str(Folder.objects.get(mailbox=mailbox, name="Archive").pk)
    )
    data.pop(f"folders-{archive_index}-subscribed", None)
    assert staff.post(url, data).status_code == 302
    assert not selectors.is_subscribed(mailbox, "Archive")
    assert selectors.is_subscribed(mailbox, "INBOX")


@pytest.mark.parametrize(
    "address, quota, message",
    [
        ("alice@elsewhere.example", "0", "is not hosted here"),
        ("ALICE@example.org", "0", "a mailbox with this address exists"),
        ("info@example.org", "0", "an alias with this address exists"),
        ("not an address", "0", "not an address"),
        ("a b@example.org", "0", "invalid local part"),
        ("bob@example.org", "-5", "quota must not be negative"),
    ],
)
def test_mailbox_form_errors(staff, make_mailbox, address, quota, message):
    make_mailbox("alice@example.org")
    services.alias_create(address="info@example.org", destinations=["alice@example.org"])
    response = submit(
        staff,
        reverse("admin:mailboxes_mailbox_add"),
        address=address,
        new_password="pw",
        quota=quota,
    )
    assert message in errors_of(response)
    assert Mailbox.objects.count() == 1


def test_mailbox_needs_a_password(staff, make_domain):
    make_domain("example.org")
    response = submit(
        staff, reverse("admin:mailboxes_mailbox_add"), address="bob@example.org", new_password=""
    )
    errors_of(response)
    assert not Mailbox.objects.exists()


def test_create_alias_and_catch_all(staff, make_mailbox):
    alice = make_mailbox("alice@example.org")
    response = submit(
        staff,
        reverse("admin:mailboxes_alias_add"),
        address="Team@example.org",
        destinations="alice@example.org, someone@remote.example",
    )
    assert response.status_code == 302, form_errors(response)
    response = submit(
        staff,
        reverse("admin:mailboxes_alias_add"),
        address="*@example.org",
        destinations="alice@example.org",
    )
    assert response.status_code == 302, form_errors(response)
    assert recipient_resolve("team@example.org").mailbox_ids == (alice.id,)
    assert recipient_resolve("team@example.org").remote == ("someone@remote.example",)
    assert recipient_resolve("random@example.org").mailbox_ids == (alice.id,)
    assert Alias.objects.filter(local_key="").exists()
    listing = staff.get(reverse("admin:mailboxes_alias_changelist")).content.decode()
    assert "*@example.org" in listing and "Team@example.org" in listing


@pytest.mark.parametrize(
    "address, destinations, message",
    [
        ("x@elsewhere.example", "alice@example.org", "is not hosted here"),
        ("*@elsewhere.example", "alice@example.org", "is not hosted here"),
        ("TEAM@example.org", "alice@example.org", "an alias with this address exists"),
        ("*@example.org", "alice@example.org", "an alias with this address exists"),
        ("alice@example.org", "x@remote.example", "a mailbox with this address exists"),
        ("bad address@example.org", "alice@example.org", "invalid local part"),
        ("y@example.org", "not-an-address", "not an address"),
    ],
)
def test_alias_form_errors_not_500(staff, make_mailbox, address, destinations, message):
    make_mailbox("alice@example.org")
    services.alias_create(address="team@example.org", destinations=["alice@example.org"])
    services.alias_create(address="*@example.org", destinations=["alice@example.org"])
    response = submit(
        staff, reverse("admin:mailboxes_alias_add"), address=address, destinations=destinations
    )
    assert message in errors_of(response)
    assert Alias.objects.count() == 2


def test_non_staff_is_sent_to_login(client, django_user_model, make_mailbox):
    mailbox = make_mailbox("alice@example.org")
    urls = [
        reverse("admin:mailboxes_mailbox_changelist"),
        reverse("admin:mailboxes_mailbox_change", args=[mailbox.pk]),
        reverse("admin:mailboxes_domain_add"),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    user = django_user_model.objects.create_user("joe", password="pw", is_staff=False)
    client.force_login(user)
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_search_and_filters(staff, make_mailbox):
    make_mailbox("alice@example.org")
    make_mailbox("bob@example.org")
    carol = make_mailbox("carol@other.example")
    make_mailbox("jörg@bücher.example")
    carol.active = False
    carol.save()
    services.alias_create(address="sales@example.org", destinations=["bob@example.org"])
    services.alias_create(address="*@other.example", destinations=["carol@other.example"])
    url = reverse("admin:mailboxes_mailbox_changelist")

    def shown(**params) -> set[str]:
        response = staff.get(url, params)
        assert response.status_code == 200
        return {m.address for m in response.context["cl"].result_list}

    assert shown(q="ALICE@example.org") == {"alice@example.org"}
    assert shown(q="@example.org") == {"alice@example.org", "bob@example.org"}
    assert shown(q="jörg@BÜCHER.example") == {"jörg@bücher.example"}
    assert shown(q="other.example") == {"carol@other.example"}
    assert shown(q="bo") == {"bob@example.org"}
    assert shown(active__exact="0") == {"carol@other.example"}
    assert shown(domain__id__exact=str(carol.domain_id)) == {"carol@other.example"}
    alias_url = reverse("admin:mailboxes_alias_changelist")
    aliases = staff.get(alias_url, {"q": "*@other.example"}).context["cl"].result_list
    assert [a.address for a in aliases] == ["*@other.example"]
    aliases = staff.get(alias_url, {"q": "bob@example.org"}).context["cl"].result_list
    assert [a.address for a in aliases] == ["sales@example.org"]  # searched by destination
    domains = staff.get(reverse("admin:mailboxes_domain_changelist"), {"q": "other"})
    assert [d.name for d in domains.context["cl"].result_list] == ["other.example"]


def test_domain_default_sieve_script_is_validated_when_saved(staff):
    domain = services.domain_create(name="example.org")
    url = reverse("admin:mailboxes_domain_change", args=[domain.pk])
    bad = "if true {\r\n  keep;\r\n"
    text = errors_of(submit(staff, url, sieve_default=bad))
    [error] = services.sievescript_check(text=bad.strip())  # the form strips the text
    assert f"line {error.line}, column {error.column}" in text
    domain.refresh_from_db()
    assert domain.sieve_default == ""
    good = 'require "fileinto";\r\nif header :contains "subject" "[SPAM]" { fileinto "Junk"; }\r\n'
    assert submit(staff, url, sieve_default=good).status_code == 302
    from mailboxes.selectors import domain_sieve_default

    assert domain_sieve_default(domain.pk) == good.strip()


def test_mailbox_page_shows_its_sieve_scripts(staff, make_mailbox):
    mailbox = make_mailbox("alice@example.org")
    services.sievescript_put(mailbox=mailbox, name="vacation <1>", text="keep;\n", activate=True)
    page = staff.get(reverse("admin:mailboxes_mailbox_change", args=[mailbox.pk]))
    text = page.content.decode()
    assert "vacation &lt;1&gt;" in text and '<pre class="sieve-script">keep;\n</pre>' in text


def test_message_quota_in_the_forms_and_the_list(staff, settings):
    services.domain_create(name="example.org")
    settings.MAILHOST_DEFAULT_QUOTA_MESSAGES = 500
    add = reverse("admin:mailboxes_mailbox_add")
    # the add form starts from the default, as addmailbox does
    response = submit(staff, add, address="alice@example.org", new_password="s3cret!-and-more")
    assert response.status_code == 302, form_errors(response)
    mailbox = Mailbox.objects.get()
    assert mailbox.quota_messages == 500
    services.message_deliver(raw=b"Subject: x\r\n\r\nHi.\r\n", recipients=["alice@example.org"])
    url = reverse("admin:mailboxes_mailbox_change", args=[mailbox.pk])
    assert "1 of 500" in staff.get(url).content.decode()
    response = submit(staff, url, quota_messages="2")
    assert response.status_code == 302, form_errors(response)
    mailbox = Mailbox.objects.get()
    # the change form writes the limits, never the usage it read
    assert (mailbox.quota_messages, mailbox.used_messages) == (2, 1)
    listing = staff.get(reverse("admin:mailboxes_mailbox_changelist")).content.decode()
    assert "1 of 2" in listing
    response = submit(staff, url, quota_messages="")
    assert response.status_code == 302, form_errors(response)
    assert Mailbox.objects.get().quota_messages == 0
    assert "Ensure this value is greater than or equal to 0" in errors_of(
        submit(staff, url, quota_messages="-1")
    )


def test_the_change_form_keeps_usage_counted_while_it_was_open(staff, make_mailbox):
    mailbox = make_mailbox("alice@example.org")
    url = reverse("admin:mailboxes_mailbox_change", args=[mailbox.pk])
    page = staff.get(url)
    data = form_data(page)
    services.message_deliver(raw=b"Subject: x\r\n\r\nHi.\r\n", recipients=["alice@example.org"])
    data["display_name"] = "Alice"
    assert staff.post(url, data).status_code == 302
    mailbox = Mailbox.objects.get()
    assert (mailbox.display_name, mailbox.used_messages) == ("Alice", 1)
    assert mailbox.used_bytes == len(b"Subject: x\r\n\r\nHi.\r\n")
