"""Search within a folder and across folders."""

from __future__ import annotations

import pytest

from mailboxes import fulltext, selectors, services
from mailboxes import search as store_search
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


@pytest.fixture
def inflected(alice, inbox):
    """Messages holding inflections of "running" and "connection", but not the words."""
    deliver(make_raw(subject="Morning", text="She runs every morning."))
    deliver(make_raw(subject="Printer", text="The printer is connected now."))
    deliver(make_raw(subject="Jobs", text="The job is rerunning tonight."))  # "running" inside
    deliver(make_raw(subject="Runner", text="A runner and a rerun."))  # stems runner, rerun
    deliver(make_raw(subject="Plain", text="Nothing to see here."))


def _never_read(*args, **kwargs):
    raise AssertionError("a message was read")


@pytest.mark.parametrize(
    "indexed", [2000, 0, None], ids=["indexed, few matches", "indexed, many", "not indexed"]
)
def test_a_search_word_finds_its_other_inflections(web, inflected, monkeypatch, indexed):
    """The webmail's body search finds a word's other inflections (English Snowball stems)
    beside its substrings; indexed, from the vocabulary and the words index without reading a
    message (their blobs looked up by id, or, when many, the mailbox walked), and not indexed
    yet, from each message's text."""
    if indexed is not None:
        fulltext.index_all()
        monkeypatch.setattr(selectors, "blob_read", _never_read)
        monkeypatch.setattr(store_search, "FEW_TEXT_MATCHES", indexed)
    assert subjects(web.get("/search/?q=running&in=body")) == ["Jobs", "Morning"]
    assert subjects(web.get("/search/?q=Connection&in=body")) == ["Printer"]
    assert subjects(web.get("/search/?q=runs&in=body")) == ["Morning"]  # "running": no text
    # "any" too; a needle that is not one word of letters keeps to substrings alone
    assert subjects(web.get("/search/?q=running")) == ["Jobs", "Morning"]
    assert subjects(web.get("/search/?q=is+running&in=body")) == []
    assert subjects(web.get("/search/?q=runnin&in=body")) == ["Jobs"]


def test_inflections_come_from_the_vocabulary(inflected):
    """The vocabulary's words with the needle's stem, other than those holding the needle
    (its substring search finds them), at most INFLECTIONS of them, the shortest first."""
    fulltext.index_all()
    assert fulltext.inflections("running") == ["runs"]
    assert fulltext.inflections("runs") == []  # "rerunning" and "runner" stem otherwise
    assert fulltext.inflections("connections") == ["connected"]
    assert fulltext.inflections("connection") == ["connected"]
    deliver(make_raw(text="We run; it was run; runs and running."))
    fulltext.index_all()
    assert fulltext.inflections("running") == ["run", "runs"]
    assert fulltext.inflections("runs") == ["run", "running"]
    # the range of the vocabulary's index after a stem ending in "z"
    deliver(make_raw(text="The drink fizzes; fizzy; fj."))
    fulltext.index_all()
    assert fulltext.inflections("fizzing") == ["fizzes"]


def test_inflections_are_bounded(inflected, monkeypatch):
    deliver(make_raw(text="Run, runs."))
    fulltext.index_all()
    monkeypatch.setattr(fulltext, "INFLECTIONS", 1)
    assert fulltext.inflections("running") == ["run"]
    monkeypatch.setattr(fulltext, "STEM_CANDIDATES", 0)
    assert fulltext.inflections("running") == []
