"""Small template helpers of the webmail."""

from __future__ import annotations

from django import template
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

register = template.Library()

# The header fields the reading view shows (webmail.mime.DISPLAY_HEADERS), named in the
# reader's language; Cc and Bcc are the same in every language the webmail speaks.
HEADER_LABELS = {
    "From": _("From"),
    "Sender": _("Sender"),
    "Reply-To": _("Reply-To"),
    "To": _("To"),
    "Date": _("Date"),
    "Subject": _("Subject"),
}


@register.simple_tag
def icon(name: str, label: str = "") -> str:
    """An icon from the page's SVG sprite (templates/webmail/_icons.html)."""
    if label:
        return format_html(
            '<svg class="icon" role="img" aria-label="{}"><use href="#i-{}"></use></svg>',
            label,
            name,
        )
    return format_html('<svg class="icon" aria-hidden="true"><use href="#i-{}"></use></svg>', name)


@register.filter
def initial(text: str) -> str:
    for char in text or "":
        if char.isalnum():
            return char.upper()
    return "?"


@register.filter
def avatar_hue(text: str) -> int:
    """A stable colour class (0-7) per correspondent."""
    return sum((text or "").encode("utf-8")) % 8


# (token in the User-Agent, name shown), first match wins: Edge and Opera also say "Chrome",
# Chrome also says "Safari", Android also says "Linux", iOS also says "Mac OS X".
_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("HeadlessChrome/", "Chrome (headless)"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Windows", "Windows"),
    ("CrOS", "ChromeOS"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)


@register.filter
def device(user_agent: str) -> str:
    """'Firefox on Linux' from a User-Agent header (the sessions list shows the whole header
    on hover); the header itself when neither part is known."""
    browser = next((name for token, name in _BROWSERS if token in user_agent), "")
    system = next((name for token, name in _SYSTEMS if token in user_agent), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or user_agent[:60] or "Unknown browser"


@register.filter
def header_label(name: str) -> str:
    """A header field's name as the reading view shows it."""
    return str(HEADER_LABELS.get(name, name))
