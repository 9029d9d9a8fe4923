"""The daily flow in Chromium: the list (preview, unread, conversations), new mail arriving
without a reload, the keyboard, and axe-core on every page; screenshots in test-artifacts/."""

from __future__ import annotations

import time

import pytest

from mailboxes import services
from tests.webmail.axe import serious_violations
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


def test_keyboard_only(site, browser, alice):  # noqa: F811
    for n in range(3):
        deliver(make_raw(subject=f"Key {n}", text=f"Body {n}\n"))
    context, page = signed_in(browser, site, "alice@example.org", "secret")
    page.keyboard.press("?")
    dialog = page.locator("[data-shortcuts]")
    assert dialog.is_visible() and "Reply all" in dialog.inner_text()
    screenshot(page, "daily-shortcuts")
    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    page.keyboard.press("j")
    page.keyboard.press("j")
    focused = page.evaluate("document.activeElement.querySelector('.subject').textContent")
    assert focused == "Key 1"  # newest first: Key 2, then Key 1
    page.keyboard.press("k")
    page.keyboard.press("e")  # archive the current line
    page.wait_for_selector(".flash")
    assert "moved to Archive" in page.locator(".flash").inner_text()
    subjects = page.locator(".message-list .subject").all_inner_texts()
    assert subjects == ["Key 1", "Key 0"]
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-test=reply]")
    page.keyboard.press("r")
    page.wait_for_url("**/compose/?reply=*")
    page.go_back()
    page.keyboard.press("#")  # delete the open message
    page.wait_for_selector(".flash")
    assert "moved to Trash" in page.locator(".flash").inner_text()
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Search mail"
    page.keyboard.press("Escape")
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("c")
    page.wait_for_url("**/compose/")
    assert page.js_errors == []
    context.close()


def test_select_all_across_pages(site, browser, alice):  # noqa: F811
    from webmail.views.common import PAGE_SIZE

    inbox = folder(alice, "INBOX")
    for n in range(PAGE_SIZE + 2):
        services.message_append(folder=inbox, raw=make_raw(subject=f"Many {n}"), flags=[])
    context, page = signed_in(browser, site, "alice@example.org", "secret")
    assert not page.locator("[data-test=select-folder]").is_visible()
    page.check("[data-pick-all]")
    offer = page.locator("[data-test=select-folder]")
    assert offer.inner_text() == f"Select all {PAGE_SIZE + 2} messages in INBOX"
    offer.click()
    assert page.locator("[data-selection-count]").inner_text().startswith(f"All {PAGE_SIZE + 2}")
    page.click("button[name=action][value=read]")
    page.wait_for_selector(".flash")
    assert f"{PAGE_SIZE + 2} messages marked read" in page.locator(".flash").inner_text()
    assert page.locator(".msg.unread").count() == 0
    assert page.js_errors == []
    context.close()


PAGES = [
    ("inbox", "/"),
    ("message", None),  # the first message of the inbox
    ("compose", "/compose/"),
    ("search", "/search/?q=Axe"),
    ("folders", "/folders/"),
    ("senders", "/settings/senders/"),
    ("filters", "/settings/filters/"),
    ("vacation", "/settings/vacation/"),
    ("forwarding", "/settings/forwarding/"),
    ("account", "/settings/account/"),
    ("sessions", "/settings/sessions/"),
    ("app-passwords", "/settings/app-passwords/"),
    ("two-factor", "/settings/two-factor/"),
    ("mail-apps", "/settings/mail-apps/"),
    ("identities", "/settings/identities/"),
    ("contacts", "/contacts/"),
]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_core_finds_no_serious_violation_on_any_page(site, browser, alice, scheme):  # noqa: F811
    deliver(
        make_raw(
            subject="Axe check",
            sender="Ann Example <ann@remote.example>",
            html="<p>Hello <b>Alice</b></p>",
            attachments=(("notes.txt", "text/plain", b"notes"),),
        )
    )
    problems: dict[str, list[str]] = {}
    login = browser.new_context(color_scheme=scheme)
    page = login.new_page()
    page.goto(f"{site}/login/")
    problems["login"] = serious_violations(page)
    login.close()
    context, page = signed_in(browser, site, "alice@example.org", "secret", color_scheme=scheme)
    inbox = folder(alice, "INBOX")
    for name, path in PAGES:
        response = page.goto(site + (path or f"/m/{inbox.pk}/1/"))
        assert response.status == 200, (name, response.status)
        page.wait_for_load_state("load")
        problems[name] = serious_violations(page)
    found = {name: found for name, found in problems.items() if found}
    assert found == {}, "\n".join(f"{name}: {lines}" for name, lines in found.items())
    assert page.js_errors == []
    context.close()


