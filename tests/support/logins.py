"""One login per call with a real client on each protocol, for the login limiter's and the
log's tests: True/False (or the HTTP response) and nothing else."""

from __future__ import annotations

import base64
import imaplib
import poplib
import smtplib
import ssl
import time

from django.test import Client


def tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def smtp_login(ports, address: str, password: str, mechanism: str = "PLAIN") -> bool:
    with smtplib.SMTP_SSL("127.0.0.1", ports["submissions"], context=tls(), timeout=30) as client:
        client.ehlo()
        try:
            if mechanism == "PLAIN":
                client.auth("PLAIN", lambda challenge=None: f"\0{address}\0{password}")
            else:
                client.user, client.password = address, password
                client.auth("LOGIN", client.auth_login)
            return True
        except smtplib.SMTPAuthenticationError:
            return False


def imap_login(ports, address: str, password: str, mechanism: str = "LOGIN") -> bool:
    client = imaplib.IMAP4_SSL("127.0.0.1", ports["imaps"], ssl_context=tls(), timeout=30)
    try:
        if mechanism == "LOGIN":
            client.login(address, password)
        else:
            client.authenticate("PLAIN", lambda _: f"\0{address}\0{password}".encode())
    except imaplib.IMAP4.error:
        client.shutdown()
        return False
    client.logout()
    return True


def pop3_login(ports, address: str, password: str, mechanism: str = "USER") -> bool:
    client = poplib.POP3_SSL("127.0.0.1", ports["pop3s"], context=tls(), timeout=30)
    try:
        if mechanism == "USER":
            client.user(address)
            client.pass_(password)
        else:
            token = base64.b64encode(f"\0{address}\0{password}".encode()).decode()
            client._shortcmd(f"AUTH PLAIN {token}")
        client.quit()
        return True
    except poplib.error_proto:
        return False
    finally:
        client.close()


def web_login(address: str, password: str, ip: str = "127.0.0.1"):
    """The webmail's sign-in form, posted by Django's test client from client address `ip`."""
    return Client(REMOTE_ADDR=ip).post("/login/", {"address": address, "password": password})


def admin_login(username: str, password: str, ip: str = "127.0.0.1"):
    """The Django admin's sign-in form, from client address `ip`."""
    return Client(REMOTE_ADDR=ip).post(
        "/admin/login/?next=/admin/", {"username": username, "password": password}
    )


def timed(function, *args, **kwargs):
    start = time.monotonic()
    result = function(*args, **kwargs)
    return result, time.monotonic() - start
