"""The webmail in the reader's language, in Chromium: the browser's Accept-Language picks it
before any choice, and the language chosen under Settings > Account wins after."""

from __future__ import annotations

import pytest

from tests.webmail.test_browser import browser, screenshot, site  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page, base: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("#l-address", "alice@example.org")
    page.fill("#l-password", "secret")
    page.click("button[type=submit]")
    page.wait_for_selector(".message-list")


def test_accept_language_then_the_readers_choice(site, browser, alice):  # noqa: F811
    # A French browser: the sign-in page and the inbox are in French before any choice.
    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    login = page.goto(f"{site}/login/")
    assert login.headers["content-language"] == "fr"
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.locator("h1").inner_text() == "Connectez-vous à votre boîte aux lettres"
    assert page.get_by_label("Mot de passe").is_visible()
    sign_in(page, site)
    assert page.locator(".pane-head h1").inner_text() == "Boîte de réception"
    assert page.locator("[data-test=compose]").inner_text() == "Nouveau message"

    # The reader chooses German: the inbox and compose are in German, French browser or not.
    page.goto(f"{site}/settings/account/")
    page.get_by_label("Langue").select_option("de")
    page.locator("[data-test=preferences] button[type=submit]").click()
    page.wait_for_load_state("load")
    assert page.locator("html").get_attribute("lang") == "de"
    assert page.locator(".flash").inner_text() == "Gespeichert."
    page.goto(f"{site}/")
    assert page.locator(".pane-head h1").inner_text() == "Posteingang"
    assert page.locator(".pane-sub").inner_text() == "0 Nachrichten"
    assert page.get_by_role("link", name="Verfassen").is_visible()
    assert page.get_by_role("button", name="Abmelden").is_visible()
    screenshot(page, "language-inbox-de")
    # The settings pages too.
    page.goto(f"{site}/settings/sessions/")
    assert page.locator(".pane-head h1").inner_text() == "Sitzungen und Geräte"
    assert page.get_by_role("button", name="Überall sonst abmelden").is_visible()
    page.goto(f"{site}/settings/two-factor/")
    assert page.get_by_role("button", name="Einschalten").is_visible()
    page.goto(f"{site}/settings/vacation/")
    assert page.locator(".pane-head h1").inner_text() == "Abwesenheitsnotiz"
    page.goto(f"{site}/search/?q=Urlaub")
    summary = page.locator("[data-test=search-summary]").inner_text()
    assert summary == "0 Treffer für „Urlaub“ in allen Ordnern."
    page.goto(f"{site}/")
    page.get_by_role("link", name="Verfassen").click()
    page.wait_for_selector(".compose-form")
    assert page.locator(".pane-head h1").inner_text() == "Neue Nachricht"
    for label in ("Von", "An", "Betreff"):
        assert page.get_by_label(label, exact=True).is_visible(), label
    assert page.get_by_role("button", name="Senden").is_visible()
    assert page.get_by_role("button", name="Entwurf speichern").is_visible()
    screenshot(page, "language-compose-de")
    # A message sent from there is confirmed in German too.
    page.get_by_label("An", exact=True).fill("bob@example.org")
    page.get_by_label("Betreff", exact=True).fill("Hallo")
    page.get_by_role("button", name="Senden").click()
    page.wait_for_selector(".flash")
    assert page.locator(".flash").inner_text() == "Nachricht an bob@example.org gesendet."
    context.close()
