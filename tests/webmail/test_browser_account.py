"""Account security in Chromium (Playwright, like tests/webmail/test_browser.py): two-factor
enrolment and sign-in with codes computed here, an app password made in the page and used by
imaplib while the main password is refused, a password change that ends another browser's
session, sign out everywhere. Screenshots of each settings page, desktop and phone, land in
test-artifacts/webmail/ (printed)."""

from __future__ import annotations

import imaplib
import re
import ssl

import pytest
from django.db import connections
from playwright.sync_api import Error as PlaywrightError

from mailboxes import services, totp
from mailboxes.models import Mailbox, Passkey
from mailhost import runner
from protocols.imap import responses as imap_responses
from tests.support.servers import running
from tests.webmail.conftest import release_server_connections
from tests.webmail.test_browser import (  # noqa: F401 - fixtures
    browser,
    screenshot,
    signed_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True}
NEW_PASSWORD = "a much longer password 2026"
SECRET = totp.new_secret()


@pytest.fixture
def site(live_settings, monkeypatch, alice):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    with running(runner.WEB, runner.IMAP) as ports:
        yield f"http://localhost:{ports['web']}", ports
    release_server_connections()


def tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the listeners' self-signed test certificate
    return context


def imap_login(port: int, password: str) -> str:
    client = imaplib.IMAP4("127.0.0.1", port)
    client.starttls(ssl_context=tls())
    try:
        return client.login("alice@example.org", password)[0]
    finally:
        client.logout()


def lands_on_sign_in(page, url: str) -> None:
    """A signed-out page ends on the sign-in page: the visit to `url` is sent there, unless the
    page's own long-poll, answered 401, reloaded it there first (a navigation that interrupts the
    visit)."""
    try:
        page.goto(url)
    except PlaywrightError as exc:
        if "interrupted by another navigation" not in str(exc):
            raise
    page.wait_for_url(re.compile(r"/login/"))
    page.wait_for_selector("#l-address")


def enrol_two_factor(page, url: str) -> str:
    page.goto(f"{url}/settings/two-factor/")
    secret = page.get_attribute("[data-test=totp-secret]", "data-secret")
    assert page.locator("[data-test=totp-qr]").evaluate("img => img.naturalWidth") > 100
    page.fill("#tf-code", totp.code_at(secret))
    page.click("button[value=enable]")
    page.wait_for_selector("[data-test=recovery-codes]")
    return secret


def test_settings_pages_desktop_and_phone(site, browser, alice):  # noqa: F811
    url, _ports = site
    for label, options in (("desktop", {}), ("phone", PHONE)):
        context, page = signed_in(browser, url, "alice@example.org", "secret", **options)
        for name, path in (
            ("account", "/settings/account/"),
            ("sessions", "/settings/sessions/"),
            ("app-passwords", "/settings/app-passwords/"),
            ("two-factor", "/settings/two-factor/"),
        ):
            page.goto(f"{url}{path}")
            page.wait_for_selector(".settings-tabs [aria-current=page]")
            screenshot(page, f"settings-{name}-{label}")
        assert page.js_errors == []
        context.close()


def test_two_factor_sign_in_and_app_password_over_imap(site, browser, alice):  # noqa: F811
    url, ports = site
    context, page = signed_in(browser, url, "alice@example.org", "secret")
    secret = enrol_two_factor(page, url)
    screenshot(page, "settings-recovery-codes-desktop")
    # An app password made in the page, read off it once.
    page.goto(f"{url}/settings/app-passwords/")
    page.fill("#ap-name", "Laptop mail app")
    page.click("[data-test=app-password-add] button")
    app_password = page.inner_text("[data-test=app-password-secret]")
    screenshot(page, "settings-app-password-created-desktop")
    # IMAP: the main password is refused with the hint, the app password opens it.
    with pytest.raises(imaplib.IMAP4.error) as refused:
        imap_login(ports["imap"], "secret")
    assert imap_responses.NO_AUTH_APP_PASSWORD.text.encode() in refused.value.args[0]
    assert imap_login(ports["imap"], app_password) == "OK"
    page.goto(f"{url}/settings/app-passwords/")
    assert page.inner_text("[data-test=app-passwords] [data-last-used]") != "Never"
    context.close()

    # A new browser: password, then a code computed here.
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.goto(f"{url}/login/")
    page.fill("#l-address", "alice@example.org")
    page.fill("#l-password", "secret")
    page.click("button[type=submit]")
    page.wait_for_selector("#l-code")
    screenshot(page, "login-two-factor-desktop")
    step = Mailbox.objects.get(pk=alice.pk).totp_last_step + 1
    page.fill("#l-code", totp.hotp(secret, max(step, totp.step_at())))
    page.click("button[type=submit]")
    page.wait_for_selector(".message-list")
    context.close()


