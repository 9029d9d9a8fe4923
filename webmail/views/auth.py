"""Sign-in and sign-out."""

from __future__ import annotations

import logging
import time

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods, require_POST

from mailboxes import services, throttle
from mailhost.proxy import client_address
from webmail.auth import current_mailbox, safe_next, sign_in, sign_out

logger = logging.getLogger(__name__)

# Above this the web answers "try later" at once instead of holding a server thread.
MAX_WEB_WAIT = 2.0
sleep = time.sleep  # tests replace this to observe the delay


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        if current_mailbox(request) is not None:
            return redirect(safe_next(request, reverse("webmail:index")))
        return render(request, "webmail/login.html", {"next": request.GET.get("next", "")})
    address = request.POST.get("address", "").strip()
    password = request.POST.get("password", "")
    context = {"address": address, "next": request.POST.get("next", "")}
    if not address or not password:
        context["error"] = "Enter your address and password."
        return render(request, "webmail/login.html", context, status=400)
    ip = client_address(request)
    delay = throttle.delay_for(address, ip)
    if delay > MAX_WEB_WAIT:
        context["error"] = "Too many failed sign-ins. Wait a few minutes and try again."
        response = render(request, "webmail/login.html", context, status=429)
        response["Retry-After"] = str(int(delay))
        return response
    if delay:
        sleep(delay)
    mailbox = services.mailbox_authenticate(address=address, password=password)
    if mailbox is None:
        throttle.record_failure(address, ip)
        logger.info("webmail sign-in failed for %r from %s", address, ip)
        context["error"] = "Wrong address or password."
        return render(request, "webmail/login.html", context, status=401)
    throttle.record_success(address, ip)
    services.mailbox_record_login(mailbox=mailbox)
    sign_in(request, mailbox)
    return redirect(safe_next(request, reverse("webmail:index")))


@require_POST
@csrf_protect
def logout(request: HttpRequest) -> HttpResponse:
    sign_out(request)
    response = redirect(reverse("webmail:login"))
    response["Clear-Site-Data"] = '"cache"'
    return response
