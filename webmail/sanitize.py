"""HTML bodies made safe to show: nh3 (ammonia) sanitizing, cid: images, remote images.

Sanitizing is one layer; the frame that shows the result is the other: a sandboxed iframe
without scripts, served with a CSP of its own that blocks scripts and, until the reader allows
them, every remote fetch (see views.reading.message_frame). A remote URL that slips past the
rewriting here is still never loaded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import nh3

TAGS = set(nh3.ALLOWED_TAGS) | {"font", "tfoot", "caption", "u", "big", "section"}
_ATTRIBUTES = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
GENERIC = {"style", "align", "dir", "lang", "title", "width", "height", "bgcolor", "valign"}
ATTRIBUTES: dict[str, set[str]] = {"*": GENERIC}
for _tag, _attrs in _ATTRIBUTES.items():
    ATTRIBUTES[_tag] = _attrs - GENERIC
ATTRIBUTES.setdefault("font", set()).update({"color", "face", "size"})
ATTRIBUTES.setdefault("table", set()).update({"cellpadding", "cellspacing", "border"})
ATTRIBUTES.setdefault("td", set()).update({"nowrap"})
ATTRIBUTES.setdefault("a", set()).update({"name"})
URL_SCHEMES = {"http", "https", "mailto", "cid", "tel", "data"}
CLEAN_CONTENT_TAGS = {"script", "style", "title", "head", "object", "iframe", "noscript"}

_CSS_URL = re.compile(r"url\s*\([^)]*\)", re.I)


@dataclass
class SafeHtml:
    html: str
    blocked_images: int  # remote images (and CSS urls) left out


def clean(html: str, *, cid_url: Callable[[str], str | None], allow_remote: bool) -> SafeHtml:
    """Sanitize an HTML body.

    cid_url maps a Content-ID to the URL serving that part (None: unknown, dropped).
    Remote images (http, https, protocol-relative) are removed unless allow_remote.
    """
    blocked = 0

    def attribute_filter(tag: str, attr: str, value: str) -> str | None:
        nonlocal blocked
        if attr == "src" or (attr == "background" and tag in {"td", "table", "body"}):
            lowered = value.strip().lower()
            if lowered.startswith("cid:"):
                return cid_url(value.strip()[4:].strip("<>"))
            if lowered.startswith(("http:", "https:", "//")):
                if allow_remote:
                    return value
                blocked += 1
                return None
            if lowered.startswith("data:image/") and not lowered.startswith("data:image/svg"):
                return value
            return None
        if attr == "style":
            if _CSS_URL.search(value):
                if allow_remote:
                    return _CSS_URL.sub(lambda m: m.group(0) if _remote_css(m) else "none", value)
                blocked += 1
                return _CSS_URL.sub("none", value)
            return value
        if attr in {"href", "cite"} and value.strip().lower().startswith("data:"):
            return None
        return value

    cleaned = nh3.clean(
        html,
        tags=TAGS,
        clean_content_tags=CLEAN_CONTENT_TAGS,
        attributes=ATTRIBUTES,
        attribute_filter=attribute_filter,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )
    return SafeHtml(html=cleaned, blocked_images=blocked)


def _remote_css(match: re.Match) -> bool:
    inner = match.group(0)[4:-1].strip().strip("'\"").lower()
    return inner.startswith(("http:", "https:"))
