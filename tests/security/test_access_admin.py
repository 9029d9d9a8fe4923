"""The Django admin requires staff, for every URL of every model admin of ours.

The URLs are not listed by hand: they are read from each registered ModelAdmin's get_urls(),
so an admin view added later is covered too. Anonymous visitors, signed-in users who are not
staff, and webmail sessions (a mailbox signed in, no Django user) are all sent to the admin
login page, for GET and POST, and nothing changes.
"""

from __future__ import annotations

import datetime

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from delivery.models import OutboundMessage, OutboundRecipient, ReportSent
from delivery.services import SpoolRecipient, spool_create
from mailboxes import services
from mailboxes.models import Alias, DkimKey, Domain, Mailbox

OUR_APPS = {"mailboxes", "delivery", "protocols", "webmail"}


def _admin_urls(objects: dict[type, int]) -> list[str]:
    urls = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in OUR_APPS:
            continue
        for pattern in model_admin.get_urls():
            name = getattr(pattern, "name", None)
            if not name:
                continue
            converters = getattr(pattern.pattern, "converters", {})
            args = [str(objects[model])] * len(converters)
            urls.append(reverse(f"admin:{name}", args=args))
    return urls


@pytest.fixture
def objects(make_mailbox):
    alice = make_mailbox("alice@example.org")
    alias = services.alias_create(address="team@example.org", destinations=["alice@example.org"])
    blob = services.blob_store(raw=b"From: alice@example.org\r\nSubject: q\r\n\r\nbody\r\n")
    message = spool_create(
        blob=blob,
        mail_from="alice@example.org",
        recipients=[SpoolRecipient("r@remote.example")],
    )
    report = ReportSent.objects.create(
        kind=ReportSent.Kind.TLS,
        day=datetime.date(2026, 12, 1),
        domain="remote.example",
        report_id="20261201.remote.example@mx.test.example",
        sent_at=timezone.now(),
    )
    return {
        ReportSent: report.pk,
        Domain: alice.domain.pk,
        Mailbox: alice.pk,
        Alias: alias.pk,
        DkimKey: DkimKey.objects.get(domain=alice.domain).pk,
        OutboundMessage: message.pk,
        OutboundRecipient: message.recipients.first().pk,
    }


def _state():
    return (
        list(Domain.objects.values_list("name", "active")),
        list(Mailbox.objects.values_list("local_part", "password", "active", "quota")),
        list(Alias.objects.values_list("pk")),
        list(DkimKey.objects.values_list("pk", "state")),
        list(OutboundMessage.objects.values_list("pk")),
        list(OutboundRecipient.objects.values_list("status", "next_attempt_at")),
        list(ReportSent.objects.values_list("pk", "report_id")),
    )


def _visitors(django_user_model, alice_password="secret"):
    anonymous = Client()
    plain_user = Client()
    plain_user.force_login(
        django_user_model.objects.create_user("joe", password="pw", is_staff=False)
    )
    webmail_user = Client()
    response = webmail_user.post(
        "/login/", {"address": "alice@example.org", "password": alice_password}
    )
    assert response.status_code == 302
    return {"anonymous": anonymous, "non-staff": plain_user, "webmail": webmail_user}


def test_every_admin_url_of_ours_needs_staff(objects, django_user_model):
    urls = _admin_urls(objects)
    names = {url.split("/")[3] for url in urls if url.count("/") > 3}
    assert {"domain", "mailbox", "alias", "outboundmessage"} <= names, urls
    assert len(urls) >= 15
    urls += [reverse("admin:index"), reverse("admin:app_list", args=["mailboxes"])]
    before = _state()
    login = reverse("admin:login")
    for who, client in _visitors(django_user_model).items():
        for url in urls:
            for method in ("get", "post"):
                response = getattr(client, method)(url, {"post": "yes", "action": "delete"})
                assert response.status_code == 302, (who, method, url, response.status_code)
                assert response["Location"].startswith(login), (who, url, response["Location"])
    assert _state() == before


def test_staff_without_permissions_sees_nothing_of_ours(objects, django_user_model):
    user = django_user_model.objects.create_user("sam", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    before = _state()
    for url in _admin_urls(objects):
        response = client.get(url)
        assert response.status_code in (302, 403, 404), (url, response.status_code)
        assert response.status_code != 200
    assert _state() == before
