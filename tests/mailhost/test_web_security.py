"""Cookies, HSTS and the admin's Content-Security-Policy (issue 14), and the web access log
(issue 13). HTTPS here is Django's test client with secure=True; through a real TLS reverse
proxy it is tests/mailhost/test_reverse_proxy.py."""

from __future__ import annotations

import http.client
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from mailhost import runner
from mailhost.accesslog import access_line
from tests.support.logs import log_lines
from tests.support.servers import running

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(make_mailbox):
    return make_mailbox("alice@example.org", password="secret")


def sign_in(client: Client, **extra):
    page = client.get("/login/", **extra)
    token = page.cookies["csrftoken"].value
    response = client.post(
        "/login/",
        {"address": "alice@example.org", "password": "secret", "csrfmiddlewaretoken": token},
        HTTP_ORIGIN=("https" if extra.get("secure") else "http") + "://testserver",
        **extra,
    )
    assert response.status_code == 302, response.content[:300]
    return page, response


def test_cookies_are_secure_over_https_and_hsts_is_sent(alice):
    page, response = sign_in(Client(enforce_csrf_checks=True), secure=True)
    assert page.cookies["csrftoken"]["secure"] is True
    assert response.cookies["sessionid"]["secure"] is True
    assert "Secure" in response.cookies["sessionid"].output()
    assert response["Strict-Transport-Security"] == "max-age=31536000"


def test_plain_http_keeps_cookies_usable_and_sends_no_hsts(alice):
    # runmail on http://localhost:8000 must still sign in: no Secure, no HSTS there.
    page, response = sign_in(Client(enforce_csrf_checks=True))
    assert not page.cookies["csrftoken"]["secure"]
    assert not response.cookies["sessionid"]["secure"]
    assert "Strict-Transport-Security" not in response


def test_hsts_can_be_turned_off(alice, settings):
    settings.SECURE_HSTS_SECONDS = 0
    assert "Strict-Transport-Security" not in Client().get("/login/", secure=True)


def test_admin_pages_have_a_content_security_policy(db):
    User.objects.create_superuser("root", "root@example.org", "pw-long-enough")
    client = Client()
    login = client.get("/admin/login/", secure=True)
    csp = login["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "frame-ancestors 'self'" in csp
    assert login.cookies["csrftoken"]["secure"] is True
    client.force_login(User.objects.get(username="root"))
    for path in ("/admin/", "/admin/mailboxes/mailbox/", "/admin/mailboxes/mailbox/add/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response["Content-Security-Policy"] == csp, path
        # What the policy would block: an inline script or style, or an event handler.
        html = response.content.decode()
        assert not re.search(r"<script(?![^>]*\b(src|type=\"application/json\"))[^>]*>", html)
        assert not re.search(r"\son[a-z]+=|<style|\sstyle=", html), path


def test_webmail_keeps_its_own_policy(alice):
    csp = Client().get("/login/")["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp  # webmail/security.py's, not the admin's


def test_access_line_quotes_what_could_break_a_log_line():
    line = access_line(
        client="203.0.113.9",
        method="GET",
        path='/a b"c\n\u00e9'.encode().decode("latin-1"),  # as WSGI hands it over
        status="404 Not Found",
        size=12,
        ms=3.25,
    )
    assert line == (
        "web request client=203.0.113.9 method=GET path=/a%20b%22c%0A%C3%A9"
        " status=404 bytes=12 ms=3.2"
    )


@pytest.fixture
def web_log():
    with log_lines("mailhost.web") as lines:
        yield lines


@pytest.mark.django_db(transaction=True)
def test_access_log_has_one_line_per_request(live_settings, alice, web_log):
    with running(runner.WEB) as ports:
        conn = http.client.HTTPConnection("127.0.0.1", ports["web"], timeout=10)
        conn.request("GET", "/login/?next=/secret-token")
        response = conn.getresponse()
        body = response.read()
        conn.request("GET", "/static/admin/css/base.css")  # static files, served beside Django
        static = conn.getresponse()
        static_body = static.read()
        conn.request("POST", "/nowhere", body=b"x", headers={"X-Forwarded-For": "203.0.113.9"})
        conn.getresponse().read()
        conn.close()
        lines = web_log.wait_for("web request", 3)
    pattern = re.compile(
        r"web request client=(\S+) method=(\S+) path=(\S+) status=(\d+) bytes=(\d+) ms=[\d.]+$"
    )
    parsed = [pattern.match(line).groups() for line in lines]
    assert parsed == [
        ("127.0.0.1", "GET", "/login/", "200", str(len(body))),
        ("127.0.0.1", "GET", "/static/admin/css/base.css", "200", str(len(static_body))),
        # X-Forwarded-For from a peer that is not a trusted proxy is not believed.
        ("127.0.0.1", "POST", "/nowhere", "404", parsed[2][4]),
    ]
