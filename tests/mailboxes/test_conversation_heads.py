"""Message.conversation_head, the mark the webmail's list reads conversations from, and the
Conversation rows, the counts it shows for them: whatever sequence of writes happens (delivery,
APPEND, COPY and MOVE, also into another's folder, STORE, also by a reader of a shared folder,
EXPUNGE, delete, Empty, a folder's deletion, and rows written by plain statements: a UID given
lower than the folder's highest, a thread_key, UID, folder or flags changed, many rows at once),
every row's mark equals its recomputation (the highest UID of its (folder, thread_key), or no
thread_key), and the Conversation rows equal the counts of each (folder, thread_key)'s messages,
with the owner's \\Seen. The triggers of migrations 0033 and 0037 keep them, on both
databases."""

from __future__ import annotations

import itertools

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailboxes import selectors, services
from mailboxes.models import Conversation, Folder, Mailbox, Message

pytestmark = pytest.mark.django_db

KEYS = ["", "<a@x.example>", "<b@x.example>"]
# UIDs the services give start here, so that plain statements have lower free ones to use.
FIRST_UID = 1000
names = itertools.count()


def raw_of(key: str, n: int) -> bytes:
    """A message whose thread_key is `key` (its References root), or none (no Message-ID,
    References or In-Reply-To)."""
    header = f"References: {key}\r\nMessage-ID: <{n}@y.example>\r\n" if key else ""
    return f"From: b@remote.example\r\nSubject: s{n}\r\n{header}\r\nbody {n}\r\n".encode()


def recomputed() -> tuple[dict[int, bool], dict[int, bool]]:
    """Every message's mark as kept, and as recomputed from the rows."""
    rows = list(
        Message.objects.values_list("id", "folder_id", "thread_key", "uid", "conversation_head")
    )
    newest: dict[tuple[int, str], int] = {}
    for _, folder_id, key, uid, _ in rows:
        newest[folder_id, key] = max(newest.get((folder_id, key), 0), uid)
    kept = {pk: head for pk, _, _, _, head in rows}
    truth = {pk: not key or uid == newest[folder_id, key] for pk, folder_id, key, uid, _ in rows}
    return kept, truth


def counts() -> tuple[dict, dict]:
    """Every Conversation row's counts as kept, and as recomputed from the messages."""
    kept = {
        (folder_id, key): rest
        for folder_id, key, *rest in Conversation.objects.values_list(
            "folder_id", "thread_key", "messages", "unseen", "flagged", "attachments"
        )
    }
    truth: dict[tuple[int, str], list[int]] = {}
    rows = Message.objects.exclude(thread_key="").values_list(
        "folder_id", "thread_key", "seen", "flagged", "has_attachments"
    )
    for folder_id, key, seen, flagged, attachments in rows:
        total = truth.setdefault((folder_id, key), [0, 0, 0, 0])
        for i, counted in enumerate((True, not seen, flagged, attachments)):
            total[i] += counted
    return kept, truth


def free_uid(folder: Folder, rng: int) -> int:
    """A UID below FIRST_UID that the folder does not use."""
    used = set(Message.objects.filter(folder=folder).values_list("uid", flat=True))
    start = 1 + rng % 900
    return next(u for u in [*range(start, FIRST_UID), *range(1, start)] if u not in used)


def picked(folder: Folder, pick: list[int]) -> list[int]:
    uids = sorted(Message.objects.filter(folder=folder).values_list("uid", flat=True))
    return sorted({uids[i % len(uids)] for i in pick}) if uids else []


