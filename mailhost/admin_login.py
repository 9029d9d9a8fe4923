"""The Django admin's sign-in behind the same login limiter as every other login
(mailboxes/throttle.py): slowed after failures, refused with 429 and Retry-After beyond what a
web request should wait, and logged as `auth success|failure protocol=admin ...`."""

from __future__ import annotations

import math

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse

from mailboxes import throttle
from mailhost.proxy import client_address
from webmail.views import auth as webmail_auth

PROTOCOL = "admin"


def _user_exists(username: str) -> bool:
    user_model = get_user_model()
    return user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).exists()


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    retry_after: int | None = None

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if not username or not password:
            return super().clean()
        ip = client_address(self.request)
        admission = throttle.admit(username, ip, max_wait=webmail_auth.MAX_WEB_WAIT)
        if not admission.admitted:
            throttle.login_refused(
                protocol=PROTOCOL, user=username, client_ip=ip, wait=admission.wait
            )
            self.retry_after = max(1, math.ceil(admission.wait))
            raise ValidationError(
                "Too many failed sign-ins. Try again in %(seconds)d seconds.",
                code="throttled",
                params={"seconds": self.retry_after},
            )
        if admission.wait:
            webmail_auth.sleep(admission.wait)
        try:
            cleaned = super().clean()  # authenticate(), then active and staff
        except ValidationError:
            throttle.login_result(
                protocol=PROTOCOL,
                user=username,
                client_ip=ip,
                succeeded=False,
                user_exists=_user_exists(username),
            )
            raise
        throttle.login_result(
            protocol=PROTOCOL, user=username, client_ip=ip, succeeded=True, user_exists=True
        )
        return cleaned


def login(request: HttpRequest, extra_context=None) -> HttpResponse:
    """admin.site.login, answering 429 with Retry-After when the limiter refused."""
    response = admin.site.login(request, extra_context)
    form = (getattr(response, "context_data", None) or {}).get("form")
    retry_after = getattr(form, "retry_after", None)
    if retry_after:
        response.status_code = 429
        response["Retry-After"] = str(retry_after)
    return response


admin.site.login_form = ThrottledAdminAuthenticationForm
