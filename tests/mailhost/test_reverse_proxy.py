"""Sign-in to the webmail through a real HTTPS reverse proxy (Debian's nginx), issue 13.

Before MAILHOST_TRUSTED_PROXIES the sign-in POST got 403 "CSRF verification failed" (Origin
https://... is not trusted): Django saw plain HTTP from the proxy. The client connects to
nginx from 127.0.0.2, nginx to the web app from 127.0.0.1 (the trusted proxy), so the address
the app logs and limits on shows whose X-Forwarded-For was believed. Behind nginx runs
either web server Mailhost has: runmail's (mailhost/web.py, in this process) and the
production `gunicorn mailhost.wsgi` (a child process on the test database).
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.conf import global_settings
from django.db import connections

from bench.mailhost_process import free_port
from mailhost import runner
from tests.support.logs import ServerLog, log_lines
from tests.support.servers import running
from tests.support.tlsca import CertAuthority, make_ca

REPO = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
pytestmark = [
    pytest.mark.skipif(
        NGINX is None,
        reason="nginx is not installed (apt-get install nginx-light); reverse-proxy test skipped",
    ),
    pytest.mark.django_db(transaction=True),
]

CLIENT = "127.0.0.2"  # the browser, as nginx sees it
STRANGER = "127.0.0.3"  # connects to the web app directly, not a trusted proxy

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass http://127.0.0.1:{backend};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
        }}
    }}
}}
"""


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                text = log.read_text(errors="replace") if log.exists() else ""
                raise RuntimeError(f"{process.args[0]} did not start: {text[-2000:]}") from None
            time.sleep(0.05)


@contextmanager
def nginx(tmp_path, ca: CertAuthority, backend: int):
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            prefix=prefix, port=port, cert=ca.cert_path, key=ca.key_path, backend=backend
        )
    )
    process = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", str(conf), "-e", "stderr"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, prefix / "error.log")
        yield port
    finally:
        process.terminate()
        process.wait(10)


class Browser:
    """Just enough of a browser over http.client: a cookie jar, Origin and Referer on POSTs,
    TLS verified against the test CA, connecting from a chosen loopback address."""

    def __init__(self, *, port: int, ca: CertAuthority | None, source: str) -> None:
        self.port, self.ca, self.source = port, ca, source
        self.cookies: dict[str, str] = {}
        scheme = "https" if ca else "http"
        self.origin = f"{scheme}://127.0.0.1:{port}"

    def request(self, method: str, path: str, *, form: dict | None = None, headers=None):
        if self.ca:
            conn = http.client.HTTPSConnection(
                "127.0.0.1",
                self.port,
                context=self.ca.client_context(),
                source_address=(self.source, 0),
                timeout=10,
            )
        else:
            conn = http.client.HTTPConnection(
                "127.0.0.1", self.port, source_address=(self.source, 0), timeout=10
            )
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = self.origin
            headers["Referer"] = f"{self.origin}{path}"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.body = response.read()
        conn.close()
        response.set_cookies = SimpleCookie()
        for value in response.headers.get_all("Set-Cookie") or []:
            response.set_cookies.load(value)
        for name, morsel in response.set_cookies.items():
            self.cookies[name] = morsel.value
        return response

    def login_form(self) -> tuple[object, str]:
        page = self.request("GET", "/login/")
        assert page.status == 200, page.body[:300]
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.body).group(1)
        return page, token.decode()


GUNICORN = shutil.which("gunicorn") or shutil.which(
    "gunicorn", path=str(Path(sys.executable).parent)
)


def database_url() -> str:
    db = connections["default"].settings_dict
    if db["ENGINE"].endswith("postgresql"):
        return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


