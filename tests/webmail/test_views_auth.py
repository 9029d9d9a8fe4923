"""Sign-in, sign-out, sessions, throttling, CSRF and the security headers."""

from __future__ import annotations

import pytest
from django.test import Client

from mailboxes import services, throttle
from tests.webmail.conftest import sign_in
from webmail.auth import SESSION_MAILBOX
from webmail.views import auth as auth_views

pytestmark = pytest.mark.django_db


def test_login_page_renders_with_csp_and_csrf_token(client, alice):
    response = client.get("/login/")
    assert response.status_code == 200
    assert b'name="csrfmiddlewaretoken"' in response.content
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert b"<script>" not in response.content  # no inline script anywhere


def test_sign_in_stores_the_mailbox_in_the_session(client, alice):
    response = client.post("/login/", {"address": "alice@example.org", "password": "secret"})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.session[SESSION_MAILBOX] == alice.pk
    assert client.session.get_expiry_age() <= 8 * 3600
    alice.refresh_from_db()
    assert alice.last_login_at is not None
    # Django's own auth stays untouched: the webmail user is a mailbox, not a User.
    assert "_auth_user_id" not in client.session


def test_sign_in_is_case_insensitive_on_the_address(client, alice):
    response = client.post("/login/", {"address": "Alice@Example.ORG", "password": "secret"})
    assert response.status_code == 302


def test_wrong_password_is_refused(client, alice):
    response = client.post("/login/", {"address": "alice@example.org", "password": "nope"})
    assert response.status_code == 401
    assert b"Wrong address or password" in response.content
    assert b'value="alice@example.org"' in response.content  # the address stays filled in
    assert SESSION_MAILBOX not in client.session


def test_unknown_address_gets_the_same_answer(client, alice):
    response = client.post("/login/", {"address": "nobody@example.org", "password": "secret"})
    assert response.status_code == 401
    assert b"Wrong address or password" in response.content


def test_missing_fields(client, alice):
    response = client.post("/login/", {"address": "", "password": ""})
    assert response.status_code == 400
    assert b"Enter your address and password" in response.content


def test_inactive_mailbox_cannot_sign_in(client, alice):
    alice.active = False
    alice.save()
    response = client.post("/login/", {"address": "alice@example.org", "password": "secret"})
    assert response.status_code == 401


def test_failed_attempts_are_slowed_then_refused(client, alice, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(auth_views, "sleep", waits.append)
    for _ in range(throttle.FREE_FAILURES):
        client.post("/login/", {"address": "alice@example.org", "password": "bad"})
    assert waits == []
    client.post("/login/", {"address": "alice@example.org", "password": "bad"})
    assert waits == [throttle.BASE_DELAY]
    client.post("/login/", {"address": "alice@example.org", "password": "bad"})
    client.post("/login/", {"address": "alice@example.org", "password": "bad"})
    assert waits[-1] == throttle.BASE_DELAY * 4
    # Beyond what a web request should wait: refused at once, password not even checked.
    response = client.post("/login/", {"address": "alice@example.org", "password": "secret"})
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 2
    assert SESSION_MAILBOX not in client.session


def test_throttle_counts_per_client_address_too(client, alice, bob, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(auth_views, "sleep", waits.append)
    for n in range(throttle.FREE_FAILURES + 1):
        client.post("/login/", {"address": f"guess{n}@example.org", "password": "x"})
    # A different address from the same client IP is slowed as well.
    client.post("/login/", {"address": "bob@example.org", "password": "hunter2"})
    assert waits and waits[-1] > 0


def test_pages_need_a_signed_in_mailbox(client, alice):
    response = client.get("/compose/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/compose/"


def test_next_is_followed_only_on_this_site(client, alice):
    response = client.post(
        "/login/", {"address": "alice@example.org", "password": "secret", "next": "/compose/"}
    )
    assert response["Location"] == "/compose/"
    client.post("/logout/")
    response = client.post(
        "/login/",
        {"address": "alice@example.org", "password": "secret", "next": "https://evil.example/"},
    )
    assert response["Location"] == "/"


def test_login_page_when_signed_in_goes_to_the_inbox(web):
    response = web.get("/login/")
    assert response.status_code == 302


def test_sign_out_ends_the_session(web):
    assert web.get("/compose/").status_code == 200
    response = web.post("/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert web.get("/compose/").status_code == 302


def test_sign_out_needs_post(web):
    assert web.get("/logout/").status_code == 405
    assert web.get("/compose/").status_code == 200


def test_csrf_is_enforced_on_sign_in_and_actions(alice, inbox):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login/", {"address": "alice@example.org", "password": "secret"})
    assert response.status_code == 403
    page = client.get("/login/")
    token = page.cookies["csrftoken"].value
    response = client.post(
        "/login/",
        {"address": "alice@example.org", "password": "secret", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    response = client.post(f"/f/{inbox.pk}/bulk/", {"action": "read", "uid": "1"})
    assert response.status_code == 403
    response = client.post("/logout/")
    assert response.status_code == 403


def test_password_change_ends_existing_sessions(web, alice):
    services.mailbox_set_password(mailbox=alice, password="changed")
    response = web.get("/compose/")
    assert response.status_code == 302
    assert SESSION_MAILBOX not in web.session


def test_disabled_mailbox_is_signed_out(web, alice):
    alice.active = False
    alice.save()
    assert web.get("/compose/").status_code == 302


def test_session_older_than_the_cookie_age_expires(web, settings):
    session = web.session
    session["webmail_started"] -= settings.SESSION_COOKIE_AGE + 10
    session.save()
    assert web.get("/compose/").status_code == 302


def test_idle_expiry_setting(client, alice, settings):
    settings.MAILHOST_WEBMAIL_IDLE_SECONDS = 600
    sign_in(client, "alice@example.org", "secret")
    assert client.session.get_expiry_age() == 600


def test_every_page_has_security_headers(web, inbox):
    for url in ("/compose/", f"/f/{inbox.pk}/", "/folders/", "/search/?q=x", "/api/status/"):
        response = web.get(url)
        assert response["Content-Security-Policy"].startswith("default-src 'none'"), url
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        assert "no-store" in response["Cache-Control"]


def test_api_answers_401_when_signed_out(client, alice):
    response = client.get("/api/status/")
    assert response.status_code == 401
    assert response.json() == {"error": "signed out"}


def test_login_wrong_method(client, alice):
    assert client.put("/login/").status_code == 405
