"""Sign-in and sign-out."""

from __future__ import annotations

import logging
import math
import time
import unicodedata

from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods, require_POST

from mailboxes import services, throttle
from mailhost.proxy import client_address
from webmail.auth import (
    begin_second_factor,
    current_mailbox,
    pending_mailbox,
    safe_next,
    sign_in,
    sign_out,
)

logger = logging.getLogger(__name__)

# Above this the web answers "try later" at once instead of holding a server thread.
MAX_WEB_WAIT = 2.0
sleep = time.sleep  # tests replace this to observe the delay


def throttled_response(
    request: HttpRequest, template: str, context: dict, wait: float
) -> HttpResponse:
    """429 with Retry-After (RFC 9110 10.2.3) and the wait in words: the sign-in was refused
    by the login limiter without checking the password."""
    seconds = max(1, math.ceil(wait))
    context["error"] = ngettext(
        "Too many failed sign-ins. Try again in %(seconds)s second.",
        "Too many failed sign-ins. Try again in %(seconds)s seconds.",
        seconds,
    ) % {"seconds": seconds}
    response = render(request, template, context, status=429)
    response["Retry-After"] = str(seconds)
    return response


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        if current_mailbox(request) is not None:
            return redirect(safe_next(request, reverse("webmail:index")))
        return render(request, "webmail/login.html", {"next": request.GET.get("next", "")})
    # RFC 6532 3.1: addresses compare in NFC (a keyboard may send "o" + U+0308 for "ö").
    address = unicodedata.normalize("NFC", request.POST.get("address", "").strip())
    password = request.POST.get("password", "")
    context = {"address": address, "next": request.POST.get("next", "")}
    if not address or not password:
        context["error"] = gettext("Enter your address and password.")
        return render(request, "webmail/login.html", context, status=400)
    ip = client_address(request)
    admission = throttle.admit(address, ip, max_wait=MAX_WEB_WAIT)
    if not admission.admitted:
        throttle.login_refused(protocol="webmail", user=address, client_ip=ip, wait=admission.wait)
        return throttled_response(request, "webmail/login.html", context, admission.wait)
    if admission.wait:
        sleep(admission.wait)
    mailbox = services.mailbox_login(
        address=address, password=password, client_ip=ip, protocol="webmail"
    )
    if mailbox is None:
        context["error"] = gettext("Wrong address or password.")
        return render(request, "webmail/login.html", context, status=401)
    if mailbox.totp_secret:
        begin_second_factor(request, mailbox)
        request.session["webmail_pending_next"] = safe_next(request, reverse("webmail:index"))
        return redirect(reverse("webmail:login_verify"))
    services.mailbox_record_login(mailbox=mailbox)
    sign_in(request, mailbox)
    return redirect(safe_next(request, reverse("webmail:index")))


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def login_verify(request: HttpRequest) -> HttpResponse:
    """The second step of a two-factor sign-in: a code from the authenticator app, or a
    recovery code. A wrong code is a failed login for the limiter, like a wrong password."""
    mailbox = pending_mailbox(request)
    if mailbox is None:
        return redirect(reverse("webmail:login"))
    context = {"address": mailbox.address}
    if request.method == "GET":
        return render(request, "webmail/login_verify.html", context)
    ip = client_address(request)
    admission = throttle.admit(mailbox.address, ip, max_wait=MAX_WEB_WAIT)
    if not admission.admitted:
        throttle.login_refused(
            protocol="webmail", user=mailbox.address, client_ip=ip, wait=admission.wait
        )
        return throttled_response(request, "webmail/login_verify.html", context, admission.wait)
    if admission.wait:
        sleep(admission.wait)
    kind = services.second_factor_check(mailbox=mailbox, code=request.POST.get("code", ""))
    throttle.login_result(
        protocol="webmail",
        user=mailbox.address,
        client_ip=ip,
        succeeded=kind is not None,
        user_exists=True,
    )
    if kind is None:
        context["error"] = gettext("That code is not right (or was used already).")
        return render(request, "webmail/login_verify.html", context, status=401)
    target = request.session.pop("webmail_pending_next", "") or reverse("webmail:index")
    services.mailbox_record_login(mailbox=mailbox)
    sign_in(request, mailbox)
    if kind == "recovery":
        flash.warning(
            request,
            gettext("You used a recovery code; it will not work again. Make new ones in Settings."),
        )
    return redirect(target)


@never_cache
@csrf_protect
@require_POST
def passkey_login_options(request: HttpRequest) -> HttpResponse:
    from webauthn.helpers import bytes_to_base64url

    from webmail.views.account import SESSION_PASSKEY_CHALLENGE, relying_party

    rp_id, _origin = relying_party(request)
    options, challenge = services.passkey_authentication_options(rp_id=rp_id)
    request.session[SESSION_PASSKEY_CHALLENGE] = bytes_to_base64url(challenge)
    return HttpResponse(options, content_type="application/json")


@never_cache
@csrf_protect
@require_POST
def passkey_login(request: HttpRequest) -> HttpResponse:
    """A passkey sign-in: passwordless (the authenticator verified its user, so it is two
    factors in itself), or the second step after the password of a two-factor mailbox (then
    the passkey must be that mailbox's). A refused assertion is a failed login."""

    from webauthn import base64url_to_bytes

    from webmail.views.account import SESSION_PASSKEY_CHALLENGE, relying_party

    challenge = request.session.pop(SESSION_PASSKEY_CHALLENGE, "")
    if not challenge:
        return JsonResponse({"error": "no sign-in under way"}, status=400)
    rp_id, origin = relying_party(request)
    ip = client_address(request)
    mailbox, claimed = services.passkey_authenticate(
        credential=request.body.decode("utf-8", "replace"),
        challenge=base64url_to_bytes(challenge),
        rp_id=rp_id,
        origin=origin,
    )
    pending = pending_mailbox(request)
    if mailbox is not None and pending is not None and pending.pk != mailbox.pk:
        mailbox = None
    if claimed is not None:
        admission = throttle.admit(claimed, ip, max_wait=MAX_WEB_WAIT)
        if not admission.admitted:
            throttle.login_refused(
                protocol="webmail", user=claimed, client_ip=ip, wait=admission.wait
            )
            return JsonResponse({"error": "too many failed sign-ins"}, status=429)
    throttle.login_result(
        protocol="webmail",
        user=claimed,
        client_ip=ip,
        succeeded=mailbox is not None,
        user_exists=claimed is not None,
    )
    if mailbox is None:
        return JsonResponse({"error": gettext("That passkey was not accepted.")}, status=401)
    target = request.session.pop("webmail_pending_next", "") or reverse("webmail:index")
    services.mailbox_record_login(mailbox=mailbox)
    sign_in(request, mailbox)
    return JsonResponse({"redirect": target})


@require_POST
@csrf_protect
def logout(request: HttpRequest) -> HttpResponse:
    sign_out(request)
    response = redirect(reverse("webmail:login"))
    response["Clear-Site-Data"] = '"cache"'
    return response
