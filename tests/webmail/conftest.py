"""Fixtures of the webmail tests: mailboxes, mail delivered through the real services, and
a browser-less client signed in through the real sign-in form."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import pytest
from django.test import Client
from django.utils import timezone

from mailboxes import services

_DKIM_KEY: list[str] = []


@pytest.fixture(autouse=True)
def _one_dkim_key(monkeypatch):
    """domain_create makes a 2048-bit key; one per test session is plenty here."""
    original = services.generate_dkim_key

    def cached() -> str:
        if not _DKIM_KEY:
            _DKIM_KEY.append(original())
        return _DKIM_KEY[0]

    monkeypatch.setattr(services, "generate_dkim_key", cached)


@pytest.fixture
def alice(make_mailbox):
    return make_mailbox("alice@example.org", password="secret", display_name="Alice Liddell")


@pytest.fixture
def bob(make_mailbox, alice):
    return make_mailbox("bob@example.org", password="hunter2")


def sign_in(client: Client, address: str, password: str) -> None:
    response = client.post("/login/", {"address": address, "password": password})
    assert response.status_code == 302, response.content


@pytest.fixture
def web(client, alice) -> Client:
    """A client signed in as alice."""
    sign_in(client, "alice@example.org", "secret")
    return client


def make_raw(
    *,
    subject: str = "Hello",
    sender: str = "Carol <carol@remote.example>",
    to: str = "alice@example.org",
    text: str = "Hello Alice,\nhow are you?\n",
    html: str | None = None,
    message_id: str | None = None,
    in_reply_to: str = "",
    references: str = "",
    attachments: tuple[tuple[str, str, bytes], ...] = (),
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(timezone.now())
    message["Message-ID"] = message_id or make_msgid(domain="remote.example")
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = references
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for filename, ctype, data in attachments:
        maintype, subtype = ctype.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()


def deliver(raw: bytes, *recipients: str) -> None:
    results = services.message_deliver(
        raw=raw, recipients=list(recipients) or ["alice@example.org"]
    )
    assert all(r.accepted for r in results), results


@pytest.fixture
def inbox(alice):
    from mailboxes.selectors import folder_get

    return folder_get(alice, "INBOX")


def release_server_connections() -> None:
    """Database connections of stopped server threads go with the threads' garbage: collect
    it now, so PostgreSQL can drop the test database at the end of the run."""
    import gc

    gc.collect()


def folder(mailbox, name):
    from mailboxes.selectors import folder_get

    return folder_get(mailbox, name)
