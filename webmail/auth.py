"""Webmail sign-in: the session holds a mailbox id (webmail users are mailboxes, not Django
users; the admin keeps Django's own auth in the same session store).

A session ends when the reader signs out, when it has been idle for
MAILHOST_WEBMAIL_IDLE_SECONDS, after SESSION_COOKIE_AGE in any case, as soon as the
mailbox's password changes or the mailbox or its domain is disabled, and when its row in
mailboxes.WebSession goes (Settings > Sessions: "sign out" one device or everywhere).

With two-factor sign-in on, the password alone does not sign in: it leaves a pending sign-in
(SESSION_PENDING, valid PENDING_SECONDS) that a TOTP or recovery code completes.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
from typing import TYPE_CHECKING

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from mailboxes import selectors, services
from mailhost.proxy import client_address

if TYPE_CHECKING:
    from mailboxes.models import Mailbox

API_PREFIX = "/api/"
SESSION_MAILBOX = "webmail_mailbox_id"
SESSION_HASH = "webmail_auth_hash"
SESSION_STARTED = "webmail_started"
SESSION_TOUCHED = "webmail_touched"
# Set by sign_in since sessions have WebSession rows: a session without it was signed in
# before (an upgrade) and gets its row on its next request instead of being signed out.
SESSION_TRACKED = "webmail_tracked"
SESSION_PENDING = "webmail_pending"  # {"id": mailbox id, "hash": ..., "at": time}
SESSION_TIMEZONE = "webmail_tz"
SESSION_LANGUAGE = "webmail_lang"
PENDING_SECONDS = 300
TOUCH_INTERVAL = 300  # seconds between idle-expiry refreshes (each one is a session write)


def idle_seconds() -> int:
    return settings.MAILHOST_WEBMAIL_IDLE_SECONDS


def _password_hash_digest(mailbox: Mailbox) -> str:
    # Bound to the stored password hash: changing the password ends every session.
    key = settings.SECRET_KEY.encode() + b"webmail-session"
    return hmac.new(key, mailbox.password.encode(), hashlib.sha256).hexdigest()


def sign_in(request: HttpRequest, mailbox: Mailbox) -> None:
    request.session.pop(SESSION_PENDING, None)
    request.session.cycle_key()  # a new session id at login: no session fixation
    request.session[SESSION_MAILBOX] = mailbox.pk
    request.session[SESSION_HASH] = _password_hash_digest(mailbox)
    request.session[SESSION_STARTED] = int(time.time())
    request.session[SESSION_TOUCHED] = int(time.time())
    request.session.set_expiry(idle_seconds())
    request.session[SESSION_TRACKED] = True
    remember_preferences(request, mailbox)
    if request.session.session_key is None:
        request.session.save()
    services.web_session_start(
        mailbox=mailbox,
        session_key=request.session.session_key,
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        ip=client_address(request),
    )


def remember_preferences(request: HttpRequest, mailbox: Mailbox) -> None:
    """The reader's time zone and language, read by webmail.timezones on every request."""
    request.session[SESSION_TIMEZONE] = mailbox.time_zone
    request.session[SESSION_LANGUAGE] = mailbox.language


def begin_second_factor(request: HttpRequest, mailbox: Mailbox) -> None:
    """The password was right and the mailbox has two-factor sign-in: remember that (bound to
    the password, for PENDING_SECONDS) until a code completes it."""
    request.session.cycle_key()
    request.session[SESSION_PENDING] = {
        "id": mailbox.pk,
        "hash": _password_hash_digest(mailbox),
        "at": int(time.time()),
    }


def pending_mailbox(request: HttpRequest) -> Mailbox | None:
    pending = request.session.get(SESSION_PENDING)
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        return None
    mailbox = selectors.mailbox_signed_in(pending.get("id"))
    if mailbox is None or not hmac.compare_digest(
        pending.get("hash", ""), _password_hash_digest(mailbox)
    ):
        return None
    return mailbox


def sign_out(request: HttpRequest) -> None:
    if request.session.session_key:
        services.web_session_forget(session_key=request.session.session_key)
    for key in (
        SESSION_MAILBOX,
        SESSION_HASH,
        SESSION_STARTED,
        SESSION_TOUCHED,
        SESSION_TRACKED,
        SESSION_PENDING,
        SESSION_TIMEZONE,
        SESSION_LANGUAGE,
    ):
        request.session.pop(key, None)
    request.session.cycle_key()


def current_mailbox(request: HttpRequest) -> Mailbox | None:
    mailbox_id = request.session.get(SESSION_MAILBOX)
    if not mailbox_id:
        return None
    tracked = request.session.get(SESSION_TRACKED, False)
    # Signed out from Settings > Sessions when a tracked session's row is gone.
    session_key = (request.session.session_key or "") if tracked else None
    mailbox = selectors.mailbox_signed_in(mailbox_id, session_key=session_key)
    started = request.session.get(SESSION_STARTED, 0)
    if (
        mailbox is None
        or not hmac.compare_digest(
            request.session.get(SESSION_HASH, ""), _password_hash_digest(mailbox)
        )
        or time.time() - started > settings.SESSION_COOKIE_AGE
    ):
        sign_out(request)
        return None
    if not tracked:
        request.session[SESSION_TRACKED] = True
        services.web_session_start(
            mailbox=mailbox,
            session_key=request.session.session_key,
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
            ip=client_address(request),
        )
    return mailbox


def mailbox_required(view):
    """Views for signed-in readers: request.mailbox is set; otherwise to the sign-in page
    (JSON endpoints answer 401 instead of redirecting)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        mailbox = current_mailbox(request)
        if mailbox is None:
            if request.path.startswith(API_PREFIX):
                return JsonResponse({"error": "signed out"}, status=401)
            return redirect(f"{reverse('webmail:login')}?next={request.get_full_path()}")
        request.mailbox = mailbox
        # Sliding idle expiry: activity pushes it forward (at most one write per interval).
        now = int(time.time())
        if now - request.session.get(SESSION_TOUCHED, 0) > TOUCH_INTERVAL:
            request.session[SESSION_TOUCHED] = now
            request.session.set_expiry(idle_seconds())
            services.web_session_seen(
                session_key=request.session.session_key, ip=client_address(request)
            )
        return view(request, *args, **kwargs)

    return wrapper


def safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default
