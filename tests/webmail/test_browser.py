"""The webmail in a real browser: Debian's Chromium driven by Playwright's Python package.

Playwright never downloads a browser here: it launches /usr/bin/chromium. Without it these
tests skip with the reason, except in CI (CI=true), where they fail: CI must run them.

The app is served by the same waitress server `runmail` starts (runner.WEB), so static files,
sessions, CSRF and the CSP headers are the production ones. A local HTTP server stands in for
a tracker's remote image and records whether anything asked for it.

Screenshots of the inbox and of a read message land in test-artifacts/ (printed).
"""

from __future__ import annotations

import http.server
import os
import re
import threading
from pathlib import Path

import pytest
from django.db import connections

from mailboxes import services
from mailboxes.models import Message
from mailhost import runner
from tests.support.servers import running
from tests.webmail.conftest import folder, make_raw, release_server_connections

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "webmail"

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing; CI must run the browser tests", pytrace=False)
    pytest.skip(
        f"{CHROMIUM} is not installed (apt-get install chromium); browser tests skipped",
        allow_module_level=True,
    )

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--metrics-recording-only",
    "--mute-audio",
]


class Tracker(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - the http.server hook name
        Tracker.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.end_headers()
        self.wfile.write(
            b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00"
            b"\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
        )

    def log_message(self, *args):
        pass


@pytest.fixture
def tracker():
    Tracker.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Tracker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def site(live_settings, monkeypatch, alice, bob):
    # Playwright's sync API keeps an event loop in this thread; the ORM calls the test makes
    # between browser steps are plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # The server's threads close their connections after each request, so none outlives the
    # test (PostgreSQL refuses to drop a test database that still has sessions).
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    with running(runner.WEB) as ports:
        yield f"http://127.0.0.1:{ports['web']}"
    release_server_connections()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


def signed_in(browser, site: str, address: str, password: str, **context_options):
    context_options.setdefault("viewport", {"width": 1280, "height": 860})
    context = browser.new_context(**context_options)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Our own pages must live within their strict CSP: any violation is a console error.
    page.on(
        "console",
        lambda message: (
            errors.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.goto(f"{site}/login/")
    page.fill("#l-address", address)
    page.fill("#l-password", password)
    page.click("button[type=submit]")
    page.wait_for_selector(".message-list")
    page.js_errors = errors
    return context, page


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def test_read_html_with_script_and_remote_image_blocked(site, browser, tracker, alice):
    html = (
        "<html><body><h1>Quarterly numbers</h1>"
        "<p>Revenue is <b>up</b>.</p>"
        f'<img id="pixel" src="{tracker}/pixel.gif" alt="tracker">'
        "<script>parent.document.body.setAttribute('data-pwned', '1');"
        "document.title = 'pwned';</script>"
        f"<img src=x onerror=\"fetch('{tracker}/onerror')\">"
        "</body></html>"
    )
    services.message_deliver(
        raw=make_raw(subject="Quarterly numbers", html=html, text="Revenue is up."),
        recipients=["alice@example.org"],
    )
    senders = [
        ("Dave Bowman <dave@hal.example>", "Pod bay doors: maintenance window"),
        ("GitHub <noreply@github.example>", "[mailhost] IMAP IDLE drops after 29 minutes"),
        ("Grace Hopper <grace@navy.example>", "Slides for Thursday"),
        ("The Newsletter <news@letters.example>", "This week in mail: DKIM, DMARC and you"),
        ("Bob <bob@example.org>", "Lunch on Friday?"),
        ("Carol Danvers <carol@remote.example>", "Invoice #4211"),
    ]
    for n, (sender, subject) in enumerate(senders):
        services.message_deliver(
            raw=make_raw(
                subject=subject,
                sender=sender,
                attachments=(("notes.pdf", "application/pdf", b"%PDF-1.4"),) if n % 2 else (),
            ),
            recipients=["alice@example.org"],
        )
    inbox = folder(alice, "INBOX")
    services.messages_store_flags(folder=inbox, uids=[1, 2, 4], flags=["\\Seen"], mode="add")
    services.messages_store_flags(folder=inbox, uids=[3], flags=["\\Flagged"], mode="add")
    context, page = signed_in(browser, site, "alice@example.org", "secret")
    assert page.locator(".message-list .msg").count() == 7
    assert page.locator(".folder-link.active [data-unseen]").inner_text() == "4"
    assert page.locator(".message-list .msg.unread").count() == 4
    screenshot(page, "inbox")

    page.click("text=Quarterly numbers")
    page.wait_for_selector("iframe.html-body")
    frame = page.frame_locator("iframe.html-body")
    assert frame.locator("h1").inner_text() == "Quarterly numbers"
    page.wait_for_timeout(500)
    # The script never ran (it would have marked the parent page or renamed the frame)...
    assert page.locator("body").get_attribute("data-pwned") is None
    assert frame.locator("script").count() == 0
    # ...and the remote image was never fetched.
    assert frame.locator("img[src*=pixel]").count() == 0
    assert Tracker.hits == []
    assert page.locator("[data-test=images-blocked]").is_visible()
    # Autosized: the frame grew or shrank to its content.
    height = page.eval_on_selector("iframe.html-body", "f => f.getBoundingClientRect().height")
    assert 60 < height < 400
    screenshot(page, "message")
    assert Message.objects.get(folder=folder(alice, "INBOX"), subject="Quarterly numbers").seen

    # The reader allows remote images: now (and only now) the tracker is asked.
    page.click("[data-test=show-images]")
    page.wait_for_selector("iframe.html-body")
    page.frame_locator("iframe.html-body").locator("img#pixel, img[alt=tracker]").wait_for()
    page.wait_for_timeout(500)
    assert "/pixel.gif" in Tracker.hits
    assert "/onerror" not in Tracker.hits  # still no script
    assert page.js_errors == []
    context.close()


def test_send_reply_move_search(site, browser, alice, bob, tmp_path):
    services.folder_create(mailbox=alice, name="Projects")
    attachment = tmp_path / "plan ü.txt"
    attachment.write_text("the plan, in full\n", encoding="utf-8")

    # Alice writes to Bob with an attachment.
    alice_context, alice_page = signed_in(browser, site, "alice@example.org", "secret")
    alice_page.click("[data-test=compose]")
    alice_page.fill("#f-to", "bob@example.org")
    alice_page.fill("#f-subject", "Launch plan")
    alice_page.fill("textarea[name=body]", "Bob, the plan is attached.")
    alice_page.set_input_files("input[name=attachments]", str(attachment))
    alice_page.click("[data-test=send]")
    alice_page.wait_for_selector(".reader")
    assert "Message sent to bob@example.org." in alice_page.inner_text(".flash")
    assert "Delivered to a mailbox here" in alice_page.inner_text(".delivery")
    alice_page.goto(f"{site}/f/{folder(alice, 'INBOX').pk}/")

    # Bob, in a second browser context, finds it in his INBOX and downloads the attachment.
    bob_context, bob_page = signed_in(browser, site, "bob@example.org", "hunter2")
    row = bob_page.locator(".msg", has_text="Launch plan")
    assert row.count() == 1
    assert "unread" in row.get_attribute("class")
    row.locator(".msg-link").click()
    bob_page.wait_for_selector(".reader")
    assert "Bob, the plan is attached." in bob_page.inner_text(".message-body")
    with bob_page.expect_download() as download_info:
        bob_page.click("[data-test=attachment]")
    download = download_info.value
    assert download.suggested_filename == "plan ü.txt"
    assert Path(download.path()).read_text(encoding="utf-8") == "the plan, in full\n"

    # Bob replies; Alice's open inbox shows it without a reload (the poller).
    bob_page.click("[data-test=reply]")
    assert bob_page.input_value("#f-to") == "Alice Liddell <alice@example.org>"
    assert bob_page.input_value("#f-subject") == "Re: Launch plan"
    body = bob_page.input_value("textarea[name=body]")
    assert "> Bob, the plan is attached." in body
    bob_page.fill("textarea[name=body]", "Looks good to me.\n" + body)
    bob_page.click("[data-test=send]")
    bob_page.wait_for_selector(".reader")
    assert Message.objects.get(folder=folder(bob, "INBOX"), subject="Launch plan").answered

    alice_page.wait_for_selector(".msg:has-text('Re: Launch plan')", timeout=20_000)
    assert alice_page.url.endswith(f"/f/{folder(alice, 'INBOX').pk}/")  # no navigation
    inbox_count = alice_page.locator('.folder-link[data-folder-name="INBOX"] [data-unseen]')
    assert inbox_count.inner_text() == "1"

    # Alice moves the reply to Projects by picking it and choosing the folder.
    alice_page.locator(".msg", has_text="Re: Launch plan").locator("[data-pick]").check()
    alice_page.select_option("#bulk-form [data-move-select]", label="Projects")
    alice_page.wait_for_selector(".flash")
    assert "1 message moved to Projects." in alice_page.inner_text(".flash")
    projects = folder(alice, "Projects")
    moved = Message.objects.get(folder=projects)
    assert moved.subject == "Re: Launch plan"
    assert not Message.objects.filter(folder=folder(alice, "INBOX")).exists()

    # And finds it again by a word of its body, across folders.
    alice_page.fill("[data-search-input]", "looks good")
    alice_page.press("[data-search-input]", "Enter")
    alice_page.wait_for_selector("[data-test=search-summary]")
    results = alice_page.locator(".message-list .msg")
    assert results.count() == 1
    assert "Projects" in results.inner_text()
    results.locator(".msg-link").click()
    alice_page.wait_for_selector(".reader")
    assert re.search(r"Looks good to me\.", alice_page.inner_text(".message-body"))
    assert alice_page.js_errors == [] and bob_page.js_errors == []
    bob_context.close()
    alice_context.close()


def test_phone_layout(site, browser, alice):
    services.message_deliver(
        raw=make_raw(subject="Small screens"), recipients=["alice@example.org"]
    )
    context, page = signed_in(
        browser,
        site,
        "alice@example.org",
        "secret",
        viewport={"width": 390, "height": 800},
        is_mobile=True,
        has_touch=True,
    )
    # The folder list is off-canvas until the menu button opens it.
    assert not page.locator(".sidebar").is_visible() or page.eval_on_selector(
        ".sidebar", "s => s.getBoundingClientRect().right <= 0"
    )
    page.click(".menu-toggle")
    page.wait_for_timeout(400)
    assert page.eval_on_selector(".sidebar", "s => s.getBoundingClientRect().left >= 0")
    page.click(".scrim", position={"x": 370, "y": 400})
    page.wait_for_timeout(400)
    assert page.eval_on_selector(".sidebar", "s => s.getBoundingClientRect().right <= 0")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing sticks out sideways
    screenshot(page, "inbox-phone")
    assert page.js_errors == []
    context.close()


def test_sign_in_with_non_ascii_address(site, browser, make_mailbox):
    """Issue 13: the form's email input refused jörg@example.org before it was sent."""
    make_mailbox("jörg@example.org", password="a long password")
    services.message_deliver(
        raw=make_raw(subject="Grüße", to="jörg@example.org"), recipients=["jörg@example.org"]
    )
    context, page = signed_in(browser, site, "jörg@example.org", "a long password")
    assert page.locator(".account-address").inner_text() == "jörg@example.org"
    assert page.locator(".message-list .msg").count() == 1
    assert page.js_errors == []
    context.close()


def test_times_in_the_readers_zone(site, browser, alice):
    """Issue 13: every time was shown in UTC. Chromium in Kolkata (UTC+05:30) sees its own."""
    import zoneinfo

    raw = make_raw(subject="Dated").replace(
        b"Date: ", b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nX-Old-Date: ", 1
    )
    services.message_deliver(raw=raw, recipients=["alice@example.org"])
    message = Message.objects.get(folder=folder(alice, "INBOX"), subject="Dated")
    local = message.internal_date.astimezone(zoneinfo.ZoneInfo("Asia/Kolkata"))
    context, page = signed_in(
        browser, site, "alice@example.org", "secret", timezone_id="Asia/Kolkata"
    )
    # ICU names it by its old name
    zone = page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    assert zone in ("Asia/Kolkata", "Asia/Calcutta")
    shown = page.locator(".message-list time").first.inner_text()
    assert shown in (local.strftime("%H:%M"), local.strftime("%b %-d"))
    assert page.locator(".message-list time").first.get_attribute("datetime").endswith("+05:30")
    page.click("text=Dated")
    page.wait_for_selector(".h-date")
    assert page.locator(".h-date dd").inner_text() == "Tue, 1 Dec 2026 15:30 IST"
    page.fill("[data-search-input]", "Dated")
    page.press("[data-search-input]", "Enter")
    page.wait_for_selector(".message-list time")
    assert page.locator(".message-list time").first.inner_text() == shown
    assert page.js_errors == []
    context.close()


def test_oversized_attachment_refused_before_upload(site, browser, alice, settings, tmp_path):
    """Issue 13: a file over the limit once encoded was refused after the upload and lost.
    The page now checks the total before anything is sent and keeps the rest of the form."""
    settings.MAILHOST_MAX_MESSAGE_SIZE = 200_000  # attachments can total 131 KB
    big = tmp_path / "report.bin"
    big.write_bytes(b"\0" * 190_000)  # under the message limit, over it once encoded
    small = tmp_path / "summary.txt"
    small.write_bytes(b"the short version\n")
    context, page = signed_in(browser, site, "alice@example.org", "secret")
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.click("[data-test=compose]")
    assert "Attachments up to 131 KB in all" in page.inner_text("[data-test=attachment-limit]")
    page.fill("#f-to", "bob@example.org")
    page.fill("#f-subject", "Quarterly report")
    page.fill("textarea[name=body]", "Numbers attached.")
    page.set_input_files("[data-file-input]", [str(big), str(small)])
    error = page.locator("[data-test=error-attachments-client]")
    error.wait_for(state="visible")
    assert "Not attached: report.bin (0.2 MB), summary.txt" in error.inner_text()
    assert page.eval_on_selector("[data-file-input]", "i => i.files.length") == 0
    assert posts == []  # nothing was uploaded
    assert page.input_value("#f-to") == "bob@example.org"
    assert page.input_value("#f-subject") == "Quarterly report"
    assert page.input_value("textarea[name=body]") == "Numbers attached."
    # A file that fits is taken, and the message goes out with it.
    page.set_input_files("[data-file-input]", [str(small)])
    assert not error.is_visible()
    page.click("[data-test=send]")
    page.wait_for_selector(".reader")
    sent = Message.objects.get(folder=folder(alice, "Sent"), subject="Quarterly report")
    assert sent.has_attachments
    assert page.js_errors == []
    context.close()
