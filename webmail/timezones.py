"""The reader's time zone: every time the webmail shows is in it (issue 13: all were UTC).

The browser names its zone (Intl.DateTimeFormat().resolvedOptions().timeZone) in the cookie
TIMEZONE_COOKIE, set by app.js on every page, the sign-in page included; this middleware
activates that zone for the request, so timezone.localtime(), the `date` filter and
short_date() use it. A missing or unknown name leaves UTC (settings.TIME_ZONE).
"""

from __future__ import annotations

import re
import zoneinfo

from django.http import HttpRequest, HttpResponse
from django.utils import timezone, translation

TIMEZONE_COOKIE = "mailhost_tz"
# An IANA zone name ("Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5"); the
# shape is checked before zoneinfo opens a file by that name.
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+){0,2}")


def zone_named(name: str) -> zoneinfo.ZoneInfo | None:
    if not name or len(name) > 64 or not _ZONE_NAME.fullmatch(name):
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


class ReaderTimezoneMiddleware:
    def __init__(self, get_response):  # noqa: ANN001 - Django's middleware protocol
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # The zone and language chosen under Settings > Account come first (kept in the
        # session by webmail.auth), then the browser's zone.
        session = getattr(request, "session", None) or {}
        zone = zone_named(session.get("webmail_tz", "")) or zone_named(
            request.COOKIES.get(TIMEZONE_COOKIE, "")
        )
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        # The language chosen under Settings > Account beats the browser's Accept-Language,
        # which LocaleMiddleware (before this one) activated.
        language = session.get("webmail_lang", "")
        before = translation.get_language()
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = language
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
            if language:  # back to the request's, for LocaleMiddleware's Content-Language
                translation.activate(before)