def test_password_change_ends_the_other_browser_and_sign_out_everywhere(
    site,
    browser,  # noqa: F811
    alice,
):
    url, _ports = site
    laptop, laptop_page = signed_in(browser, url, "alice@example.org", "secret")
    phone, phone_page = signed_in(browser, url, "alice@example.org", "secret", **PHONE)
    laptop_page.goto(f"{url}/settings/sessions/")
    assert laptop_page.locator("[data-test=sessions] tbody tr").count() == 2
    laptop_page.goto(f"{url}/settings/account/")
    laptop_page.fill("#p-old", "secret")
    laptop_page.fill("#p-new", NEW_PASSWORD)
    laptop_page.fill("#p-new2", NEW_PASSWORD)
    laptop_page.click("[data-test=password-change] button")
    laptop_page.wait_for_selector(".flash-success")
    lands_on_sign_in(phone_page, f"{url}/settings/account/")
    laptop_page.goto(f"{url}/settings/sessions/")
    assert laptop_page.locator("[data-test=sessions] tbody tr").count() == 1

    # Sign in on the phone again, then sign out everywhere from the laptop.
    phone_page.fill("#l-address", "alice@example.org")
    phone_page.fill("#l-password", NEW_PASSWORD)
    phone_page.click("button[type=submit]")
    phone_page.wait_for_selector("[data-test=password-change]")  # back to ?next=
    laptop_page.goto(f"{url}/settings/sessions/")
    assert laptop_page.locator("[data-test=sessions] tbody tr").count() == 2
    laptop_page.click("[data-test=sign-out-everywhere] button")
    laptop_page.wait_for_selector(".flash-success")
    assert laptop_page.locator("[data-test=sessions] tbody tr").count() == 1
    lands_on_sign_in(phone_page, f"{url}/settings/account/")
    laptop.close()
    phone.close()


def test_passkey_sign_in_through_chromiums_virtual_authenticator(site, browser, alice):  # noqa: F811
    url, _ports = site
    context, page = signed_in(browser, url, "alice@example.org", "secret")
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    page.goto(f"{url}/settings/two-factor/")
    page.fill("#pk-name", "Virtual key")
    page.click("[data-passkey-register]")
    page.wait_for_selector("[data-test=passkeys] [data-passkey]")
    screenshot(page, "settings-passkeys-desktop")
    passkey = Passkey.objects.get()
    assert (passkey.mailbox_id, passkey.name) == (alice.pk, "Virtual key")

    # Passwordless: no address, no password.
    page.click("[data-test=logout]")
    page.wait_for_selector("#l-address")
    page.click("[data-test=passkey-login]")
    page.wait_for_selector(".message-list")
    assert Passkey.objects.get().last_used_at is not None

    # As the second step after the password of a two-factor mailbox.
    services.totp_enable(
        mailbox=Mailbox.objects.get(pk=alice.pk), secret=SECRET, code=totp.code_at(SECRET)
    )
    page.click("[data-test=logout]")
    page.fill("#l-address", "alice@example.org")
    page.fill("#l-password", "secret")
    page.click("button[type=submit]")
    page.wait_for_selector("#l-code")
    page.click("[data-test=passkey-login]")
    page.wait_for_selector(".message-list")
    assert page.js_errors == []
    context.close()
