"""Hot paths on a large folder: SELECT uses the Folder counters, FETCH 1:* (FLAGS) is one
query, and the session's sequence map stays in memory. Timings are printed, not asserted:
speed targets live in bench/.

The default run uses 20k messages; `-m slow` runs the 100k variant."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from mailboxes import selectors, services
from mailboxes.models import Folder, Message

pytestmark = pytest.mark.django_db(transaction=True)


def fill(imap, count: int) -> Folder:
    services.message_deliver(raw=b"Subject: seed\r\n\r\nx\r\n", recipients=["alice@example.org"])
    folder = selectors.folder_get(imap["mailbox"], "INBOX")
    template = selectors.messages_in(folder).get()
    now = timezone.now()
    rows = [
        Message(
            folder_id=folder.id,
            uid=uid,
            modseq=2,
            blob_id=template.blob_id,
            size=template.size,
            internal_date=now,
            seen=uid % 3 == 0,
            flagged=uid % 7 == 0,
            subject=f"message {uid}",
        )
        for uid in range(2, count + 1)
    ]
    Message.objects.bulk_create(rows, batch_size=5000)
    Folder.objects.filter(pk=folder.pk).update(
        uidnext=count + 1,
        message_count=count,
        first_recent_uid=count + 1,
        unseen_count=count - count // 3,
    )
    return selectors.folder_get(imap["mailbox"], "INBOX")


def measure(client, count: int) -> dict[str, float]:
    c = client()
    timings = {}
    started = time.perf_counter()
    lines = c.cmd("a1", "SELECT INBOX")
    timings["select"] = time.perf_counter() - started
    assert b"* %d EXISTS" % count in lines
    started = time.perf_counter()
    lines = c.cmd("a2", "FETCH 1:* (FLAGS)")
    timings["fetch_flags"] = time.perf_counter() - started
    assert len(lines) == count + 1
    started = time.perf_counter()
    lines = c.cmd("a3", "UID SEARCH FLAGGED")
    timings["search_flagged"] = time.perf_counter() - started
    assert len(lines[0].split()) == 2 + count // 7
    started = time.perf_counter()
    lines = c.cmd("a4", "FETCH 1:* (UID RFC822.SIZE INTERNALDATE)")
    timings["fetch_fast"] = time.perf_counter() - started
    return timings


def test_twenty_thousand_messages(client, imap):
    fill(imap, 20_000)
    timings = measure(client, 20_000)
    print("IMAP 20k:", {k: round(v, 3) for k, v in timings.items()})


@pytest.mark.slow
def test_hundred_thousand_messages(client, imap, request):
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("the 100k-message variant runs with -m slow")
    fill(imap, 100_000)
    timings = measure(client, 100_000)
    print("IMAP 100k:", {k: round(v, 3) for k, v in timings.items()})


def test_small_message_bodies(client, imap):
    """FETCH of small messages' bytes (inline in their rows, the common case): BODY.PEEK[]
    whole and a partial of it, 20k messages. Printed, like the others; the assertions check
    that every message came back."""
    fill(imap, 20_000)
    c = client()
    c.cmd("a1", "SELECT INBOX")
    timings = {}
    for tag, items in (("a2", "BODY.PEEK[]"), ("a3", "BODY.PEEK[]<0.10>"), ("a4", "RFC822")):
        started = time.perf_counter()
        lines = c.cmd(tag, f"FETCH 1:* ({items})")
        timings[items] = time.perf_counter() - started
        assert sum(b" FETCH (" in line for line in lines) == 20_000
        assert lines[-1].startswith(tag.encode() + b" OK")
    print("IMAP 20k bodies:", {k: round(v, 3) for k, v in timings.items()})
