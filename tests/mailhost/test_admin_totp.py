"""Two-factor sign-in of Django admin users (mailhost/admin_login.py, manage.py admintotp)."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from mailboxes import totp
from mailboxes.models import AdminTOTP

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user():
    return get_user_model().objects.create_superuser("root", "root@example.org", "adminpw-1")


def enrol() -> str:
    out = io.StringIO()
    call_command("admintotp", "root", "--no-qr", stdout=out)
    text = out.getvalue()
    assert "otpauth://totp/Mailhost%20admin:root?secret=" in text
    return re.search(r"key: ([A-Z2-7]+)", text).group(1)


def log_in(client: Client, code: str = "") -> int:
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "root", "password": "adminpw-1", "otp_code": code, "next": "/admin/"},
    )
    return response.status_code


def test_admin_without_two_factor_signs_in_with_the_password(admin_user):
    client = Client()
    assert b"Two-factor code" in client.get("/admin/login/").content
    assert log_in(client) == 302
    assert client.get("/admin/").status_code == 200


def test_enrolled_admin_needs_the_code(admin_user, caplog):
    secret = enrol()
    client = Client()
    assert log_in(client) == 200  # the form again: no code
    assert log_in(client, "000000" if totp.code_at(secret) != "000000" else "111111") == 200
    failures = [
        r for r in caplog.records if r.getMessage().startswith("auth failure protocol=admin")
    ]
    assert len(failures) == 2
    assert client.get("/admin/").status_code == 302
    code = totp.code_at(secret)
    assert log_in(client, code) == 302
    assert client.get("/admin/").status_code == 200
    # The same code cannot be used again.
    assert log_in(Client(), code) == 200


def test_admintotp_remove(admin_user):
    enrol()
    call_command("admintotp", "root", "--remove", stdout=io.StringIO())
    assert not AdminTOTP.objects.exists()
    assert log_in(Client()) == 302
