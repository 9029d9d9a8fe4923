"""Times in the reader's zone (issue 13: every time was shown in UTC). The browser names its
zone in the mailhost_tz cookie (app.js); the middleware activates it for the request."""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime

import pytest

from mailboxes.models import Message
from tests.webmail.conftest import deliver, folder, make_raw
from webmail.timezones import TIMEZONE_COOKIE, zone_named

pytestmark = pytest.mark.django_db

KOLKATA = zoneinfo.ZoneInfo("Asia/Kolkata")  # UTC+05:30: no time there reads as UTC


@pytest.fixture
def delivered(web, alice):
    deliver(make_raw(subject="Zones"))
    inbox = folder(alice, "INBOX")
    return inbox, Message.objects.get(folder=inbox)


def shown_time(html: str) -> str:
    return re.search(r"<time [^>]*>([^<]+)</time>", html).group(1)


def test_list_and_search_show_the_readers_time(web, delivered):
    inbox, message = delivered
    local = message.internal_date.astimezone(KOLKATA)
    utc = message.internal_date.astimezone(zoneinfo.ZoneInfo("UTC"))
    web.cookies[TIMEZONE_COOKIE] = "Asia/Kolkata"
    listing = web.get(f"/f/{inbox.pk}/").content.decode()
    expected = local.strftime("%H:%M") if local.date() == datetime.now(KOLKATA).date() else None
    if expected:
        assert shown_time(listing) == expected != utc.strftime("%H:%M")
    assert local.isoformat()[:16] in listing  # the machine-readable datetime= too
    search = web.get("/search/?q=Zones").content.decode()
    assert shown_time(search) == shown_time(listing)


def test_message_view_and_reply_show_the_readers_time(web, alice):
    raw = make_raw(subject="Dated").replace(
        b"Date: ", b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nX-Old-Date: ", 1
    )
    deliver(raw)
    inbox = folder(alice, "INBOX")
    message = Message.objects.get(folder=inbox)
    web.cookies[TIMEZONE_COOKIE] = "Asia/Kolkata"
    page = web.get(f"/m/{inbox.pk}/{message.uid}/").content.decode()
    assert "Tue, 1 Dec 2026 15:30 IST" in page
    reply = web.get(f"/compose/?reply={inbox.pk}:{message.uid}").content.decode()
    assert "On Tue, 01 Dec 2026 at 15:30" in reply
    web.cookies[TIMEZONE_COOKIE] = "America/New_York"
    page = web.get(f"/m/{inbox.pk}/{message.uid}/").content.decode()
    assert "Tue, 1 Dec 2026 05:00 EST" in page


@pytest.mark.parametrize(
    "cookie", ["", "Nowhere/Zone", "../../etc/passwd", "/etc/localtime", "UTC; x=1", "A" * 100]
)
def test_unknown_zone_falls_back_to_utc(web, alice, cookie):
    raw = make_raw(subject="Dated").replace(
        b"Date: ", b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nX-Old-Date: ", 1
    )
    deliver(raw)
    inbox = folder(alice, "INBOX")
    message = Message.objects.get(folder=inbox)
    web.cookies[TIMEZONE_COOKIE] = cookie
    page = web.get(f"/m/{inbox.pk}/{message.uid}/")
    assert page.status_code == 200
    assert "Tue, 1 Dec 2026 10:00 UTC" in page.content.decode()
    assert zone_named(cookie) is None
