"""The Filters page in a real browser (Chromium via Playwright, served by runmail's web
server; see test_browser.py): a rule is created with the form, shown, and stored as the
mailbox's active Sieve script."""

from __future__ import annotations

import pytest

from mailboxes import selectors, sieve
from tests.webmail.test_browser import browser, screenshot, signed_in, site  # noqa: F401
from webmail import filters

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_create_a_rule_in_the_browser(site, browser, alice):  # noqa: F811
    context, page = signed_in(browser, site, "alice@example.org", "secret")
    page.click("[data-test=filters]")
    page.wait_for_selector("[data-empty=rules]")
    form = page.locator("[data-test=rule-add]")
    form.locator("#rule-name").fill("Invoices")
    form.locator("select[name=field_0]").select_option("subject")
    form.locator("select[name=operator_0]").select_option("contains")
    form.locator("input[name=value_0]").fill("invoice")
    form.locator("select[name=action_0]").select_option("move")
    form.locator("select[name=folder_0]").select_option("Archive")
    form.locator("select[name=action_1]").select_option("flag")
    form.locator("button[type=submit]").click()
    page.wait_for_selector('[data-rule="Invoices"]')
    assert "Rule “Invoices” added." in page.inner_text(".flash")
    assert "Subject contains “invoice”: Move to folder “Archive”, Flag" in page.inner_text(
        '[data-rule="Invoices"]'
    )
    shown = page.inner_text("[data-test=generated]")
    script = selectors.sievescript_active(alice.pk)
    assert shown.strip() == script.text.strip()
    assert sieve.check(script.text) == []
    [rule] = filters.parse(script.text).rules
    assert rule.actions == (filters.Action("move", "Archive"), filters.Action("flag"))
    screenshot(page, "filters")
    # Edit it: the form comes back filled in; the rule keeps its place.
    page.click('[data-rule="Invoices"] [data-test=edit]')
    page.wait_for_selector("text=Edit rule “Invoices”")
    assert form.locator("input[name=value_0]").input_value() == "invoice"
    form.locator("select[name=folder_0]").select_option("Junk")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("text=Rule “Invoices” saved.")
    [rule] = filters.parse(selectors.sievescript_active(alice.pk).text).rules
    assert rule.actions[0] == filters.Action("move", "Junk")
    assert page.js_errors == []
    context.close()
