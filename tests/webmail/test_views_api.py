"""The poller's JSON endpoint."""

from __future__ import annotations

import pytest

from tests.webmail.conftest import deliver, make_raw

pytestmark = pytest.mark.django_db


def test_status_counts_and_change_markers(web, inbox, django_assert_max_num_queries):
    with django_assert_max_num_queries(4):
        first = web.get("/api/status/").json()
    entry = next(f for f in first["folders"] if f["name"] == "INBOX")
    assert entry == {
        "id": inbox.pk,
        "name": "INBOX",
        "unseen": 0,
        "total": 0,
        "modseq": inbox.highestmodseq,
        "uidnext": 1,
    }
    deliver(make_raw())
    second = next(f for f in web.get("/api/status/").json()["folders"] if f["name"] == "INBOX")
    assert (second["unseen"], second["total"], second["uidnext"]) == (1, 1, 2)
    assert second["modseq"] > entry["modseq"]
    assert len(first["folders"]) == 6


def test_status_only_lists_own_folders(web, bob):
    ids = {f["id"] for f in web.get("/api/status/").json()["folders"]}
    from mailboxes.models import Folder

    assert not ids & set(Folder.objects.filter(mailbox=bob).values_list("id", flat=True))


def test_status_needs_get(web):
    assert web.post("/api/status/").status_code == 405
