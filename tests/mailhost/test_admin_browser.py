"""The admin under its Content-Security-Policy in a real browser (Chromium via playwright):
the policy must block nothing the admin itself needs (issue 14 asked for a CSP on admin
pages; a policy that breaks the admin's own scripts or styles would be found only here)."""

from __future__ import annotations

import os

import pytest
from django.contrib.auth.models import User
from django.db import connections

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


def test_admin_pages_run_under_their_policy(live_settings, monkeypatch, blob_dir):
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    User.objects.create_superuser("root", "root@example.org", "a-long-admin-password")
    domain = services.domain_create(name="example.org")
    alice = services.mailbox_create(address="alice@example.org", password="a-long-secret-1")
    pages = [
        "/admin/",
        "/admin/mailboxes/domain/",
        f"/admin/mailboxes/domain/{domain.pk}/change/",
        "/admin/mailboxes/mailbox/",
        "/admin/mailboxes/mailbox/add/",
        f"/admin/mailboxes/mailbox/{alice.pk}/change/",
        "/admin/mailboxes/alias/add/",
        "/admin/delivery/outboundmessage/",
        "/admin/delivery/outboundrecipient/",
    ]
    violations: list[str] = []
    with running(runner.WEB) as ports, sync_playwright() as playwright:
        site = f"http://127.0.0.1:{ports['web']}"
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.on(
                "console",
                lambda m: (
                    violations.append(f"{page.url}: {m.text} {m.location}")
                    if "Content Security Policy" in m.text
                    else 0
                ),
            )
            page.on("pageerror", lambda exc: violations.append(str(exc)))
            page.goto(f"{site}/admin/login/")
            page.fill("#id_username", "root")
            page.fill("#id_password", "a-long-admin-password")
            page.click("input[type=submit]")
            page.wait_for_selector("#site-name")
            for path in pages:
                response = page.goto(site + path)
                assert response.status == 200, path
                assert "default-src 'none'" in response.headers["content-security-policy"]
                # The stylesheet applied (a blocked one leaves the header unstyled), and the
                # admin's scripts ran (the theme toggle is built by theme.js).
                header = page.eval_on_selector("#header", "e => getComputedStyle(e).display")
                assert header == "flex", (path, header)
                page.wait_for_selector(".theme-toggle", state="attached")
        finally:
            browser.close()
    assert violations == []
