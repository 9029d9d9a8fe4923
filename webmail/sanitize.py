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
from django.conf import settings

from webmail import htmltext

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

# Nesting kept for the sanitizer (whose parser is quadratic in depth); Chromium keeps 512.
MAX_DEPTH = 256
# CSS that makes the browser fetch something (CSS Values 4 url(), CSS Images 4 image(),
# image-set(), src()) or run something (old IE's expression() and behavior, Firefox's
# -moz-binding), matched after escapes and comments are decoded and white space removed.
CSS_FETCHING = ("url(", "image(", "image-set(", "src(", "@import", "expression(")
CSS_FORBIDDEN = (*CSS_FETCHING, "behavior:", "-moz-binding")
# CSS Syntax 3 4.3.7: a backslash and 1-6 hex digits (and one white space) or any other
# character.
_CSS_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6})[ \t\n\r\f]?|\\(.)", re.S)
_CSS_SPACE = re.compile(r"[ \t\n\r\f]+")


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
            value, dropped = clean_style(value, allow_remote=allow_remote)
            blocked += dropped
            return value or None
        if attr in {"href", "cite"} and value.strip().lower().startswith("data:"):
            return None
        return value

    cleaned = nh3.clean(
        htmltext.normalized(html, limit=settings.MAILHOST_WEBMAIL_HTML_LIMIT, max_depth=MAX_DEPTH),
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


def _css_decoded(text: str) -> str:
    """A declaration as a CSS tokenizer reads its names: escapes decoded, lower case, white
    space removed. A function's name may be written with escapes (`u\\rl(`, `\\75 rl(`) but
    is never split by a comment, so comments stay (one holding "url(" only drops more)."""

    def unescape(match: re.Match) -> str:
        if match.group(1):
            code = int(match.group(1), 16)
            return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"
        return "" if match.group(2) == "\n" else match.group(2)

    return _CSS_SPACE.sub("", _CSS_ESCAPE.sub(unescape, text)).lower()


def clean_style(style: str, *, allow_remote: bool) -> tuple[str, int]:
    """A style attribute without the declarations that fetch or run something; returns (the
    kept declarations as written, 1 if a fetching one was dropped else 0).

    Each declaration is checked as the browser will read it (escapes such as `u\\rl(` and
    `\\75 rl(` decoded) and kept as written, so what was checked is what the browser
    decodes (decoding twice could make a new escape). A ";" inside a string or url() splits
    the declaration here where the browser would not: each piece is checked on its own and
    the piece holding the function is dropped. With allow_remote, a declaration whose one fetch is a plain
    `url(http...)` or `url(https...)` stays.
    """
    kept: list[str] = []
    dropped = 0
    for declaration in style.split(";"):
        if not declaration.strip():
            continue
        decoded = _css_decoded(declaration)
        if any(form in decoded for form in CSS_FORBIDDEN):
            fetches = sum(decoded.count(form) for form in CSS_FORBIDDEN)
            target = decoded.partition("url(")[2].lstrip("'\"")
            if (
                allow_remote
                and fetches == 1
                and target.startswith(("http:", "https:"))
                and "\\" not in declaration
                and "/*" not in declaration
            ):
                kept.append(declaration)
                continue
            if any(form in decoded for form in CSS_FETCHING):
                dropped = 1
            continue
        kept.append(declaration)
    return ";".join(kept), dropped
