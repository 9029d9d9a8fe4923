"""The well-known paths over runmail's real web server (mailhost/web.py) on a socket, as a
load balancer, Prometheus and Outlook reach them: HEAD /healthz has no body, /metrics
refuses a client outside the allow-list by its socket address, Autodiscover's POST passes
without cookie or CSRF token."""

from __future__ import annotations

import http.client

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailhost import runner
from tests.mailhost.test_clientconfig import autodiscover_request, outlook_protocols
from tests.support.servers import running

pytestmark = pytest.mark.django_db(transaction=True)


def request(port: int, method: str, path: str, *, source: str = "127.0.0.1", **kwargs):
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=15, source_address=(source, 0)
    )
    try:
        connection.request(method, path, **kwargs)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_wellknown_paths_over_the_web_server(live_settings, make_mailbox):
    make_mailbox("alice@example.org")
    with running(runner.WEB) as ports:
        port = ports["web"]
        status, headers, body = request(port, "HEAD", "/healthz")
        assert (status, body) == (200, b"")
        status, _headers, body = request(port, "GET", "/healthz")
        assert (status, body.splitlines()[0]) == (200, b"ok")

        status, headers, body = request(port, "GET", "/metrics")
        assert status == 200
        names = {f.name for f in text_string_to_metric_families(body.decode())}
        assert {"mailhost_logins", "mailhost_queue_recipients"} <= names
        # Another client address (127.0.0.2 is loopback too, but not in the allow-list).
        status, _headers, _body = request(port, "GET", "/metrics", source="127.0.0.2")
        assert status == 403

        status, headers, body = request(
            port,
            "POST",
            "/autodiscover/autodiscover.xml",
            body=autodiscover_request("alice@example.org"),
            headers={"Content-Type": "text/xml", "Host": "autodiscover.example.org"},
        )
        assert status == 200, body
        assert outlook_protocols(body)["IMAP"]["Server"] == "mx.test.example"
