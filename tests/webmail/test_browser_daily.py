"""The daily flow in Chromium: the list (preview, unread, conversations), new mail arriving
without a reload, the keyboard, and axe-core on every page; screenshots in test-artifacts/."""

from __future__ import annotations

import time

import pytest

from mailboxes import services
from tests.webmail.conftest import folder, make_raw
from tests.webmail.test_browser import browser, screenshot, signed_in, site  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def deliver(raw: bytes, to: str = "alice@example.org") -> None:
    results = services.message_deliver(raw=raw, recipients=[to])
    assert all(r.accepted for r in results), results


def test_list_shows_preview_unread_and_conversations(site, browser, alice):  # noqa: F811
    deliver(make_raw(subject="Plans", message_id="<plan@remote.example>", text="Shall we?\n"))
    deliver(
        make_raw(
            subject="Re: Plans",
            sender="Dan Brown <dan@remote.example>",
            references="<plan@remote.example>",
            text="Yes, Friday at ten works for me.\n",
        )
    )
    deliver(make_raw(subject="Invoice", sender="Shop <shop@remote.example>", text="Paid.\n"))
    inbox = folder(alice, "INBOX")
    services.messages_store_flags(folder=inbox, uids=[3], flags=["\\Seen"], mode="add")
    context, page = signed_in(browser, site, "alice@example.org", "secret")
    rows = page.locator(".message-list .msg")
    assert rows.count() == 2  # the two Plans messages are one conversation
    first, second = rows.nth(0), rows.nth(1)
    assert first.locator(".who").inner_text().startswith("Shop")
    assert "unread" not in first.get_attribute("class")
    assert first.locator(".subject").evaluate("e => getComputedStyle(e).fontWeight") == "400"
    assert "Dan Brown" in second.locator(".who").inner_text()
    assert second.locator("[data-test=thread-count]").inner_text() == "2"
    assert "Yes, Friday at ten works for me." in second.locator("[data-test=preview]").inner_text()
    assert second.locator(".subject").evaluate("e => getComputedStyle(e).fontWeight") == "700"
    screenshot(page, "daily-inbox-desktop")
    assert page.js_errors == []
    context.close()


def test_new_mail_arrives_without_reload_within_two_seconds(site, browser, alice):  # noqa: F811
    deliver(make_raw(subject="Already here"))
    context, page = signed_in(browser, site, "alice@example.org", "secret")
    page.evaluate("window.__sameDocument = true")
    page.wait_for_timeout(500)  # the page's first long-poll is now held by the server
    started = time.monotonic()
    deliver(make_raw(subject="Pushed live", sender="Eve <eve@remote.example>"))
    page.wait_for_selector(".msg .subject:text('Pushed live')", timeout=2000)
    latency = time.monotonic() - started
    print(f"live push: delivery to row shown in {latency * 1000:.0f} ms")
    assert latency < 2
    assert page.evaluate("window.__sameDocument") is True  # no reload
    assert page.locator('.folder-link[data-folder-name="INBOX"] [data-unseen]').inner_text() == "2"
    assert page.title().startswith("(2)")
    assert page.js_errors == []
    context.close()
