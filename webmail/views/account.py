"""Settings > Account, Sessions, App passwords and Two-factor sign-in: the reader's own
account security (the admin keeps domain-wide settings)."""

from __future__ import annotations

import json

import segno
from django.conf import settings
from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.request import split_domain_port
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from webauthn import base64url_to_bytes
from webauthn.helpers import bytes_to_base64url

from mailboxes import selectors, services, throttle, totp
from mailboxes.exceptions import InvalidValue
from mailhost.proxy import client_address
from webmail.auth import mailbox_required, remember_preferences, sign_in
from webmail.views import auth as auth_views
from webmail.views.common import folder_items

# The enrolment secret waits in the session until the reader confirms a code from it.
SESSION_TOTP_ENROL = "webmail_totp_enrol"
ISSUER = "Mailhost"
# Zones offered in the picker (any IANA name typed is taken too).
COMMON_ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Asia/Shanghai",
    "Australia/Sydney",
)


def _page(request: HttpRequest, template: str, context: dict, status: int = 200) -> HttpResponse:
    context = {"folders": folder_items(request.mailbox.pk), **context}
    return render(request, template, context, status=status)


def _old_password_refused(request: HttpRequest) -> bool:
    """A wrong current password on a settings form counts as a failed login (the limiter
    would otherwise let a stolen session guess the password here)."""
    throttle.login_result(
        protocol="webmail",
        user=request.mailbox.address,
        client_ip=client_address(request),
        succeeded=False,
        user_exists=True,
    )
    return True


@never_cache
@require_http_methods(["GET", "POST"])
@mailbox_required
def account_view(request: HttpRequest) -> HttpResponse:
    mailbox = request.mailbox
    if request.method == "POST":
        try:
            services.mailbox_set_preferences(
                mailbox=mailbox,
                display_name=request.POST.get("display_name", ""),
                time_zone=request.POST.get("time_zone", "").strip(),
                language=request.POST.get("language", ""),
            )
        except InvalidValue as exc:
            flash.error(request, _("Not saved: %(error)s.") % {"error": exc})
        else:
            remember_preferences(request, mailbox)
            with translation.override(mailbox.language or translation.get_language()):
                flash.success(request, _("Saved."))  # in the language just chosen
        return redirect("webmail:account")
    return _page(
        request,
        "webmail/account.html",
        {"zones": COMMON_ZONES, "languages": settings.LANGUAGES, "mailbox": mailbox},
    )


@never_cache
@require_POST
@mailbox_required
def password_change(request: HttpRequest) -> HttpResponse:
    mailbox = request.mailbox
    old = request.POST.get("old_password", "")
    new = request.POST.get("new_password", "")
    if new != request.POST.get("new_password2", ""):
        flash.error(request, _("The two new passwords differ."))
        return redirect("webmail:account")
    admission = throttle.admit(
        mailbox.address, client_address(request), max_wait=auth_views.MAX_WEB_WAIT
    )
    if not admission.admitted:
        flash.error(request, _("Too many failed attempts. Try again later."))
        return redirect("webmail:account")
    if admission.wait:
        auth_views.sleep(admission.wait)
    try:
        services.mailbox_change_password(
            mailbox=mailbox,
            old_password=old,
            new_password=new,
            keep_session_key=request.session.session_key,
        )
    except InvalidValue as exc:
        if "current password" in str(exc):
            _old_password_refused(request)
        flash.error(request, _("Password not changed: %(error)s.") % {"error": exc})
        return redirect("webmail:account")
    # The stored hash changed, which ends every session bound to the old one, this one too:
    # sign this one in again (a new session id).
    services.web_session_forget(session_key=request.session.session_key)
    sign_in(request, mailbox)
    flash.success(
        request, _("Password changed. Every other session and device has been signed out.")
    )
    return redirect("webmail:account")


@never_cache
@require_http_methods(["GET", "POST"])
@mailbox_required
def sessions_view(request: HttpRequest) -> HttpResponse:
    mailbox = request.mailbox
    current = request.session.session_key
    if request.method == "POST":
        if request.POST.get("session"):
            try:
                session_id = int(request.POST["session"])
            except ValueError:
                session_id = -1
            ended = services.web_sessions_end(
                mailbox=mailbox, session_id=session_id, keep_session_key=current
            )
            flash.success(request, _("Signed out.") if ended else _("That session had ended."))
        else:
            ended = services.web_sessions_end(mailbox=mailbox, keep_session_key=current)
            flash.success(
                request,
                ngettext(
                    "Signed out everywhere else (%(count)s session).",
                    "Signed out everywhere else (%(count)s sessions).",
                    ended,
                )
                % {"count": ended},
            )
        return redirect("webmail:sessions")
    sessions = selectors.web_sessions(mailbox=mailbox)
    return _page(
        request,
        "webmail/sessions.html",
        {"sessions": sessions, "current_key": current},
    )


