"""Search within a folder and across folders."""

from __future__ import annotations

import pytest

from mailboxes import services
from tests.webmail.conftest import deliver, folder, make_raw
from webmail import search as search_module

pytestmark = pytest.mark.django_db


@pytest.fixture
def corpus(alice, inbox):
    deliver(make_raw(subject="Budget 2027", sender="Carol <carol@remote.example>", text="numbers"))
    deliver(make_raw(subject="Lunch", sender="Dave <dave@remote.example>", text="pizza on friday"))
    deliver(
        make_raw(
            subject="Weekly",
            sender="News <news@letters.example>",
            text="plain part",
            html="<p>The <b>zeppelin</b> report</p>",
        )
    )
    sent = folder(alice, "Sent")
    services.message_append(
        folder=sent,
        raw=make_raw(
            subject="Re: Lunch",
            sender="alice@example.org",
            to="Dave <dave@remote.example>",
            text="yes, pizza",
        ),
        flags=["\\Seen"],
    )
    return sent


def subjects(response) -> list[str]:
    return [r["subject"] for r in response.context["rows"]]


def test_search_everywhere(web, corpus):
    response = web.get("/search/?q=pizza")
    assert response.status_code == 200
    assert subjects(response) == ["Re: Lunch", "Lunch"]
    folders = [r["folder_name"] for r in response.context["rows"]]
    assert folders == ["Sent", "INBOX"]


def test_search_by_sender(web, corpus):
    assert subjects(web.get("/search/?q=carol&in=from")) == ["Budget 2027"]
    assert subjects(web.get("/search/?q=remote.example&in=from")) == ["Lunch", "Budget 2027"]


def test_search_by_recipient(web, corpus):
    assert subjects(web.get("/search/?q=dave&in=to")) == ["Re: Lunch"]


def test_search_by_subject_is_case_insensitive(web, corpus):
    assert subjects(web.get("/search/?q=budget&in=subject")) == ["Budget 2027"]


def test_search_body_text_including_html(web, corpus):
    assert subjects(web.get("/search/?q=ZEPPELIN&in=body")) == ["Weekly"]
    assert subjects(web.get("/search/?q=Budget&in=body")) == []


def test_search_in_one_folder(web, corpus, inbox):
    response = web.get(f"/search/?q=pizza&folder={inbox.pk}")
    assert subjects(response) == ["Lunch"]
    assert response.context["rows"][0]["folder_name"] == ""
    assert f"/m/{inbox.pk}/" in response.content.decode()


def test_search_in_another_mailboxes_folder(web, corpus, bob):
    assert web.get(f"/search/?q=pizza&folder={folder(bob, 'INBOX').pk}").status_code == 404


def test_empty_and_unknown_field(web, corpus):
    response = web.get("/search/?q=")
    assert response.context["rows"] == []
    response = web.get("/search/?q=pizza&in=bogus")
    assert response.context["where"] == "any"


def test_body_scan_is_capped_and_says_so(web, inbox, monkeypatch):
    monkeypatch.setattr(search_module, "BODY_SCAN_LIMIT", 3)
    deliver(make_raw(subject="old", text="needle"))
    for n in range(4):
        deliver(make_raw(subject=f"new {n}", text="hay"))
    response = web.get("/search/?q=needle&in=body")
    assert subjects(response) == []  # the old match is beyond the cap...
    assert response.context["result"].body_incomplete
    assert "newest 3 messages only" in response.content.decode()  # ...and the page says so


def test_result_limit(web, inbox, monkeypatch):
    monkeypatch.setattr(search_module, "RESULT_LIMIT", 2)
    for n in range(3):
        deliver(make_raw(subject=f"match {n}"))
    response = web.get("/search/?q=match&in=subject")
    assert len(response.context["rows"]) == 2
    assert response.context["result"].truncated
    assert "2+ results" in response.content.decode()
