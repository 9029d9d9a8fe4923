"""The client's address, scheme and host behind a trusted reverse proxy (mailhost/proxy.py).

The end-to-end test through a real nginx is tests/mailhost/test_reverse_proxy.py.
"""

from __future__ import annotations

import ipaddress

import pytest
from django.test import Client

from mailhost.proxy import client_address, resolve, trusted_origins


def nets(*items: str):
    return tuple(ipaddress.ip_network(i) for i in items)


def environ(peer: str, **headers: str) -> dict:
    return {"REMOTE_ADDR": peer, "wsgi.url_scheme": "http", "HTTP_HOST": "backend:8000", **headers}


@pytest.fixture
def proxies(settings):
    settings.MAILHOST_TRUSTED_PROXIES = nets("10.0.0.0/8", "::1/128")
    return settings


def test_no_trusted_proxies_means_the_peer_is_the_client(settings):
    settings.MAILHOST_TRUSTED_PROXIES = ()
    env = environ(
        "10.0.0.5",
        HTTP_X_FORWARDED_FOR="203.0.113.9",
        HTTP_X_FORWARDED_PROTO="https",
        HTTP_X_FORWARDED_HOST="evil.test",
    )
    assert client_address(env) == "10.0.0.5"
    assert env["wsgi.url_scheme"] == "http" and env["HTTP_HOST"] == "backend:8000"
    assert "HTTP_X_FORWARDED_FOR" not in env  # nothing further down can read it by mistake


def test_a_trusted_proxy_gives_the_rightmost_untrusted_address(proxies):
    # The client forged 198.51.100.1; the outer proxy 10.1.1.1 saw 203.0.113.9 connect.
    env = environ("10.0.0.5", HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.9, 10.1.1.1")
    assert client_address(env) == "203.0.113.9"


def test_an_untrusted_peer_cannot_forge_its_address(proxies):
    env = environ("192.0.2.7", HTTP_X_FORWARDED_FOR="10.0.0.1", HTTP_X_FORWARDED_PROTO="https")
    assert client_address(env) == "192.0.2.7"
    assert env["wsgi.url_scheme"] == "http"


def test_all_hops_trusted_gives_the_leftmost(proxies):
    assert client_address(environ("10.0.0.5", HTTP_X_FORWARDED_FOR="10.9.9.9, 10.1.1.1")) == (
        "10.9.9.9"
    )


def test_garbage_in_the_chain_stops_at_the_last_good_hop(proxies):
    env = environ("10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.9, not-an-ip, 10.1.1.1")
    assert client_address(env) == "10.1.1.1"


def test_ports_brackets_and_mapped_addresses(proxies):
    assert client_address(environ("::1", HTTP_X_FORWARDED_FOR="[2001:db8::7]:4711")) == (
        "2001:db8::7"
    )
    assert client_address(environ("::ffff:10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.9:80")) == (
        "203.0.113.9"
    )


def test_proto_and_host_from_a_trusted_proxy(proxies):
    env = environ(
        "10.0.0.5",
        HTTP_X_FORWARDED_PROTO="http, https",  # the nearest proxy's word is the last
        HTTP_X_FORWARDED_HOST="mail.example.org:8443",
    )
    resolve(env)
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_HOST"] == "mail.example.org:8443"


def test_trusted_origins_follow_allowed_hosts():
    assert trusted_origins(["*"]) == []
    assert trusted_origins(["mail.example.org", ".example.net"]) == [
        "https://mail.example.org",
        "http://mail.example.org",
        "https://example.net",
        "http://example.net",
        "https://*.example.net",
        "http://*.example.net",
    ]


@pytest.mark.django_db
def test_sign_in_through_an_https_proxy_passes_csrf(proxies, make_mailbox):
    make_mailbox("alice@example.org", password="secret")
    # Before: Django compared the Origin https://mail.example.org with http://backend and
    # answered 403 "CSRF verification failed".
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR="10.0.0.5")
    forwarded = {
        "HTTP_X_FORWARDED_FOR": "203.0.113.9",
        "HTTP_X_FORWARDED_PROTO": "https",
        "HTTP_X_FORWARDED_HOST": "mail.example.org",
    }
    page = client.get("/login/", **forwarded)
    token = page.cookies["csrftoken"].value
    response = client.post(
        "/login/",
        {"address": "alice@example.org", "password": "secret", "csrfmiddlewaretoken": token},
        HTTP_ORIGIN="https://mail.example.org",
        **forwarded,
    )
    assert response.status_code == 302, response.content[:300]


@pytest.mark.django_db
def test_an_origin_from_the_allowed_hosts_is_trusted_without_x_forwarded_host(
    proxies, make_mailbox
):
    # A proxy that passes the scheme but rewrites Host to its upstream's name: the browser's
    # Origin is still one of MAILHOST_ALLOWED_HOSTS, so CSRF_TRUSTED_ORIGINS lets it in.
    proxies.ALLOWED_HOSTS = ["mail.example.org", "backend"]
    proxies.CSRF_TRUSTED_ORIGINS = trusted_origins(proxies.ALLOWED_HOSTS)
    make_mailbox("alice@example.org", password="secret")
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR="10.0.0.5", HTTP_HOST="backend")
    forwarded = {"HTTP_X_FORWARDED_FOR": "203.0.113.9", "HTTP_X_FORWARDED_PROTO": "https"}
    token = client.get("/login/", **forwarded).cookies["csrftoken"].value
    form = {"address": "alice@example.org", "password": "secret", "csrfmiddlewaretoken": token}
    refused = client.post("/login/", form, HTTP_ORIGIN="https://evil.example", **forwarded)
    assert refused.status_code == 403
    ok = client.post("/login/", form, HTTP_ORIGIN="https://mail.example.org", **forwarded)
    assert ok.status_code == 302
