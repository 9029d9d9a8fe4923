"""Sign-in with an internationalized address (issue 13): jörg@example.org could not sign in
(the form's email input refused the local part). The form takes any address as text, and the
server finds the mailbox whatever form of the address is typed: the local part composed or
decomposed (Unicode NFC/NFD), the domain in Unicode or as punycode."""

from __future__ import annotations

import unicodedata

import pytest

pytestmark = pytest.mark.django_db


def test_login_form_takes_any_address(client):
    page = client.get("/login/").content.decode()
    field = page[page.index('id="l-address"') - 20 : page.index('id="l-address"') + 300]
    assert 'type="text"' in field and 'type="email"' not in field
    assert 'inputmode="email"' in field and 'autocomplete="username"' in field
    assert 'autocapitalize="none"' in field and 'spellcheck="false"' in field


@pytest.mark.parametrize(
    ("created", "typed"),
    [
        ("jörg@example.org", "jörg@example.org"),
        ("jörg@example.org", "JÖRG@example.org"),
        ("jörg@example.org", unicodedata.normalize("NFD", "jörg@example.org")),
        ("jörg@bücher.example", "jörg@bücher.example"),
        ("jörg@bücher.example", "jörg@xn--bcher-kva.example"),
        ("anna@xn--bcher-kva.example", "anna@BÜCHER.example"),
        ("用户@例子.测试", "用户@例子.测试"),
    ],
)
def test_internationalized_address_signs_in(client, make_mailbox, created, typed):
    make_mailbox(created, password="a long password")
    response = client.post("/login/", {"address": typed, "password": "a long password"})
    assert response.status_code == 302, response.content.decode()[-600:]
    assert client.get("/").status_code == 302  # to the inbox, signed in
    inbox = client.get(client.get("/")["Location"])
    assert inbox.status_code == 200
