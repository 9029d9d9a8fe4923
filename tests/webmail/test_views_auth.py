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


@pytest.fixture
def clock(monkeypatch):
    """The limiter's clock, moved on only by the view's sleep (recorded in clock.waits)."""

    class Clock:
        now = 1000.0
        waits: list[float] = []

        def sleep(self, seconds: float) -> None:
            self.waits.append(seconds)
            self.now += seconds

    fake = Clock()
    fake.waits = []
    monkeypatch.setattr(throttle, "clock", lambda: fake.now)
    monkeypatch.setattr(auth_views, "sleep", fake.sleep)
    return fake


def test_failed_attempts_are_slowed_then_refused_with_the_wait(client, alice, clock):
    for _ in range(throttle.PAIR_FREE_FAILURES):
        client.post("/login/", {"address": "alice@example.org", "password": "bad"})
    assert clock.waits == []
    client.post("/login/", {"address": "alice@example.org", "password": "bad"})
    client.post("/login/", {"address": "alice@example.org", "password": "bad"})
    assert clock.waits == [throttle.BASE_DELAY, throttle.BASE_DELAY * 2]
    # Beyond what a web request should wait: refused at once, password not even checked,
    # and the page says when to come back (so does Retry-After).
    response = client.post("/login/", {"address": "alice@example.org", "password": "secret"})
    assert response.status_code == 429
    wait = throttle.BASE_DELAY * 4
    assert wait > auth_views.MAX_WEB_WAIT
    assert response["Retry-After"] == str(int(wait))
    assert f"Try again in {int(wait)} seconds.".encode() in response.content
    assert SESSION_MAILBOX not in client.session
    # After that wait, the right password goes in.
    clock.now += wait
    response = client.post("/login/", {"address": "alice@example.org", "password": "secret"})
    assert response.status_code == 302


def test_made_up_addresses_spend_the_client_budget_not_the_users(alice, bob, clock):
    client = Client()
    assert (
        client.post("/login/", {"address": "alice@example.org", "password": "secret"})["Location"]
        == "/"
    )
    client = Client()
    for n in range(throttle.UNKNOWN_ADDRESS_BUDGET):
        client.post("/login/", {"address": f"guess{n}@example.org", "password": "x"})
    assert clock.waits == []
    # A different address, new to this client IP, is slowed now...
    client.post("/login/", {"address": "bob@example.org", "password": "hunter2"})
    assert clock.waits == [throttle.BASE_DELAY]
    # ...but not an address that signed in from this IP before.
    response = client.post("/login/", {"address": "alice@example.org", "password": "secret"})
    assert response.status_code == 302
    assert clock.waits == [throttle.BASE_DELAY]


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