FLAGS = ["\\Seen", "\\Flagged", "\\Answered"]
COLUMNS = ["seen", "flagged", "has_attachments"]
folder_index = st.integers(0, 2)  # the two folders of the example, and bob's shared one
pick = st.lists(st.integers(0, 50), min_size=1, max_size=4)
key = st.sampled_from(range(len(KEYS)))
operation = st.one_of(
    st.tuples(st.just("append"), folder_index, st.lists(key, min_size=1, max_size=5)),
    st.tuples(st.just("deliver"), key),
    st.tuples(st.just("store"), folder_index, pick, st.sampled_from(FLAGS), st.booleans()),
    st.tuples(st.just("reader store"), pick, st.booleans()),
    st.tuples(st.just("copy"), folder_index, folder_index, pick),
    st.tuples(st.just("move"), folder_index, folder_index, pick),
    st.tuples(st.just("expunge"), folder_index, pick),
    st.tuples(st.just("delete"), folder_index, pick),
    st.tuples(st.just("empty"), folder_index),
    st.tuples(st.just("insert below"), folder_index, st.lists(key, min_size=1, max_size=3)),
    st.tuples(st.just("rekey"), folder_index, pick, key),
    st.tuples(st.just("renumber"), folder_index, pick),
    st.tuples(st.just("refolder"), folder_index, folder_index, pick),
    st.tuples(st.just("reflag"), folder_index, pick, st.sampled_from(COLUMNS), st.booleans()),
)


def recount(folders: list[Folder]) -> None:
    """The folders' counters and their mailboxes' usage after plain statements moved rows
    (the services keep them; the statements here stand for writers that are not services)."""
    for folder in folders:
        rows = Message.objects.filter(folder=folder)
        Folder.objects.filter(pk=folder.pk).update(
            message_count=rows.count(),
            unseen_count=rows.filter(seen=False).count(),
            total_size=rows.aggregate(size=Sum("size"))["size"] or 0,
        )
    for mailbox_id in {f.mailbox_id for f in folders}:
        size = Message.objects.filter(folder__mailbox_id=mailbox_id).aggregate(size=Sum("size"))
        Mailbox.objects.filter(pk=mailbox_id).update(used_bytes=size["size"] or 0)


def apply(op: tuple, folders: list[Folder], blob_id: int, n: int) -> None:
    kind, *args = op
    if kind == "append":
        for k in args[1]:
            services.message_append(folder=folders[args[0]], raw=raw_of(KEYS[k], n))
    elif kind == "deliver":
        services.message_deliver(raw=raw_of(KEYS[args[0]], n), recipients=["alice@example.org"])
    elif kind == "store":
        folder = folders[args[0]]
        mode = "add" if args[3] else "remove"
        uids = picked(folder, args[1])
        services.messages_store_flags(folder=folder, uids=uids, flags=[args[2]], mode=mode)
    elif kind == "reader store":  # alice's own \Seen on bob's folder: not the owner's
        folder = folders[2]
        services.messages_store_flags(
            folder=folder,
            uids=picked(folder, args[0]),
            flags=["\\Seen"],
            mode="add" if args[1] else "remove",
            reader=folders[0].mailbox_id,
        )
    elif kind in ("copy", "move"):
        source, target = folders[args[0]], folders[args[1]]
        uids = picked(source, args[2])
        if uids and source != target:
            write = services.messages_copy if kind == "copy" else services.messages_move
            write(source=source, uids=uids, target=target, shared=True)
    elif kind == "expunge":
        folder = folders[args[0]]
        uids = picked(folder, args[1])
        services.messages_store_flags(folder=folder, uids=uids, flags=["\\Deleted"], mode="add")
        services.messages_expunge(folder=folder)
    elif kind == "delete":
        services.messages_delete(folder=folders[args[0]], uids=picked(folders[args[0]], args[1]))
    elif kind == "empty":
        services.folder_empty(folder=folders[args[0]])
    elif kind == "insert below":  # an import's UIDs: lower than the folder's newest, one statement
        folder = folders[args[0]]
        used = set(Message.objects.filter(folder=folder).values_list("uid", flat=True))
        free = [u for u in range(1 + n % 500, FIRST_UID) if u not in used][: len(args[1])]
        Message.objects.bulk_create(
            Message(
                folder=folder, uid=uid, modseq=1, blob_id=blob_id, size=1,
                internal_date=timezone.now(),
                thread_key=KEYS[k], conversation_head=bool(n % 2),
                seen=k == 1, flagged=uid % 3 == 0, has_attachments=uid % 2 == 0,
            )
            for uid, k in zip(free, args[1], strict=False)
        )  # fmt: skip
    elif kind == "rekey":  # many rows at once
        folder = folders[args[0]]
        Message.objects.filter(folder=folder, uid__in=picked(folder, args[1])).update(
            thread_key=KEYS[args[2]]
        )
    elif kind == "renumber":
        folder = folders[args[0]]
        for uid in picked(folder, args[1]):
            Message.objects.filter(folder=folder, uid=uid).update(uid=free_uid(folder, n + uid))
    elif kind == "refolder":
        source, target = folders[args[0]], folders[args[1]]
        for uid in picked(source, args[2]):
            Message.objects.filter(folder=source, uid=uid).update(
                folder=target, uid=free_uid(target, n + uid), seen=bool(uid % 2)
            )
    elif kind == "reflag":  # many rows at once, some of them set to what they were
        folder = folders[args[0]]
        Message.objects.filter(folder=folder, uid__in=picked(folder, args[1])).update(
            **{args[2]: args[3]}
        )
    if kind in ("insert below", "refolder", "reflag"):
        recount(folders)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(operation, min_size=1, max_size=16))
