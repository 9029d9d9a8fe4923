"""Response hardening for every page, the webmail's and the admin's.

- On an HTTPS request (directly, or through a trusted proxy: mailhost/proxy.py) every cookie
  the response sets carries the Secure attribute: the session and CSRF cookies behave as with
  SESSION_COOKIE_SECURE / CSRF_COOKIE_SECURE, while plain-HTTP `runmail` on localhost still
  works. HSTS is Django's SecurityMiddleware (SECURE_HSTS_SECONDS), which sends it on HTTPS
  responses only.
- Admin pages get a Content-Security-Policy of their own (the webmail sets its own in
  webmail/security.py).
"""

from __future__ import annotations

ADMIN_PATH = "/admin/"
# Django's admin loads scripts and styles from static files only; data for scripts comes in
# <script type="application/json">, which a policy does not block (it never runs).
ADMIN_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
        "frame-ancestors 'self'",
    ]
)
# django-rq's dashboard pages carry inline <script> and <style> blocks of their own.
RQ_DASHBOARD_PATH = "/admin/rq/"
RQ_DASHBOARD_POLICY = ADMIN_POLICY.replace(
    "script-src 'self'", "script-src 'self' 'unsafe-inline'"
).replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")


class HttpsResponseMiddleware:
    """Near the top of MIDDLEWARE (after mailhost.proxy.ForwardedMiddleware), so that it sees
    the cookies the session and CSRF middleware set on the way out."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.is_secure():
            for morsel in response.cookies.values():
                morsel["secure"] = True
        path = request.path_info
        if path.startswith(ADMIN_PATH):
            policy = RQ_DASHBOARD_POLICY if path.startswith(RQ_DASHBOARD_PATH) else ADMIN_POLICY
            response.headers.setdefault("Content-Security-Policy", policy)
            response.headers.setdefault("Referrer-Policy", "same-origin")
        return response