@pytest.mark.parametrize(
    ("device", "options"),
    [
        ("desktop", {"viewport": {"width": 1280, "height": 860}}),
        (
            "phone",
            {"viewport": {"width": 390, "height": 800}, "is_mobile": True, "has_touch": True},
        ),
    ],
)
def test_screenshots_of_inbox_message_and_compose(site, browser, alice, device, options):  # noqa: F811
    deliver(make_raw(subject="Team lunch", message_id="<lunch@remote.example>", text="Friday?\n"))
    deliver(
        make_raw(
            subject="Re: Team lunch",
            sender="Dan Brown <dan@remote.example>",
            references="<lunch@remote.example>",
            text="Friday at noon works, see you at the usual place.\n",
        )
    )
    deliver(
        make_raw(
            subject="Quarterly report",
            sender="Finance <finance@remote.example>",
            text="The report is attached.\n",
            html="<h1>Q3</h1><p>The report is <b>attached</b>.</p>",
            attachments=(("q3.pdf", "application/pdf", b"%PDF-1.4"),),
        )
    )
    context, page = signed_in(browser, site, "alice@example.org", "secret", **options)
    shots = [screenshot(page, f"inbox-{device}")]
    page.click(".msg .subject:text('Quarterly report')")
    page.wait_for_selector("[data-test=raw]", state="attached")
    page.wait_for_load_state("load")
    shots.append(screenshot(page, f"message-{device}"))
    page.goto(f"{site}/compose/")
    shots.append(screenshot(page, f"compose-{device}"))
    assert all(path.stat().st_size > 10_000 for path in shots)
    assert page.js_errors == []
    context.close()


def test_compose_identity_signature_and_autocomplete(site, browser, alice, bob):  # noqa: F811
    services.alias_create(address="sales@example.org", destinations=["alice@example.org"])
    services.identity_save(
        mailbox=alice, address="alice@example.org", name="Alice", signature="Alice\nExample Org",
        is_default=True,
    )  # fmt: skip
    services.identity_save(
        mailbox=alice, address="sales@example.org", name="ACME Sales", signature="The Sales Team",
        is_default=False,
    )  # fmt: skip
    deliver(make_raw(sender="Dana Scully <dana@fbi.example>"))
    context, page = signed_in(browser, site, "alice@example.org", "secret")
    page.goto(f"{site}/compose/")
    body = page.locator("[data-body]")
    assert body.input_value().endswith("\n\n-- \nAlice\nExample Org\n")  # signature inserted
    page.select_option("[data-test=from]", "sales@example.org")  # identity chosen
    assert body.input_value().endswith("\n\n-- \nThe Sales Team\n")
    assert "Example Org" not in body.input_value()
    page.locator("#f-to").press_sequentially("bob@example.org, dan", delay=30)
    option = page.locator("#address-suggestions option")
    option.first.wait_for(state="attached", timeout=3000)
    assert (
        option.first.get_attribute("value") == "bob@example.org, Dana Scully <dana@fbi.example>, "
    )
    page.fill("#f-to", option.first.get_attribute("value"))
    page.fill("#f-subject", "From sales")
    body.press("Control+Home")
    body.type("Our offer.")
    page.click("[data-test=send]")
    page.wait_for_selector(".flash")
    sent = services.Message.objects.get(folder=folder(bob, "INBOX"), subject="From sales")
    assert sent.from_display == "ACME Sales <sales@example.org>"
    assert page.js_errors == []
    context.close()


def test_draft_saves_itself_while_typing(site, browser, alice):  # noqa: F811
    from mailboxes.models import Message

    context, page = signed_in(browser, site, "alice@example.org", "secret")
    page.goto(f"{site}/compose/")
    page.fill("#f-to", "bob@example.org")
    page.fill("#f-subject", "Autosaved")
    page.locator("[data-body]").press("Control+Home")
    page.locator("[data-body]").type("First words")
    page.wait_for_selector("[data-test=autosave]:text('Draft saved')", timeout=8000)
    drafts = folder(alice, "Drafts")
    first = Message.objects.get(folder=drafts, subject="Autosaved")
    page.locator("[data-body]").type(", more words")
    uid_input = page.locator("input[name=draft_uid]")
    deadline = time.monotonic() + 8
    while uid_input.input_value() == str(first.uid) and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert uid_input.input_value() != str(first.uid)
    saved = Message.objects.filter(folder=drafts, subject="Autosaved")
    assert saved.count() == 1 and saved.get().uid != first.uid  # replaced, not piled up
    assert "First words, more words" in saved.get().preview
    assert page.url.endswith("/compose/")  # no navigation
    assert page.js_errors == []
    context.close()


def test_rich_text_compose(site, browser, alice, bob):  # noqa: F811
    from email import message_from_bytes, policy

    from mailboxes import selectors
    from mailboxes.models import Message

    context, page = signed_in(browser, site, "alice@example.org", "secret")
    page.goto(f"{site}/compose/")
    page.fill("#f-to", "bob@example.org")
    page.fill("#f-subject", "Formatted")
    page.check("[data-test=rich-toggle]")
    editor = page.locator("[data-test=rich-editor]")
    assert editor.is_visible() and not page.locator("[data-body]").is_visible()
    editor.click()
    page.keyboard.press("Control+Home")
    page.click("[data-command=bold]")
    page.keyboard.type("Important")
    page.click("[data-command=bold]")
    page.keyboard.type(" news")
    screenshot(page, "compose-rich-desktop")
    page.click("[data-test=send]")
    page.wait_for_selector(".flash")
    received = Message.objects.get(folder=folder(bob, "INBOX"), subject="Formatted")
    parsed = message_from_bytes(selectors.blob_read(received.blob), policy=policy.default)
    plain, html = parsed.get_payload()
    assert "<b>Important</b> news" in html.get_content()
    assert plain.get_content().startswith("Important news")
    assert page.js_errors == []
    context.close()