@contextmanager
def gunicorn(tmp_path):
    """`gunicorn mailhost.wsgi`, the production web app, on the test database."""
    port = free_port()
    log = tmp_path / "gunicorn.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "MAILHOST_DATA_DIR": str(tmp_path / "gunicorn-data"),
        "MAILHOST_HOSTNAME": "mx.test.example",
        "MAILHOST_TRUSTED_PROXIES": "127.0.0.1",
    }
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            [GUNICORN, "mailhost.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1", "--threads", "4"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_for_port(port, process, log)
        yield port, ServerLog(log)
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def runmail_web(live_settings, monkeypatch):
    """The web app as `runmail` serves it (mailhost/web.py), in this process."""
    live_settings.MAILHOST_TRUSTED_PROXIES = (ipaddress.ip_network("127.0.0.1"),)
    # The server's threads close their connections after each request, so none outlives the
    # test (PostgreSQL refuses to drop a test database that still has sessions).
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    with running(runner.WEB) as ports, log_lines("mailhost", "webmail", "mailboxes") as logs:
        yield ports["web"], logs


@pytest.fixture(params=["runmail", "gunicorn"])
def site(request, live_settings, make_mailbox, monkeypatch, tmp_path):
    if request.param == "gunicorn":
        if GUNICORN is None:
            pytest.skip("gunicorn is not installed (requirements.txt); its variant skipped")
        # The child process checks passwords with the default hashers, not the tests' fast one.
        live_settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
        backend = gunicorn(tmp_path)
    else:
        backend = runmail_web(live_settings, monkeypatch)
    make_mailbox("alice@example.org", password="a-long-secret-1")
    ca = make_ca(tmp_path / "ca")
    with backend as (web_port, logs), nginx(tmp_path, ca, web_port) as proxy_port:
        yield ca, proxy_port, web_port, logs


def test_sign_in_through_nginx_over_https(site):
    ca, proxy_port, _, logs = site
    browser = Browser(port=proxy_port, ca=ca, source=CLIENT)
    page, token = browser.login_form()
    assert page.set_cookies["csrftoken"]["secure"], page.headers.get_all("Set-Cookie")
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000"

    # A wrong password first: the limiter and its log line see the browser's address,
    # not nginx's and not the one the browser forged.
    forged = {"X-Forwarded-For": "198.51.100.66"}
    wrong = browser.request(
        "POST",
        "/login/",
        form={"address": "alice@example.org", "password": "nope", "csrfmiddlewaretoken": token},
        headers=forged,
    )
    assert wrong.status == 401, wrong.body[:300]

    signed = browser.request(
        "POST",
        "/login/",
        form={
            "address": "alice@example.org",
            "password": "a-long-secret-1",
            "csrfmiddlewaretoken": token,
        },
    )
    assert signed.status == 302, signed.body[:300]  # before: 403 CSRF verification failed
    session = signed.set_cookies["sessionid"]
    assert session["secure"] and session["httponly"], signed.headers.get_all("Set-Cookie")
    assert signed.headers["Strict-Transport-Security"] == "max-age=31536000"
    index = browser.request("GET", signed.headers["Location"])
    assert index.status == 302, index.body[:300]  # to the inbox, signed in
    assert not index.headers["Location"].startswith("/login/")
    inbox = browser.request("GET", index.headers["Location"])
    assert inbox.status == 200 and b"alice@example.org" in inbox.body

    access = logs.wait_for("web request", 5)
    assert [line.split(" status=")[0] for line in access] == [
        f"web request client={CLIENT} method=GET path=/login/",
        f"web request client={CLIENT} method=POST path=/login/",
        f"web request client={CLIENT} method=POST path=/login/",
        f"web request client={CLIENT} method=GET path=/",
        f"web request client={CLIENT} method=GET path={index.headers['Location']}",
    ]
    failures = [m for m in logs.messages if "fail" in m and "alice@example.org" in m]
    assert failures and all(CLIENT in m and "198.51.100.66" not in m for m in failures), failures


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(site):
    _, _, web_port, logs = site
    stranger = Browser(port=web_port, ca=None, source=STRANGER)
    claims = {
        "X-Forwarded-For": "203.0.113.9",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
    }
    page = stranger.request("GET", "/login/", headers=claims)
    access = logs.wait_for("web request", 1)
    assert page.status == 200
    assert "Strict-Transport-Security" not in page.headers  # not believed to be HTTPS
    assert not page.set_cookies["csrftoken"]["secure"]
    assert b"evil.example" not in page.body
    assert access[0].startswith(f"web request client={STRANGER} method=GET path=/login/ ")


def test_nginx_config_is_the_documented_one():
    # README shows operators this block; keep the two in step.
    text = (REPO / "README.md").read_text(encoding="utf-8")
    for line in (
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host $http_host;",
    ):
        assert line in text and line in NGINX_CONF
