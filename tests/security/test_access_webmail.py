# ruff: noqa: F811 - fixtures imported from tests/webmail/conftest.py are shadowed by design
"""Webmail: no IDOR. Every id in a URL or form that names another mailbox's folder, message,
attachment or raw source is answered 404 (or ignored), and never shows or changes its data.

tests/webmail covers the reading pages and the folder list; this adds every remaining route
(rename, delete, bulk actions, parts by path, compose reply/forward/draft/attachment refs).
"""

from __future__ import annotations

import pytest

from mailboxes import selectors
from tests.webmail.conftest import _one_dkim_key, alice, bob, deliver, folder, make_raw, web  # noqa: F401

SECRET = "bobs-private-9q2w"


@pytest.fixture
def bobs(bob):
    deliver(
        make_raw(
            to="bob@example.org",
            subject=SECRET,
            text=f"{SECRET} body\n",
            attachments=(("plans.txt", "text/plain", SECRET.encode() * 3),),
        ),
        "bob@example.org",
    )
    return folder(bob, "INBOX")


def _bob_state(bob):
    return [
        (
            f.name,
            selectors.is_subscribed(bob, f.name),
            [(m.uid, m.seen, m.deleted, m.flagged) for m in selectors.messages_in(f)],
        )
        for f in selectors.folders_of(bob)
    ]


def test_reading_routes_of_another_mailbox_are_404(web, bob, bobs):
    for path in ("", "frame/", "raw/", "raw/?download=1", "part/1/", "part/2/", "part/1.1/"):
        response = web.get(f"/m/{bobs.pk}/1/{path}")
        assert response.status_code == 404, path
        assert SECRET.encode() not in response.content
    assert web.get(f"/f/{bobs.pk}/").status_code == 404
    assert web.get(f"/search/?q={SECRET}&folder={bobs.pk}").status_code in (200, 404)
    # The query is echoed on the page; no hit of Bob's is linked.
    assert f"/m/{bobs.pk}/".encode() not in web.get(f"/search/?q={SECRET}").content


def test_writing_routes_of_another_mailbox_are_404_and_change_nothing(web, bob, bobs):
    before = _bob_state(bob)
    archive = folder(bob, "Archive")
    for url, data in [
        (f"/folders/{archive.pk}/rename/", {"name": "Stolen"}),
        (f"/folders/{archive.pk}/delete/", {}),
        (f"/folders/{bobs.pk}/delete/", {}),
        (f"/f/{bobs.pk}/bulk/", {"action": "delete", "uid": "1"}),
        (f"/f/{bobs.pk}/bulk/", {"action": "read", "uid": "1"}),
        (f"/f/{bobs.pk}/bulk/", {"action": "move", "uid": "1", "target": str(archive.pk)}),
    ]:
        assert web.post(url, data).status_code == 404, url
    # Alice's own message moved "into" Bob's folder: refused, nothing lands there.
    deliver(make_raw(subject="mine"))
    inbox = folder(web_mailbox := selectors.mailbox_get("alice@example.org"), "INBOX")
    response = web.post(
        f"/f/{inbox.pk}/bulk/", {"action": "move", "uid": "1", "target": str(archive.pk)}
    )
    assert response.status_code in (302, 400, 404)
    assert _bob_state(bob) == before
    assert selectors.messages_in(folder(web_mailbox, "INBOX")).count() == 1


def test_compose_refs_to_another_mailbox_show_nothing(web, bob, bobs):
    for query in (
        f"reply={bobs.pk}:1",
        f"reply={bobs.pk}:1&all=1",
        f"forward={bobs.pk}:1",
        f"forward={bobs.pk}:1&mode=attach",
        f"draft={folder(bob, 'Drafts').pk}:1",
        "draft=1",
    ):
        response = web.get(f"/compose/?{query}")
        assert response.status_code in (200, 404), query
        assert SECRET.encode() not in response.content, query
    response = web.post(
        "/compose/",
        {
            "action": "draft",
            "to": "carol@remote.example",
            "subject": "x",
            "body": "x",
            "keep": [f"{bobs.pk}:1:2", f"{bobs.pk}:1:message"],
            "answer_ref": f"{bobs.pk}:1",
        },
    )
    assert response.status_code in (200, 302)
    drafts = folder(selectors.mailbox_get("alice@example.org"), "Drafts")
    for message in selectors.messages_in(drafts):
        assert SECRET.encode() not in bytes(selectors.blob_read(message.blob))
    assert not selectors.messages_in(bobs).get(uid=1).answered