@never_cache
@require_http_methods(["GET", "POST"])
@mailbox_required
def app_passwords_view(request: HttpRequest) -> HttpResponse:
    mailbox = request.mailbox
    created = None
    status = 200
    if request.method == "POST":
        if request.POST.get("revoke"):
            try:
                app_id = int(request.POST["revoke"])
            except ValueError:
                app_id = -1
            if services.app_password_revoke(mailbox=mailbox, app_password_id=app_id):
                flash.success(request, _("Revoked: that device can no longer sign in."))
            return redirect("webmail:app_passwords")
        try:
            app, secret = services.app_password_create(
                mailbox=mailbox, name=request.POST.get("name", "")
            )
        except InvalidValue as exc:
            flash.error(request, _("Not created: %(error)s.") % {"error": exc})
            return redirect("webmail:app_passwords")
        # Shown in this response only (no redirect, never stored in clear).
        created = {"app": app, "secret": secret}
        status = 201
    return _page(
        request,
        "webmail/app_passwords.html",
        {
            "apps": selectors.app_passwords(mailbox=mailbox),
            "created": created,
            "two_factor": bool(mailbox.totp_secret),
        },
        status=status,
    )


def _enrolment(request: HttpRequest) -> dict:
    secret = request.session.get(SESSION_TOTP_ENROL)
    if not secret:
        secret = request.session[SESSION_TOTP_ENROL] = totp.new_secret()
    uri = totp.provisioning_uri(secret, account=request.mailbox.address, issuer=ISSUER)
    qr = segno.make(uri, error="m")
    return {
        "secret": secret,
        "secret_groups": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        "qr": qr.svg_data_uri(scale=5, border=2),
        "uri": uri,
    }


@never_cache
@require_http_methods(["GET", "POST"])
@mailbox_required
def two_factor_view(request: HttpRequest) -> HttpResponse:
    mailbox = request.mailbox
    context: dict = {"enabled": bool(mailbox.totp_secret)}
    status = 200
    action = request.POST.get("action", "")
    if request.method == "POST" and action == "enable" and not mailbox.totp_secret:
        secret = request.session.get(SESSION_TOTP_ENROL, "")
        try:
            codes = services.totp_enable(
                mailbox=mailbox, secret=secret, code=request.POST.get("code", "")
            )
        except InvalidValue:
            context["error"] = _("That code is not the one your app shows now.")
            status = 400
        else:
            request.session.pop(SESSION_TOTP_ENROL, None)
            context = {"enabled": True, "recovery_codes": codes, "just_enabled": True}
            status = 201
    elif request.method == "POST" and mailbox.totp_secret and action in ("disable", "codes"):
        if not services.mailbox_authenticate(
            address=mailbox.ascii_address, password=request.POST.get("password", "")
        ):
            _old_password_refused(request)
            flash.error(request, _("That is not your current password."))
            return redirect("webmail:two_factor")
        if action == "disable":
            services.totp_disable(mailbox=mailbox)
            flash.success(request, _("Two-factor sign-in is off."))
            return redirect("webmail:two_factor")
        context["recovery_codes"] = services.recovery_codes_regenerate(mailbox=mailbox)
        status = 201
    elif request.method == "POST":
        return redirect("webmail:two_factor")
    if not context["enabled"]:
        context.update(_enrolment(request))
    else:
        context["codes_left"] = selectors.recovery_codes_left(mailbox=mailbox)
    context["passkeys"] = selectors.passkeys(mailbox=mailbox)
    return _page(request, "webmail/two_factor.html", context, status=status)


# --- Passkeys (WebAuthn) -----------------------------------------------------------------

SESSION_PASSKEY_CHALLENGE = "webmail_passkey_challenge"


def relying_party(request: HttpRequest) -> tuple[str, str]:
    """The rp id (the host the webmail is served on, which ALLOWED_HOSTS already vetted in
    get_host()) and the origin the browser must report (the scheme as the proxy settings
    decide it, like the CSRF origin check)."""
    host = request.get_host()
    domain, _port = split_domain_port(host)
    scheme = "https" if request.is_secure() else "http"
    return domain, f"{scheme}://{host}"


@never_cache
@require_POST
@mailbox_required
def passkey_options(request: HttpRequest) -> HttpResponse:
    rp_id, _origin = relying_party(request)
    options, challenge = services.passkey_registration_options(mailbox=request.mailbox, rp_id=rp_id)
    request.session[SESSION_PASSKEY_CHALLENGE] = bytes_to_base64url(challenge)
    return HttpResponse(options, content_type="application/json")


@never_cache
@require_POST
@mailbox_required
def passkeys_view(request: HttpRequest) -> HttpResponse:
    """Add a passkey (JSON from passkeys.js) or delete one (a form)."""
    if request.POST.get("delete"):
        try:
            passkey_id = int(request.POST["delete"])
        except ValueError:
            passkey_id = -1
        if services.passkey_delete(mailbox=request.mailbox, passkey_id=passkey_id):
            flash.success(request, _("Passkey removed."))
        return redirect("webmail:two_factor")
    try:
        body = json.loads(request.body)
        credential = json.dumps(body["credential"])
        name = str(body.get("name", ""))
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": "malformed request"}, status=400)
    challenge = request.session.pop(SESSION_PASSKEY_CHALLENGE, "")
    if not challenge:
        return JsonResponse({"error": "no registration under way"}, status=400)
    rp_id, origin = relying_party(request)
    try:
        passkey = services.passkey_register(
            mailbox=request.mailbox,
            name=name,
            credential=credential,
            challenge=base64url_to_bytes(challenge),
            rp_id=rp_id,
            origin=origin,
        )
    except InvalidValue as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    flash.success(request, _("Passkey “%(name)s” added.") % {"name": passkey.name})
    return JsonResponse({"id": passkey.pk}, status=201)