def test_every_write_keeps_the_mark_and_the_counts_equal_to_their_recomputation(make_mailbox, ops):
    alice = Mailbox.objects.filter(local_part="alice").first() or make_mailbox("alice@example.org")
    bob = Mailbox.objects.filter(local_part="bob").first() or make_mailbox("bob@example.org")
    number = next(names)
    folders = [
        services.folder_create(mailbox=alice, name=f"A{number}"),
        services.folder_create(mailbox=alice, name=f"B{number}"),
        services.folder_create(mailbox=bob, name=f"Shared{number}"),
    ]
    Folder.objects.filter(pk__in=[f.pk for f in folders]).update(uidnext=FIRST_UID)
    folders = [Folder.objects.get(pk=f.pk) for f in folders]
    seed = services.message_append(folder=folders[0], raw=raw_of(KEYS[1], 0))
    for n, op in enumerate(ops, start=1):
        apply(op, folders, seed.blob_id, n)
        kept, truth = recomputed()
        assert kept == truth, (op, {pk for pk in kept if kept[pk] != truth[pk]})
        kept_counts, true_counts = counts()
        assert kept_counts == true_counts, op
        for folder in folders:
            folder.refresh_from_db()
            page, _, _ = selectors.conversation_list_page(
                folder, before=None, after=None, size=1000, fields=("uid",)
            )
            listed = [m.uid for m in page]
            rows = Message.objects.filter(folder=folder).values_list("uid", "id")
            assert listed == sorted((u for u, pk in rows if truth[pk]), reverse=True)
    for folder in folders:
        services.folder_delete(folder=folder)
    kept, truth = recomputed()
    assert kept == truth
    kept_counts, true_counts = counts()
    assert kept_counts == true_counts


def heads(folder: Folder) -> dict[int, bool]:
    return dict(Message.objects.filter(folder=folder).values_list("uid", "conversation_head"))


def test_a_reply_takes_the_mark_and_expunging_it_gives_it_back(make_mailbox):
    alice = make_mailbox("alice@example.org")
    inbox = selectors.folder_get(alice, "INBOX")
    first = services.message_append(folder=inbox, raw=raw_of(KEYS[1], 1))
    alone = services.message_append(folder=inbox, raw=raw_of("", 2))
    reply = services.message_append(folder=inbox, raw=raw_of(KEYS[1], 3))
    assert heads(inbox) == {first.uid: False, alone.uid: True, reply.uid: True}
    services.messages_delete(folder=inbox, uids=[reply.uid])
    assert heads(inbox) == {first.uid: True, alone.uid: True}


