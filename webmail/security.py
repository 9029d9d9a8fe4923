"""Response headers of the webmail: a strict Content-Security-Policy on every page.

Pages load scripts and styles only from our own static files (no inline script, no inline
style attribute); message HTML is never part of a page, it lives in a sandboxed frame
with a policy of its own (FRAME_POLICY).
"""

from __future__ import annotations

import functools

PAGE_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "frame-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    ]
)


def frame_policy(*, allow_remote_images: bool) -> str:
    """The message frame: no script at all, inline styles (mail needs them), images from us
    (cid: parts) and data: only, unless the reader allowed remote images."""
    images = "'self' data: https: http:" if allow_remote_images else "'self' data:"
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'none'",
            "style-src 'unsafe-inline'",
            f"img-src {images}",
            "font-src 'none'",
            "form-action 'none'",
            "base-uri 'none'",
            "object-src 'none'",
            "frame-ancestors 'self'",
            "sandbox allow-same-origin allow-popups allow-popups-to-escape-sandbox",
        ]
    )


# Downloads and raw source: nothing in them may ever run or load anything.
DOWNLOAD_POLICY = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"


def with_headers(view, *, policy: str = PAGE_POLICY):
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response.headers.setdefault("Content-Security-Policy", policy)
        # same-origin, not no-referrer: browsers send "Origin: null" on POSTs under no-referrer,
        # which Django's CSRF check rightly refuses. Nothing leaks to other sites either way.
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "private, no-store")
        return response

    return wrapper
