"""The outbound queue's tables at 1366x768 in Chromium (playwright): a wide row scrolls inside
the table's container, the page itself does not overflow sideways (issue 13)."""

from __future__ import annotations

import os

import pytest
from django.contrib.auth.models import User
from django.db import connections

from delivery.models import OutboundMessage, OutboundRecipient, RecipientStatus
from mailboxes import services
from mailhost import runner
from tests.support.servers import running

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing; CI must run the browser tests", pytrace=False)
    pytest.skip(
        f"{CHROMIUM} is not installed (apt-get install chromium); browser tests skipped",
        allow_module_level=True,
    )

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# What a real deferral looks like: long host names and a long reply from a big provider.
MX = "mx-01.eu-west-1.inbound-mail-protection.provider-of-mail.example.com[2001:db8:85a3::8a2e:370:7334]"
REPLY = (
    "451 4.7.500 Server busy. Please try again later from [198.51.100.23]."
    " (AS761) [AM0PR01MB1234.eurprd01.prod.exchangelabs.example.com]"
)

MEASURE = """(selector) => {
  const box = document.querySelector(selector);
  const before = box.scrollLeft;
  box.scrollBy(200, 0);
  return {
    page: document.documentElement.scrollWidth,
    viewport: document.documentElement.clientWidth,
    scroll: box.scrollWidth,
    box: box.clientWidth,
    overflowX: getComputedStyle(box).overflowX,
    scrolled: box.scrollLeft - before,
  };
}"""


def test_queue_tables_scroll_inside_their_container_at_1366(live_settings, monkeypatch):
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    User.objects.create_superuser("root", "root@example.org", "a-long-admin-password")
    blob = services.blob_store(b"Subject: x\r\n\r\nx\r\n")
    for n in range(5):
        message = OutboundMessage.objects.create(
            queue_id=f"4QX7N2{n:04d}ZKJ8WQ", blob=blob, mail_from=f"newsletter-{n}@example.org"
        )
        OutboundRecipient.objects.create(
            message=message,
            address=f"someone.with.a.long.name-{n}@subsidiary.example-corporation.example",
            status=RecipientStatus.DEFERRED,
            attempts=3,
            last_reply=REPLY,
            mx_used=MX,
        )
    with running(runner.WEB) as ports, sync_playwright() as playwright:
        site = f"http://127.0.0.1:{ports['web']}"
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.goto(f"{site}/admin/login/")
            page.fill("#id_username", "root")
            page.fill("#id_password", "a-long-admin-password")
            page.click("input[type=submit]")
            page.wait_for_selector("#site-name")
            first = OutboundMessage.objects.order_by("id").first().pk
            pages = [
                # A message and its recipients: the table that overflowed the page.
                (f"/admin/delivery/outboundmessage/{first}/change/", ".inline-group .tabular"),
                ("/admin/delivery/outboundrecipient/", "#changelist-form .results"),
            ]
            for path, selector in pages:
                assert page.goto(site + path).status == 200
                m = page.evaluate(MEASURE, selector)
                assert m["viewport"] == 1366, m
                # The page does not scroll sideways; the table's own box does.
                assert m["page"] <= m["viewport"], (path, m)
                assert m["overflowX"] in {"auto", "scroll"}, (path, m)
                assert m["scroll"] > m["box"] and m["scrolled"] > 0, (path, m)
        finally:
            browser.close()