def test_a_statement_of_many_messages_writes_their_conversation_once(make_mailbox):
    """PostgreSQL (migration 0039): a statement's differences are added once per conversation,
    not once per message: one transaction's updates of one row each walk the versions the
    earlier ones left, so STORE 1:* on a conversation of 8,000 took 7.8 s (462 ms without)."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's row triggers update the row in place")
    alice = make_mailbox("alice@example.org")
    inbox = selectors.folder_get(alice, "INBOX")
    uids = [services.message_append(folder=inbox, raw=raw_of(KEYS[1], n)).uid for n in range(30)]

    def written() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_stat_get_xact_tuples_updated(c.oid)"
                " + pg_stat_get_xact_tuples_inserted(c.oid) FROM pg_class c"
                " WHERE c.relname = 'mailboxes_conversation'"
            )
            return cursor.fetchone()[0]

    before = written()
    services.messages_store_flags(folder=inbox, uids=uids, flags=["\\Seen"], mode="add")
    assert written() - before == 1
    assert Conversation.objects.get(folder=inbox).unseen == 0


def test_the_marks_are_kept_by_probes_of_the_thread_index_whatever_the_statistics(make_mailbox):
    """PostgreSQL (migration 0040): with statistics taken while the folder was small (autovacuum's
    first ANALYZE on a new server), the triggers' plans read the folder's every message through
    another index on folder_id to find the one before the new one. The index entries a delivery
    and an expunge read stay a few, whatever the folder's size."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's plans; SQLite takes the index its equalities name")
    alice = make_mailbox("alice@example.org")
    inbox = selectors.folder_get(alice, "INBOX")
    for n in range(200):
        if n == 60:
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE mailboxes_message")
        services.message_append(folder=inbox, raw=raw_of(f"<{n}@alone.example>", n))
    first = services.message_append(folder=inbox, raw=raw_of(KEYS[1], 200))

    def entries_read() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT sum(pg_stat_get_xact_tuples_returned(i.indexrelid)) FROM pg_index i"
                " WHERE i.indrelid = 'mailboxes_message'::regclass"
            )
            return cursor.fetchone()[0]

    before = entries_read()
    reply = services.message_append(folder=inbox, raw=raw_of(KEYS[1], 201))
    delivered = entries_read() - before
    services.messages_delete(folder=inbox, uids=[reply.uid])
    expunged = entries_read() - before - delivered
    assert delivered < 20, delivered
    assert expunged < 20, expunged
    assert Message.objects.get(pk=first.pk).conversation_head
    kept, truth = recomputed()
    assert kept == truth


def test_a_delivery_runs_an_update_only_where_a_mark_changes(make_mailbox):
    """PostgreSQL (migration 0042): the INSERT trigger asks its probes first and updates a
    message only when its mark changes, so a message of a new conversation runs no UPDATE (each
    would fire the counts' UPDATE statement trigger), and a reply one: the message before it
    loses the mark."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's trigger functions; SQLite keeps its row triggers")
    alice = make_mailbox("alice@example.org")
    inbox = selectors.folder_get(alice, "INBOX")
    first = services.message_append(folder=inbox, raw=raw_of(KEYS[1], 0))
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL track_functions = 'pl'")  # the test's transaction only

    def updates() -> int:
        """The UPDATE statements on the message table so far in this transaction."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COALESCE(pg_stat_get_xact_function_calls("
                "'mailboxes_message_count_au'::regproc), 0)"
            )
            return cursor.fetchone()[0]

    before = updates()
    services.message_append(folder=inbox, raw=raw_of("<new@alone.example>", 1))
    assert updates() == before
    reply = services.message_append(folder=inbox, raw=raw_of(KEYS[1], 2))
    assert updates() == before + 1
    assert not Message.objects.get(pk=first.pk).conversation_head
    assert Message.objects.get(pk=reply.pk).conversation_head
    kept, truth = recomputed()
    assert kept == truth


def test_a_mailbox_deleted_with_its_folders_leaves_no_conversation_row(make_mailbox):
    """The admin's deletion of a mailbox (Django's cascade through its folders and messages)
    takes their Conversation rows with them: on PostgreSQL no foreign key would refuse one
    left behind (migration 0043), so none may be."""
    filed: dict[int, set[int]] = {}
    for address in ("alice@example.org", "bob@example.org"):
        owner = make_mailbox(address)
        inbox = selectors.folder_get(owner, "INBOX")
        other = services.folder_create(mailbox=owner, name="Other")
        filed[owner.pk] = {inbox.pk, other.pk}
        for n, key in enumerate([KEYS[1], KEYS[2], KEYS[1], ""]):
            services.message_append(folder=inbox, raw=raw_of(key, n))
            services.message_append(folder=other, raw=raw_of(key, n))
    alice, bob = filed
    assert (
        set(Conversation.objects.values_list("folder_id", flat=True)) == filed[alice] | filed[bob]
    )
    Mailbox.objects.get(pk=alice).delete()
    assert set(Conversation.objects.values_list("folder_id", flat=True)) == filed[bob]
    kept_counts, true_counts = counts()
    assert kept_counts == true_counts
