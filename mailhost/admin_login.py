"""The Django admin's sign-in behind the same login limiter as every other login
(mailboxes/throttle.py): slowed after failures, refused with 429 and Retry-After beyond what a
web request should wait, and logged as `auth success|failure protocol=admin ...`.

Two-factor sign-in for the admin: admins are Django users, not mailboxes, so their TOTP secret
lives in mailboxes.AdminTOTP, enrolled from the shell (`manage.py admintotp USER`, which
prints the key and a QR code). An enrolled admin types the code in the same form as the
password (one step: a wrong code or a wrong password get the same answer, so the form never
says the password was right); a wrong code is a failed login for the limiter."""

from __future__ import annotations

import math

from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse

from mailboxes import services, throttle
from mailhost.proxy import client_address
from webmail.views import auth as webmail_auth

PROTOCOL = "admin"


def _user_exists(username: str) -> bool:
    user_model = get_user_model()
    return user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).exists()


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    retry_after: int | None = None
    otp_code = forms.CharField(
        label="Two-factor code",
        required=False,
        help_text="Only if you enrolled an authenticator app (manage.py admintotp).",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

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
            if not services.admin_totp_check(
                user=self.get_user(), code=self.cleaned_data.get("otp_code") or ""
            ):
                raise ValidationError(
                    "Please enter the correct username, password and two-factor code.",
                    code="invalid_login",
                )
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
