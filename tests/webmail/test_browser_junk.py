""" "Why is this junk?", Not junk, Junk and the sender lists in a real browser (Chromium via
Playwright, served by runmail's web server; see test_browser.py)."""

from __future__ import annotations

import pytest

from delivery.models import SpamTraining
from mailboxes import selectors, services
from mailboxes.models import Message
from tests.webmail.conftest import folder
from tests.webmail.test_browser import browser, screenshot, signed_in, site  # noqa: F401
from tests.webmail.test_junk import spoofed_raw

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_why_junk_then_not_junk_then_junk_again(site, browser, alice):  # noqa: F811
    services.message_deliver(
        raw=spoofed_raw(sender="Ann <ann@friends.example>", subject="Dinner on Saturday"),
        recipients=["alice@example.org"],
    )
    junk_folder, inbox = folder(alice, "Junk"), folder(alice, "INBOX")
    assert junk_folder.message_count == 1
    context, page = signed_in(browser, site, "alice@example.org", "secret")

    page.click('.folder-link[data-folder-name="Junk"]')
    page.click("text=Dinner on Saturday")
    why = page.locator("[data-test=why-junk]")
    why.wait_for()
    text = why.inner_text()
    assert "Why is this junk?" in text
    assert "Claims to be from paypal.com but paypal.com's DMARC policy sends it to Junk." in text
    assert "Sent from 192.0.2.7, which paypal.com does not allow to send its mail." in text
    screenshot(page, "why-junk")

    page.click("#message-actions [data-test=notjunk]")
    page.wait_for_selector(".flash")
    flash = page.inner_text(".flash")
    assert "1 message moved to Inbox." in flash
    assert "Mail from ann@friends.example will not go to Junk again." in flash
    assert Message.objects.filter(folder=inbox, subject="Dinner on Saturday").count() == 1
    assert selectors.sender_lists([alice.pk], "ann@friends.example") == {alice.pk: "allow"}
    assert list(SpamTraining.objects.values_list("mailbox_id", "spam")) == [(alice.pk, False)]

    # In the Inbox the same message offers "Junk" (and no explanation).
    page.click('.folder-link[data-folder-name="INBOX"]')
    page.click("text=Dinner on Saturday")
    page.wait_for_selector(".reader")
    assert page.locator("[data-test=why-junk]").count() == 0
    assert page.locator("#message-actions [data-test=notjunk]").count() == 0
    page.click("#message-actions [data-test=junk]")
    page.wait_for_selector(".flash")
    assert "1 message moved to Junk." in page.inner_text(".flash")
    assert Message.objects.filter(folder=junk_folder, subject="Dinner on Saturday").count() == 1
    # The filter learned it as spam again (one training row per message: the latest word).
    assert list(SpamTraining.objects.values_list("mailbox_id", "spam")) == [(alice.pk, True)]

    # The allow list entry "Not junk" made is on the settings page, and can be removed there.
    page.click("[data-test=senders]")
    # count() does not wait: wait for the page the click loads before counting on it.
    page.wait_for_selector("#sender-pattern")
    row = page.locator('[data-list=allow] tr[data-sender="ann@friends.example"]')
    assert row.count() == 1
    page.fill("#sender-pattern", "@spam.example")
    page.click("[data-test=sender-add] button[value=block]")
    page.wait_for_selector('[data-list=block] tr[data-sender="@spam.example"]')
    screenshot(page, "senders")
    page.locator('[data-list=allow] tr[data-sender="ann@friends.example"] button').click()
    page.wait_for_selector("[data-empty=allow]")
    assert selectors.sender_lists([alice.pk], "ann@friends.example") == {alice.pk: None}
    assert selectors.sender_lists([alice.pk], "x@spam.example") == {alice.pk: "block"}
    assert page.js_errors == []
    context.close()
