"""What a line of the message list shows: preview, conversations, relative dates."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from mailboxes import preview, services
from mailboxes.models import Message
from protocols.imap import mime
from tests.webmail.conftest import deliver, make_raw
from webmail.views.common import PAGE_SIZE, relative_date

pytestmark = pytest.mark.django_db


def test_preview_is_cached_at_delivery_as_imap_preview_gives_it(web, inbox):
    raw = make_raw(subject="lunch", text="Hi Alice,\n\n  lunch   at one?\n-- \nCarol\n")
    deliver(raw)
    message = Message.objects.get(folder=inbox, uid=1)
    assert message.preview == "Hi Alice, lunch at one? -- Carol"
    assert message.preview == preview.preview(raw, mime.parse(raw))  # what FETCH PREVIEW says
    body = web.get(f"/f/{inbox.pk}/").content.decode()
    assert "Hi Alice, lunch at one? -- Carol" in body


def test_preview_of_html_only_mail_has_no_markup(web, inbox):
    raw = make_raw(text="", html="<style>p{}</style><p>Sale <b>today</b> &amp; more</p>")
    deliver(raw)
    row = web.get(f"/f/{inbox.pk}/").context["rows"][0]
    # set_content("") makes an empty text/plain part first: the preview is that empty text
    assert row["preview"] == preview.preview(raw, mime.parse(raw))


def test_preview_is_kept_on_append_and_move(web, alice, inbox):
    from tests.webmail.conftest import folder

    archive = folder(alice, "Archive")
    services.message_append(folder=archive, raw=make_raw(text="appended text\n"), flags=[])
    assert Message.objects.get(folder=archive).preview == "appended text"
    deliver(make_raw(text="moved text\n"))
    services.messages_move(source=inbox, uids=[1], target=archive)
    assert sorted(Message.objects.filter(folder=archive).values_list("preview", flat=True)) == [
        "appended text",
        "moved text",
    ]


def test_conversation_is_one_line_with_its_count(web, inbox):
    deliver(make_raw(subject="plan", message_id="<root@remote.example>"))
    deliver(make_raw(subject="other"))
    deliver(
        make_raw(
            subject="Re: plan",
            message_id="<r1@remote.example>",
            in_reply_to="<root@remote.example>",
            references="<root@remote.example>",
        )
    )
    deliver(
        make_raw(
            subject="Re: plan",
            sender="Dan <dan@remote.example>",
            in_reply_to="<r1@remote.example>",
            references="<root@remote.example> <r1@remote.example>",
        )
    )
    response = web.get(f"/f/{inbox.pk}/")
    rows = response.context["rows"]
    assert [(r["subject"], r["thread_count"], r["pick"]) for r in rows] == [
        ("Re: plan", 3, "t4"),
        ("other", 1, "2"),
    ]
    assert rows[0]["who"] == "Dan"
    assert 'data-test="thread-count">3<' in response.content.decode()
    assert 'name="uid" value="t4"' in response.content.decode()
    # Its checkbox acts on the whole conversation
    web.post(f"/f/{inbox.pk}/bulk/", {"action": "read", "uid": "t4"})
    assert list(Message.objects.filter(folder=inbox, seen=True).values_list("uid", flat=True)) == [
        1,
        3,
        4,
    ]


def test_conversation_across_pages_is_shown_once_at_its_newest_message(web, inbox):
    """Grouping covers the whole folder: a conversation whose messages would fall on two
    pages is one line, where its newest message puts it, with its whole count, unread and
    flagged if any of its messages is, and every UID in its checkbox."""
    deliver(make_raw(subject="old plan", message_id="<root@remote.example>"))  # UID 1
    services.messages_store_flags(folder=inbox, uids=[1], flags=["\\Flagged"], mode="add")
    for n in range(PAGE_SIZE + 10):  # UIDs 2..61, each its own conversation
        deliver(make_raw(subject=f"single {n}", message_id=f"<s{n}@remote.example>"))
    deliver(make_raw(subject="Re: old plan", references="<root@remote.example>"))  # UID 62
    services.messages_store_flags(folder=inbox, uids=[62], flags=["\\Seen"], mode="add")
    first = web.get(f"/f/{inbox.pk}/").context
    top = first["rows"][0]
    assert (top["subject"], top["thread_count"], top["pick"]) == ("Re: old plan", 2, "t62")
    assert not top["seen"] and top["flagged"]  # UID 1 is unread and flagged
    assert len(first["rows"]) == PAGE_SIZE and first["has_older"]
    older_uid = first["older_uid"]
    second = web.get(f"/f/{inbox.pk}/?before={older_uid}").context
    subjects = [r["subject"] for r in second["rows"]]
    assert "old plan" not in subjects  # not again on the page its old message falls on
    assert len(subjects) == 11 and not second["has_older"]  # 61 conversations in all
    assert [r["uid"] for r in second["rows"]][-1] == 2
    # the newer page from the second one is the first page again
    back = web.get(f"/f/{inbox.pk}/?after={second['newer_uid']}").context
    assert [r["uid"] for r in back["rows"]] == [r["uid"] for r in first["rows"]]
    assert not back["has_newer"]
    # a reply to an old conversation brings it to the top, away from its old place
    deliver(make_raw(subject="Re: single 0", references="<s0@remote.example>"))  # UID 63
    rows = web.get(f"/f/{inbox.pk}/").context["rows"]
    assert [(r["uid"], r["thread_count"]) for r in rows[:2]] == [(63, 2), (62, 2)]
    last = web.get(f"/f/{inbox.pk}/?before={rows[-1]['uid']}").context["rows"]
    assert 2 not in [r["uid"] for r in last]


def test_unread_conversation_is_unread_if_any_message_is(web, inbox):
    deliver(make_raw(subject="a", message_id="<t@remote.example>"))
    deliver(make_raw(subject="b", references="<t@remote.example>"))
    services.messages_store_flags(folder=inbox, uids=[2], flags=["\\Seen"], mode="add")
    row = web.get(f"/f/{inbox.pk}/").context["rows"][0]
    assert row["pick"] == "t2" and not row["seen"]


@pytest.mark.parametrize(
    ("ago", "shown"),
    [
        (timedelta(minutes=7), "14:53"),
        (timedelta(hours=14, minutes=30), "00:30"),
        (timedelta(hours=15, minutes=30), "Yesterday"),
        (timedelta(days=3), "Monday"),
        (timedelta(days=20), "Nov 13"),
        (timedelta(days=400), "2025-10-29"),
    ],
)
def test_relative_dates_in_the_readers_zone(ago, shown):
    now = datetime(2026, 12, 3, 14, 0, tzinfo=UTC)  # a Thursday, 15:00 in Berlin
    with timezone.override(zoneinfo.ZoneInfo("Europe/Berlin")):
        assert relative_date(now - ago, now) == shown


def test_select_all_across_pages_acts_on_the_whole_folder(web, inbox):
    from webmail.views.common import PAGE_SIZE

    for n in range(PAGE_SIZE + 3):
        deliver(make_raw(subject=f"bulk {n}"))
    page = web.get(f"/f/{inbox.pk}/").content.decode()
    assert 'data-test="select-folder"' in page and f"Select all {PAGE_SIZE + 3} messages" in page
    response = web.post(f"/f/{inbox.pk}/bulk/", {"action": "read", "uid": "1", "all": "1"})
    assert response.status_code == 302
    assert not Message.objects.filter(folder=inbox, seen=False).exists()
    inbox.refresh_from_db()
    assert inbox.unseen_count == 0


def test_select_all_is_not_offered_on_a_single_page(web, inbox):
    deliver(make_raw())
    assert 'data-test="select-folder"' not in web.get(f"/f/{inbox.pk}/").content.decode()
