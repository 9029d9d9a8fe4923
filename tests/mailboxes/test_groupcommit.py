"""Group commit (mailboxes.groupcommit): concurrent writers share one transaction.

Each test holds the committer busy with a piece that waits, queues the pieces under test
behind it, then lets go, so the queued pieces make one batch whatever the scheduling.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time

import pytest
from django.db import IntegrityError, connection, transaction

from delivery.accept import EnvelopeRecipient, message_accept
from mailboxes import events, selectors
from mailboxes.groupcommit import GroupCommitter, committer
from mailboxes.models import Domain, Folder, Mailbox, Message
from mailboxes.selectors import recipient_resolve
from mailhost.sqlite3.base import DatabaseWrapper, lock_path
from tests.mailboxes.conftest import make_raw

pytestmark = pytest.mark.django_db(transaction=True)


@contextlib.contextmanager
def held(group: GroupCommitter):
    """The committer busy in a transaction of its own until the block ends."""
    entered, gate = threading.Event(), threading.Event()

    def wait() -> None:
        entered.set()
        gate.wait(30)

    def lead() -> None:
        try:
            group.run(wait)
        finally:
            connection.close()

    leader = threading.Thread(target=lead)
    leader.start()
    assert entered.wait(30)
    try:
        yield
    finally:
        gate.set()
        leader.join(30)


def queue_behind(
    group: GroupCommitter, pieces: dict[str, object], *, submit: bool = True
) -> dict[str, object]:
    """Call each piece from a thread of its own while `group` is held (through group.run, or
    as it is when it submits itself); return the outcomes (value or exception) by name."""
    outcomes: dict[str, object] = {}

    def call(name: str, fn) -> None:  # noqa: ANN001
        try:
            outcomes[name] = group.run(fn) if submit else fn()
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            outcomes[name] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=call, args=item) for item in pieces.items()]
    with held(group):
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while group.waiting < len(pieces):
            assert time.monotonic() < deadline, "pieces did not queue"
            time.sleep(0.005)
    for thread in threads:
        thread.join(30)
    return outcomes


def queue_in_order(pieces: list, group: GroupCommitter = committer) -> list:
    """Call each piece (submitting itself to `group`) from a thread of its own while `group`
    is held, each queued before the next starts; return their outcomes in order."""
    outcomes: list = [None] * len(pieces)
    threads = []

    def call(n: int) -> None:
        try:
            outcomes[n] = pieces[n]()
        finally:
            connection.close()

    with held(group):
        for n in range(len(pieces)):
            threads.append(threading.Thread(target=call, args=(n,)))
            threads[-1].start()
            deadline = time.monotonic() + 30
            while group.waiting <= n:
                assert time.monotonic() < deadline, "pieces did not queue"
                time.sleep(0.005)
    for thread in threads:
        thread.join(30)
    return outcomes


def test_one_failing_piece_does_not_fail_the_batch():
    group = GroupCommitter()
    calls = {"flaky": 0}

    def make(name: str):  # noqa: ANN202
        def piece() -> str:
            Domain.objects.create(name=f"{name}.example")
            return name

        return piece

    def broken() -> str:
        Domain.objects.create(name="broken.example")
        raise ValueError("broken piece")

    def flaky() -> str:
        # A database error (a deadlock, a dropped connection) on the first run only: the
        # piece is run again in a transaction of its own.
        calls["flaky"] += 1
        Domain.objects.create(name=f"flaky{calls['flaky']}.example")
        if calls["flaky"] == 1:
            raise IntegrityError("deadlock detected")
        return "flaky"

    outcomes = queue_behind(
        group, {"first": make("first"), "broken": broken, "flaky": flaky, "last": make("last")}
    )
    assert outcomes["first"] == "first" and outcomes["last"] == "last"
    assert outcomes["flaky"] == "flaky" and calls["flaky"] == 2
    assert isinstance(outcomes["broken"], ValueError)
    assert group.batches == 1
    assert set(Domain.objects.values_list("name", flat=True)) == {
        "first.example",
        "flaky2.example",
        "last.example",
    }


def savepoint_depths(names: tuple[str, ...], bad: str = "") -> tuple[dict, dict]:
    """Pieces that each store a domain named after them (`bad` then raises), and the
    savepoints each found itself in, one entry a run, by name."""
    seen: dict[str, list[int]] = {}

    def make(name: str):  # noqa: ANN202
        def piece() -> str:
            seen.setdefault(name, []).append(len(connection.savepoint_ids))
            Domain.objects.create(name=f"{name}.example")
            if name == bad:
                raise ValueError("bad piece")
            return name

        return piece

    return {name: make(name) for name in names}, seen


def test_a_batch_that_succeeds_runs_once_without_savepoints():
    # The common case: no piece fails, so none pays a SAVEPOINT and its RELEASE (two round
    # trips on PostgreSQL, made while the batch holds its row locks); each piece runs once.
    group = GroupCommitter()
    pieces, seen = savepoint_depths(("a", "b", "c"))
    outcomes = queue_behind(group, pieces)
    assert outcomes == {"a": "a", "b": "b", "c": "c"}
    assert group.batches == 1
    assert seen == {"a": [0], "b": [0], "c": [0]}
    names = set(Domain.objects.values_list("name", flat=True))
    assert {"a.example", "b.example", "c.example"} <= names


def test_a_failing_piece_runs_the_batch_again_in_savepoints():
    group = GroupCommitter()
    pieces, seen = savepoint_depths(("a", "bad", "c"), bad="bad")
    outcomes = queue_behind(group, pieces)
    assert outcomes["a"] == "a" and outcomes["c"] == "c"
    assert isinstance(outcomes["bad"], ValueError)
    # First without savepoints, where "bad" rolled the whole transaction back (so "c" did not
    # run), then each in a savepoint of its own.
    assert seen == {"a": [0, 1], "bad": [0, 1], "c": [1]}
    assert group.batches == 1
    names = set(Domain.objects.values_list("name", flat=True))
    assert {"a.example", "c.example"} <= names and "bad.example" not in names


def test_a_leader_waiting_for_another_process_takes_what_queued_meanwhile():
    """On SQLite the leader takes its batch once it holds the writer locks: pieces that come
    while another process's transaction holds the file lock join its transaction instead of
    waiting for the next one (as they did when the batch was taken before the wait)."""
    if connection.vendor != "sqlite":
        pytest.skip("the writer lock is SQLite's")
    group = GroupCommitter()
    ran_in: dict[str, int] = {}

    def piece(name: str):  # noqa: ANN202
        def fn() -> str:
            ran_in[name] = threading.get_ident()
            Domain.objects.create(name=f"{name}.example")
            return name

        return fn

    outcomes: dict[str, object] = {}

    def call(name: str) -> None:
        try:
            outcomes[name] = group.run(piece(name))
        finally:
            connection.close()

    # Another descriptor of the lock file conflicts with the leader's as another process's.
    other = os.open(lock_path(str(connection.settings_dict["NAME"])), os.O_RDWR | os.O_CREAT)
    threads = {name: threading.Thread(target=call, args=(name,)) for name in ("a", "b", "c")}
    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        threads["a"].start()  # leads, and waits for the file lock
        deadline = time.monotonic() + 30
        while not group._leading:
            assert time.monotonic() < deadline, "no leader"
            time.sleep(0.005)
        threads["b"].start()
        threads["c"].start()
        while group.waiting < 3:  # the leader's own piece is still queued with theirs
            assert time.monotonic() < deadline, "pieces did not queue"
            time.sleep(0.005)
        fcntl.flock(other, fcntl.LOCK_UN)
        for thread in threads.values():
            thread.join(30)
    finally:
        os.close(other)
    assert outcomes == {"a": "a", "b": "b", "c": "c"}
    assert len(set(ran_in.values())) == 1  # all three by the leader, in one transaction
    assert group.batches == 1


def test_a_leader_that_cannot_take_the_writer_locks_leaves_nothing_queued(monkeypatch):
    """When the locks cannot be had (the lock file unreadable, the connection lost), the
    leader's caller gets the error and its piece is not run later by another leader."""
    if connection.vendor != "sqlite":
        pytest.skip("the writer lock is SQLite's")
    group = GroupCommitter()
    ran: list[str] = []
    real = DatabaseWrapper._take_writer_locks
    failures = [OSError("the lock file cannot be opened")]

    def flaky(self):  # noqa: ANN001, ANN202
        if failures:
            raise failures.pop()
        return real(self)

    monkeypatch.setattr(DatabaseWrapper, "_take_writer_locks", flaky)
    with pytest.raises(OSError, match="cannot be opened"):
        group.run(lambda: ran.append("a"))
    assert group.waiting == 0
    assert group.run(lambda: ran.append("b")) is None
    assert ran == ["b"]
    assert not connection.holds_writer_lock and connection.holds_file_lock is None


def queue_named_in_order(group: GroupCommitter, names: str) -> tuple[dict, dict, dict]:
    """group.run_after(before, name, fn) called for each name by queue_in_order; return the
    outcomes (value or exception, any BaseException), the thread each piece's fn ran in and
    each caller's thread, by name."""
    ran_in: dict[str, int] = {}
    callers: dict[str, int] = {}

    def fn(name: str) -> str:
        ran_in[name] = threading.get_ident()
        Domain.objects.create(name=f"{name}.example")
        return name

    def call(name: str) -> object:
        callers[name] = threading.get_ident()
        try:
            return group.run_after(lambda args: args, name, fn)
        except BaseException as exc:  # noqa: BLE001 - the outcome under test
            return exc

    outcomes = queue_in_order([lambda name=name: call(name) for name in names], group)
    return dict(zip(names, outcomes, strict=True)), ran_in, callers


def test_the_lead_goes_to_the_first_piece_queued(settings):
    """A leader hands the lead to the first piece queued, whose caller runs the next batch
    (its own piece first in it); the others wait to be woken once, with their outcome."""
    settings.MAILHOST_GROUP_COMMIT_MAX = 2
    group = GroupCommitter()
    outcomes, ran_in, callers = queue_named_in_order(group, "abcd")
    assert outcomes == {"a": "a", "b": "b", "c": "c", "d": "d"}
    assert ran_in["a"] == ran_in["b"] == callers["a"]
    assert ran_in["c"] == ran_in["d"] == callers["c"]
    assert group.batches == 2
    assert not group._leading and group.waiting == 0


def test_a_waiter_interrupted_when_handed_the_lead_passes_it_on(monkeypatch):
    """A caller interrupted while it waits (handed the lead just then) gives up its place
    and hands the lead to the next piece: nothing is left waiting for a leader that left."""
    from mailboxes import groupcommit

    class Interrupted:
        def __init__(self, lock) -> None:  # noqa: ANN001
            self.lock = lock

        def acquire(self) -> None:
            self.lock.acquire()
            raise KeyboardInterrupt

        def release(self) -> None:
            self.lock.release()

    class Work(groupcommit._Work):
        __slots__ = ()

        def __init__(self, fn, before, arg, synced) -> None:  # noqa: ANN001
            super().__init__(fn, before, arg, synced)
            if arg == "x":
                self.wake = Interrupted(self.wake)

    monkeypatch.setattr(groupcommit, "_Work", Work)
    group = GroupCommitter()
    outcomes, _ran_in, _callers = queue_named_in_order(group, "xy")
    assert isinstance(outcomes["x"], KeyboardInterrupt)
    assert outcomes["y"] == "y"
    assert not Domain.objects.filter(name="x.example").exists()
    assert not group._leading and group.waiting == 0
    assert group.run(lambda: "after") == "after"


def domain_fn(name: str, failures: dict[str, int], order: list[str] | None = None):  # noqa: ANN201
    """A run_after `fn` that stores the domain its `before` named, raising after it as many
    times as `failures` says for `name`."""

    def fn(domain: str) -> str:
        if order is not None:
            order.append(f"fn {name}")
        Domain.objects.create(name=domain)
        if failures.get(name):
            failures[name] -= 1
            raise ValueError("bad on the first run")
        return domain

    return fn


def test_every_pieces_before_runs_ahead_of_the_first_pieces_fn():
    # run_after: the blob rows of a batch's messages are written before the first message
    # locks its mailbox and folder rows, not while those are held; each `fn` gets its own
    # `before`'s result. When the batch runs again in savepoints, each piece runs whole.
    group = GroupCommitter()
    order: list[str] = []
    failures = {"d": 1}

    def make(name: str):  # noqa: ANN202
        def before(args: list[str]) -> list[str]:
            order.append(f"before {name}")
            return [f"{arg}.example" for arg in args]

        return lambda: group.run_after(before, name, domain_fn(name, failures, order))

    outcomes = queue_behind(group, {"a": make("a"), "b": make("b")}, submit=False)
    assert outcomes == {"a": "a.example", "b": "b.example"}
    assert sorted(order[:2]) == ["before a", "before b"]
    assert sorted(order[2:]) == ["fn a", "fn b"]
    order.clear()
    outcomes = queue_behind(group, {"c": make("c"), "d": make("d")}, submit=False)
    assert outcomes == {"c": "c.example", "d": "d.example"}
    assert sorted(order[:2]) == ["before c", "before d"]
    assert order[order.index("fn d") + 1 :] in (
        ["before c", "fn c", "before d", "fn d"],
        ["before d", "fn d", "before c", "fn c"],
    )
    assert group.batches == 2


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set")
def test_a_batch_publishes_its_change_events_to_redis_in_one_round_trip(settings, monkeypatch):
    # The leader sends them after the COMMIT and before its waiters answer and the next batch
    # starts: one round trip for the batch (its PUBLISHes sent together), not one a message.
    import redis

    settings.REDIS_URL = os.environ["REDIS_URL"]
    round_trips: list[list[bytes]] = []
    send = redis.connection.AbstractConnection.send_packed_command

    def sent(connection, command, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        packed = command if isinstance(command, list) else [command]
        round_trips.append([p for p in packed if b"PUBLISH" in bytes(p)])
        return send(connection, command, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", sent)
    listener = redis.Redis.from_url(settings.REDIS_URL).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(events.channel())
    listener.get_message(timeout=1)
    group = GroupCommitter()

    def make(uid: int):  # noqa: ANN202
        return lambda: events.publish(events.ChangeEvent(1, 1, "exists", (uid,), uid))

    queue_behind(group, {"a": make(1), "b": make(2), "c": make(3)})
    assert group.batches == 1
    published = [trip for trip in round_trips if trip]
    assert len(published) == 1 and b"".join(published[0]).count(b"PUBLISH") == 3, round_trips
    heard = []
    deadline = time.monotonic() + 5
    while len(heard) < 3 and time.monotonic() < deadline:
        message = listener.get_message(timeout=0.5)
        if message:
            heard.append(events.ChangeEvent.from_json(message["data"]).uids)
    listener.close()
    assert sorted(heard) == [(1,), (2,), (3,)]


def test_a_failing_on_commit_callback_never_runs_committed_work_again():
    group = GroupCommitter()
    runs: list[str] = []

    def make(name: str):  # noqa: ANN202
        def piece() -> str:
            runs.append(name)
            Domain.objects.create(name=f"{name}.example")
            transaction.on_commit(lambda: 1 / 0)  # a notification that fails after the commit
            return name

        return piece

    assert group.run(make("alone")) == "alone"
    outcomes = queue_behind(group, {"a": make("a"), "b": make("b")})
    assert outcomes == {"a": "a", "b": "b"}
    assert group.batches == 1
    assert sorted(runs) == ["a", "alone", "b"]
    assert Domain.objects.filter(name__in=["alone.example", "a.example", "b.example"]).count() == 3


def test_inside_a_callers_transaction_it_runs_there():
    group = GroupCommitter()
    with transaction.atomic():
        group.run(lambda: Domain.objects.create(name="inner.example"))
        transaction.set_rollback(True)
    assert not Domain.objects.filter(name="inner.example").exists()
    assert group.batches == 0


def test_a_before_shared_by_the_pieces_of_a_batch_is_called_once_with_all_their_args():
    # Port 25's blob rows: one INSERT for the batch, not one a message; each piece gets the
    # result for its own arg. When the batch runs again in savepoints, each piece alone.
    group = GroupCommitter()
    calls: list[list[str]] = []
    failures = {"z": 1}

    def before(args: list[str]) -> list[str]:
        calls.append(sorted(args))
        return [f"{arg}.example" for arg in args]

    def make(name: str):  # noqa: ANN202
        return lambda: group.run_after(before, name, domain_fn(name, failures))

    outcomes = queue_behind(group, {n: make(n) for n in "abc"}, submit=False)
    assert outcomes == {"a": "a.example", "b": "b.example", "c": "c.example"}
    assert calls == [["a", "b", "c"]]
    calls.clear()
    outcomes = queue_behind(group, {n: make(n) for n in "xyz"}, submit=False)
    assert outcomes == {"x": "x.example", "y": "y.example", "z": "z.example"}
    assert calls[0] == ["x", "y", "z"] and sorted(calls[1:]) == [["x"], ["y"], ["z"]]


def accept(address: str, subject: str):  # noqa: ANN201
    return message_accept(
        raw=make_raw(subject),
        mail_from="bob@remote.example",
        recipients=[EnvelopeRecipient(address, resolution=recipient_resolve(address))],
    )


def test_quota_holds_across_messages_of_one_batch(make_mailbox, blob_files, published):
    alice = make_mailbox("alice@example.org")
    first = accept("alice@example.org", "m0")
    size = first.size
    # Room for two more messages of about this size, not three.
    Mailbox.objects.filter(pk=alice.pk).update(quota=size * 3 + size // 2)
    before = committer.batches
    pieces = {f"m{n}": (lambda n=n: accept("alice@example.org", f"m{n}")) for n in range(1, 5)}
    outcomes = queue_behind(committer, pieces, submit=False)
    assert committer.batches == before + 1
    statuses = sorted(o.recipients[0].status for o in outcomes.values())
    assert statuses == ["delivered", "delivered", "over_quota", "over_quota"]
    inbox = Folder.objects.get(mailbox=alice, name="INBOX")
    rows = list(Message.objects.filter(folder=inbox).order_by("uid").values_list("uid", "size"))
    assert [uid for uid, _ in rows] == [1, 2, 3]
    used = sum(size for _, size in rows)
    alice.refresh_from_db()
    assert alice.used_bytes == used <= alice.quota
    assert (inbox.message_count, inbox.total_size, inbox.uidnext) == (3, used, 4)
    # One change event a stored message, published once its transaction committed; none for
    # the refused ones (their savepoints rolled back).
    assert sorted(e.uids for e in published if e.kind == "exists") == [(1,), (2,), (3,)]
    # The refused messages left no blob behind; the delivered ones have theirs.
    assert sorted(p.name for p in blob_files.rglob("*") if p.is_file()) == sorted(
        m.blob.name.rsplit("/", 1)[1] for m in Message.objects.filter(folder=inbox)
    )


def batch_statements(pieces: dict) -> tuple[dict, list[str]]:
    """queue_behind of port 25 pieces (submitting themselves), with the statements made
    inside a transaction, by whichever thread leads the batch, in their order."""
    statements: list[str] = []

    def record(execute, sql, params, many, context):  # noqa: ANN001, ANN202
        if context["connection"].in_atomic_block:
            statements.append(" ".join(sql.split()))
        return execute(sql, params, many, context)

    def recorded(fn):  # noqa: ANN001, ANN202
        def piece():  # noqa: ANN202
            with connection.execute_wrapper(record):
                return fn()

        return piece

    outcomes = queue_behind(
        committer, {name: recorded(fn) for name, fn in pieces.items()}, submit=False
    )
    return outcomes, statements


def test_a_batchs_blob_rows_are_one_insert(make_mailbox, blob_dir):
    # Before: one INSERT ... RETURNING a message, each a round trip in the batch's
    # transaction (PostgreSQL); now one for the batch, each message filed with its own bytes.
    make_mailbox("alice@example.org")
    make_mailbox("bob@example.org")
    accept("alice@example.org", "warm")
    before = committer.batches
    pieces = {
        f"m{n}": (lambda n=n: accept(f"{('alice', 'bob')[n % 2]}@example.org", f"m{n}"))
        for n in range(3)
    }
    outcomes, statements = batch_statements(pieces)
    assert committer.batches == before + 1
    assert all(o.accepted for o in outcomes.values())
    # On PostgreSQL the INSERT carries the mailboxes' read (services._blob_rows_and_read).
    blob_rows = ('INSERT INTO "mailboxes_blob"', 'WITH b AS (INSERT INTO "mailboxes_blob"')
    inserts = [s for s in statements if s.startswith(blob_rows)]
    assert len(inserts) == 1 and inserts[0].count("(%s, %s, %s, %s)") == 3
    assert statements[0] == inserts[0]  # ahead of the first mailbox's lock
    for n in range(3):
        message = Message.objects.get(message_id=f"<m{n}@remote.example>")
        assert message.blob.size == message.size == len(selectors.blob_read(message.blob))
        assert selectors.blob_read(message.blob).startswith(b"Received:")
        assert f"Subject: m{n}\r\n".encode() in selectors.blob_read(message.blob)


def test_a_batch_locks_each_mailbox_once(make_mailbox, published):
    # Before: every message of the batch locked and read its mailbox's row again (a round trip
    # under the batch's locks on PostgreSQL); now the batch's mailboxes are locked together
    # after its blob rows (services.delivery_batch_start), their rows serving every message,
    # their usage following what each adds.
    alice = make_mailbox("alice@example.org")
    make_mailbox("bob@example.org")
    accept("alice@example.org", "warm")
    recipients = ["alice", "alice", "bob", "alice"]
    pieces = {
        f"m{n}": (lambda n=n: accept(f"{recipients[n]}@example.org", f"m{n}"))
        for n in range(len(recipients))
    }
    outcomes, statements = batch_statements(pieces)
    assert all(o.accepted for o in outcomes.values())
    reads = [s for s in statements if "SELECT m.id, m.quota, m.used_bytes" in s]
    # alice's and bob's in one statement, after the blob rows' (4 statements on main); on
    # PostgreSQL the blob rows' INSERT itself (services._blob_rows_and_read)
    assert len(reads) == 1 and "WHERE m.id IN (%s, %s) ORDER BY m.id" in reads[0]
    assert statements.index(reads[0]) == (0 if connection.vendor == "postgresql" else 1)
    if connection.vendor == "postgresql":
        assert reads[0].startswith('WITH b AS (INSERT INTO "mailboxes_blob"')
        # Read there without their locks, which one statement takes later, in id order,
        # ahead of the first filing (services.delivery_batch_start).
        assert "FOR UPDATE" not in reads[0]
        lock = 'SELECT id FROM "mailboxes_mailbox" WHERE id IN (%s, %s) ORDER BY id FOR UPDATE'
        first_filing = next(n for n, s in enumerate(statements) if s.startswith("WITH u AS"))
        assert statements.index(lock) == first_filing - 1
    inbox = Folder.objects.get(mailbox=alice, name="INBOX")
    stored = list(Message.objects.filter(folder=inbox).values_list("uid", "size"))
    assert [uid for uid, _ in stored] == [1, 2, 3, 4]
    alice.refresh_from_db()
    assert (alice.used_bytes, alice.used_messages) == (sum(s for _, s in stored), 4)
    exists = [e.uids for e in published if e.folder_id == inbox.pk and e.kind == "exists"]
    assert sorted(exists) == [(1,), (2,), (3,), (4,)]


def test_a_mailbox_whose_sieve_plan_may_make_folders_is_locked_again(make_mailbox):
    # The kept row names the mailbox's INBOX and Junk: after a plan that may create folders
    # (fileinto :create), the next message of the batch reads them again, and finds the
    # \Junk folder that plan made.
    from mailboxes import mda, services
    from mailboxes.selectors import folder_get

    alice = make_mailbox("alice@example.org")
    services.folder_delete(folder=folder_get(alice, "Junk"))
    plan = mda.MailboxPlan(
        alice.id, filings=(mda.Filing(folder="Spam", special_use="\\Junk", create=True),)
    )
    pieces = [
        lambda: services.message_deliver(
            raw=make_raw("m1"), recipients=["alice@example.org"], plans={alice.id: plan}
        ),
        lambda: services.message_deliver(
            raw=make_raw("m2"),
            recipients=["alice@example.org"],
            sieve=False,
            junk_mailbox_ids=[alice.id],
        ),
    ]
    before = committer.batches
    # queued in this order: m1's plan runs first
    queue_in_order([lambda piece=piece: committer.run(piece) for piece in pieces])
    assert committer.batches == before + 1
    spam = folder_get(alice, "Spam")
    assert spam.special_use == "\\Junk"
    subjects = sorted(Message.objects.filter(folder=spam).values_list("subject", flat=True))
    assert subjects == ["m1", "m2"]


postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="psycopg's pipeline and round trips"
)


@postgresql_only
def test_a_batchs_filings_are_sent_together(make_mailbox, published, tmp_path):
    # Before: each message's filing (services._file_shared) was a round trip of its own under
    # the batch's locks, N + 2 from BEGIN to COMMIT; now they go together (send_later): the
    # BEGIN with the blob rows and the lock, the N filings, the COMMIT.
    from django.db import DEFAULT_DB_ALIAS, connections

    from tests.mailhost.test_prepared_statements import traced

    alice = make_mailbox("alice@example.org")
    accept("alice@example.org", "warm")
    trips: dict[str, list[list[str]]] = {}

    def piece(name: str):  # noqa: ANN202
        def run():  # noqa: ANN202
            db = connections[DEFAULT_DB_ALIAS]
            db.ensure_connection()
            outcome: list = []
            work = lambda: outcome.append(accept("alice@example.org", name))  # noqa: E731
            trips[name] = traced(db, work, tmp_path / name)
            return outcome[0]

        return run

    names = [f"m{n}" for n in range(4)]
    before = committer.batches
    outcomes = queue_behind(committer, {name: piece(name) for name in names}, submit=False)
    assert committer.batches == before + 1
    assert all(o.accepted for o in outcomes.values()), outcomes
    [leader] = [t for t in trips.values() if any('"COMMIT"' in m for trip in t for m in trip)]
    begin = next(n for n, trip in enumerate(leader) if any('"BEGIN"' in m for m in trip))
    commit = next(n for n, trip in enumerate(leader) if any('"COMMIT"' in m for m in trip))
    assert commit - begin == 2, leader[begin : commit + 1]
    filings = [m for m in leader[begin + 1] if "Execute" in m]
    assert len(filings) == 4
    inbox = Folder.objects.get(mailbox=alice, name="INBOX")
    uids = Message.objects.filter(folder=inbox).order_by("uid").values_list("uid", flat=True)
    assert list(uids) == [1, 2, 3, 4, 5]
    assert (inbox.uidnext, inbox.message_count) == (6, 5)
    alice.refresh_from_db()
    assert alice.used_messages == 5
    exists = [e.uids for e in published if e.folder_id == inbox.pk and e.kind == "exists"]
    assert sorted(exists) == [(1,), (2,), (3,), (4,), (5,)]


sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's merged filings")


@sqlite_only
def test_a_batchs_filings_into_one_folder_are_one_update_and_one_insert(make_mailbox, published):
    # Before: each message's filing was three statements under the writer lock (the folder's
    # UPDATE ... RETURNING, the message's INSERT, the mailbox's usage); now the batch's are
    # kept (groupcommit.merge_later) and made as one of each, with the same UIDs and MODSEQs.
    alice = make_mailbox("alice@example.org")
    accept("alice@example.org", "warm")
    inbox = Folder.objects.get(mailbox=alice, name="INBOX")
    modseq = inbox.highestmodseq
    before = committer.batches
    names = [f"m{n}" for n in range(4)]
    outcomes, statements = batch_statements(
        {name: (lambda name=name: accept("alice@example.org", name)) for name in names}
    )
    assert committer.batches == before + 1
    assert all(o.accepted for o in outcomes.values()), outcomes
    assert len([s for s in statements if s.startswith('UPDATE "mailboxes_folder"')]) == 1
    assert len([s for s in statements if s.startswith('INSERT INTO "mailboxes_message"')]) == 1
    assert len([s for s in statements if s.startswith('UPDATE "mailboxes_mailbox"')]) == 1
    rows = Message.objects.filter(folder=inbox).order_by("uid").values_list("uid", "modseq")
    assert list(rows)[1:] == [(n + 2, modseq + n + 1) for n in range(4)]
    inbox.refresh_from_db()
    assert (inbox.uidnext, inbox.message_count, inbox.unseen_count) == (6, 5, 5)
    assert inbox.highestmodseq == modseq + 4
    assert inbox.total_size == sum(
        Message.objects.filter(folder=inbox).values_list("size", flat=True)
    )
    alice.refresh_from_db()
    assert (alice.used_messages, alice.used_bytes) == (5, inbox.total_size)
    exists = [
        (e.uids, e.modseq) for e in published if e.folder_id == inbox.pk and e.kind == "exists"
    ]
    assert sorted(exists)[1:] == [((n + 2,), modseq + n + 1) for n in range(4)]
    assert sorted(Message.objects.filter(folder=inbox).values_list("subject", flat=True)) == sorted(
        ["warm", *names]
    )


def test_a_filing_sent_later_into_a_folder_gone_runs_the_batch_again(make_mailbox):
    # The batch's lock read alice's Junk before the first piece deleted it: the second
    # piece's kept filing (PostgreSQL: send_later; SQLite: merge_later) finds no folder when it
    # is made, so the batch runs again with
    # savepoints, where that piece reads its mailbox afresh and files into INBOX (before:
    # the filing found no folder and the message was refused as over quota).
    from mailboxes import services
    from mailboxes.selectors import folder_get

    alice = make_mailbox("alice@example.org")
    raw = make_raw("late")
    resolutions = [recipient_resolve("alice@example.org")]

    def deliver_to_junk():  # noqa: ANN202
        return committer.run_after(
            services.delivery_batch_start,
            (services.blob_write(raw), raw, resolutions),
            lambda blob: services.message_deliver(
                raw=raw,
                recipients=["alice@example.org"],
                blob=blob,
                resolutions=resolutions,
                sieve=False,
                junk_mailbox_ids=[alice.id],
            ),
        )

    pieces = [
        lambda: committer.run(lambda: services.folder_delete(folder=folder_get(alice, "Junk"))),
        deliver_to_junk,
    ]
    before = committer.batches
    outcomes = queue_in_order(pieces)  # the Junk is gone before the filing
    assert committer.batches == before + 1  # the run with savepoints
    [result] = outcomes[1]
    assert result.accepted, result
    assert not Folder.objects.filter(mailbox=alice, name="Junk").exists()
    inbox = Folder.objects.get(mailbox=alice, name="INBOX")
    assert list(Message.objects.filter(folder=inbox).values_list("subject", "uid")) == [("late", 1)]


@pytest.fixture
def wal_syncs(monkeypatch):
    """How many fdatasyncs this process makes (SQLite: the backend's sync of a durable
    commit's WAL)."""
    if connection.vendor != "sqlite":
        pytest.skip("the database is not SQLite")
    count = {"n": 0}
    real = os.fdatasync

    def spy(fd: int) -> None:
        count["n"] += 1
        real(fd)

    monkeypatch.setattr(os, "fdatasync", spy)
    return count


@pytest.mark.parametrize("synced", [(False, False), (False, True)])
def test_a_batch_is_synced_when_any_piece_is(wal_syncs, synced):
    """Pieces run with synced=False (not mail) share a transaction that does not wait for
    the disk; one synced piece among them makes the batch's commit synced."""
    group = GroupCommitter()

    def make(name: str, durable: bool):  # noqa: ANN202
        return lambda: group.run(
            lambda: Domain.objects.create(name=f"{name}.example").name, synced=durable
        )

    outcomes: dict[str, object] = {}
    threads = []

    def call(name: str, fn) -> None:  # noqa: ANN001
        try:
            outcomes[name] = fn()
        finally:
            connection.close()

    with held(group):
        for n, durable in enumerate(synced):
            threads.append(threading.Thread(target=call, args=(f"p{n}", make(f"p{n}", durable))))
            threads[-1].start()
        deadline = time.monotonic() + 30
        while group.waiting < len(synced):
            assert time.monotonic() < deadline, "pieces did not queue"
            time.sleep(0.005)
        before = wal_syncs["n"]
    for thread in threads:
        thread.join(30)
    assert outcomes == {"p0": "p0.example", "p1": "p1.example"}
    assert group.batches == 1
    # The holder's own synced commit, then the batch's: synced only with a synced piece.
    assert wal_syncs["n"] - before == 1 + any(synced)


def test_appends_share_a_synced_batch(wal_syncs, make_mailbox):
    """message_append (IMAP APPEND, webmail drafts) on SQLite: appends made while another
    write holds the committer share its next transaction and its one sync, each with its
    own UID."""
    from mailboxes import services

    inbox = selectors.folder_get(make_mailbox("alice@example.org"), "INBOX")
    batches = committer.batches
    before = wal_syncs["n"]
    outcomes = queue_in_order(
        [
            lambda name=name: services.message_append(folder=inbox, raw=make_raw(name))
            for name in ("one", "two", "three")
        ]
    )
    assert committer.batches == batches + 1
    assert wal_syncs["n"] - before == 2  # the holder's commit, then the batch's
    assert sorted(m.uid for m in outcomes) == [1, 2, 3]
    assert Message.objects.filter(folder=inbox).count() == 3


@contextlib.contextmanager
def mailbox_row_held(mailbox_id: int, *, fill_to: int | None = None):
    """Another transaction holds the mailbox's row lock (and, with `fill_to`, has set its
    used_bytes so) until the block ends, when it commits; yields a function that waits until
    `n` backends of the database wait for a lock (it, or one another's behind it) and
    returns their statements."""
    import psycopg

    from tests.mailboxes.conftest import database_url

    url = database_url()
    with psycopg.connect(url) as gate, psycopg.connect(url, autocommit=True) as watch:
        if fill_to is None:
            gate.execute("SELECT 1 FROM mailboxes_mailbox WHERE id = %s FOR UPDATE", [mailbox_id])
        else:
            gate.execute(
                "UPDATE mailboxes_mailbox SET used_bytes = %s WHERE id = %s", [fill_to, mailbox_id]
            )

        yield lambda n: lock_waiters(watch, n)
        gate.commit()


def lock_waiters(watch, n: int) -> list[str]:  # noqa: ANN001 - a psycopg connection
    """Once `n` backends of the database wait for a lock, their statements."""
    deadline = time.monotonic() + 30
    while True:
        rows = watch.execute(
            "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        ).fetchall()
        if len(rows) >= n:
            return [row[0] for row in rows]
        assert time.monotonic() < deadline, "the deliveries did not wait for the row"
        time.sleep(0.005)


@contextlib.contextmanager
def mailbox_deleted_behind(mailbox_id: int):
    """Another session takes the mailbox's row lock and holds it until a delivery waits for
    it, then deletes the mailbox (the ORM's cascade) and commits; yields a function that
    waits for that delivery and returns the statement it waits in. The deletion is
    committed when the block ends."""
    import psycopg

    from tests.mailboxes.conftest import database_url

    held, go = threading.Event(), threading.Event()

    def delete() -> None:
        try:
            with transaction.atomic():
                mailbox = Mailbox.objects.select_for_update().get(pk=mailbox_id)
                held.set()
                assert go.wait(30)
                mailbox.delete()
        finally:
            connection.close()

    deleter = threading.Thread(target=delete)
    deleter.start()
    assert held.wait(30)
    try:
        with psycopg.connect(database_url(), autocommit=True) as watch:
            yield lambda: lock_waiters(watch, 1)[0]
    finally:
        go.set()
        deleter.join(30)


def deliver_through(group: GroupCommitter, raw: bytes, address: str, **options):  # noqa: ANN003, ANN201
    """port 25's delivery of `raw` to `address` through `group` (services.delivery_batch_start
    and message_deliver, as delivery.accept.file_and_spool runs them); a group of its own
    is a transaction of its own, as another worker process's would be. `options` go to
    message_deliver (`plans`: Sieve's, made before)."""
    from mailboxes import services

    resolutions = [recipient_resolve(address)]
    return group.run_after(
        services.delivery_batch_start,
        (services.blob_write(raw), raw, resolutions),
        lambda blob: services.message_deliver(
            raw=raw,
            recipients=[address],
            blob=blob,
            resolutions=resolutions,
            **{"sieve": False, **options},
        ),
    )


@postgresql_only
def test_two_transactions_never_both_pass_a_quota_only_one_fits(make_mailbox, published):
    # Each transaction reads the mailbox without its lock (services.delivery_batch_start) and
    # finds room for its message; the filing's UPDATE checks the quota again under the lock
    # (services._file_shared), so the second, once the first committed, finds it full.
    alice = make_mailbox("alice@example.org")
    raws = [make_raw(f"race{n}") for n in range(2)]
    Mailbox.objects.filter(pk=alice.pk).update(quota=len(raws[0]) + len(raws[0]) // 2)
    outcomes: dict[int, object] = {}

    def deliver(n: int) -> None:
        try:
            [outcomes[n]] = deliver_through(GroupCommitter(), raws[n], "alice@example.org")
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(2)]
    with mailbox_row_held(alice.pk) as blocked:
        for thread in threads:
            thread.start()
        waiting = blocked(2)
        # Both wait in their filing, past their read of the mailbox: the row is locked late.
        assert all(query.startswith("WITH u AS (UPDATE") for query in waiting), waiting
    for thread in threads:
        thread.join(30)
    statuses = sorted(outcome.status for outcome in outcomes.values())
    assert statuses == ["delivered", "over_quota"]
    inbox = Folder.objects.get(mailbox=alice, name="INBOX")
    sizes = list(Message.objects.filter(folder=inbox).values_list("size", flat=True))
    alice.refresh_from_db()
    assert len(sizes) == 1
    assert (alice.used_bytes, alice.used_messages) == (sum(sizes), 1)
    assert alice.used_bytes <= alice.quota
    assert (inbox.message_count, inbox.total_size, inbox.uidnext) == (1, sum(sizes), 2)
    assert [e.uids for e in published if e.kind == "exists"] == [(1,)]


@postgresql_only
def test_a_batch_whose_mailbox_filled_since_its_read_refuses_under_the_lock(
    make_mailbox, published
):
    # A batch's kept filings (groupcommit.send_later) find the mailbox full that its read
    # left room in: nothing is filed, and the batch runs again with savepoints, where each
    # message reads the mailbox under its lock and is refused for quota.
    alice = make_mailbox("alice@example.org")
    Mailbox.objects.filter(pk=alice.pk).update(quota=100_000)
    group = GroupCommitter()
    outcomes: dict = {}
    names = ["m1", "m2"]

    def batch() -> None:
        pieces = {
            name: (lambda name=name: deliver_through(group, make_raw(name), "alice@example.org"))
            for name in names
        }
        outcomes.update(queue_behind(group, pieces, submit=False))

    runner = threading.Thread(target=batch)
    with mailbox_row_held(alice.pk, fill_to=100_000) as blocked:
        runner.start()
        [waiting] = blocked(1)
        assert waiting.startswith("WITH u AS (UPDATE"), waiting
    runner.join(30)
    assert group.batches == 1  # the run with savepoints
    assert sorted(o[0].status for o in outcomes.values()) == ["over_quota", "over_quota"]
    alice.refresh_from_db()
    assert (alice.used_bytes, alice.used_messages) == (100_000, 0)
    assert not Message.objects.filter(folder__mailbox=alice).exists()
    assert not [e for e in published if e.kind == "exists"]


@postgresql_only
def test_a_sieve_plan_s_mailbox_deleted_since_its_read_takes_nothing(make_mailbox, published):
    # The lone message's mailbox is read without its lock (services.delivery_batch_start);
    # its Sieve plan has it read again under the lock (_lock_again), by when it is gone:
    # nothing is filed, and the recipient is not told the message was delivered (as when
    # the locked read found no mailbox, before 3d2206f).
    from mailboxes.mda import Filing, MailboxPlan

    alice = make_mailbox("alice@example.org")
    raw = make_raw("gone")
    plans = {alice.pk: MailboxPlan(mailbox_id=alice.pk, filings=(Filing(keep=True),))}
    outcomes: list = []

    def deliver() -> None:
        try:
            outcomes.extend(
                deliver_through(GroupCommitter(), raw, "alice@example.org", plans=plans)
            )
        finally:
            connection.close()

    delivery = threading.Thread(target=deliver)
    with mailbox_deleted_behind(alice.pk) as waiting:
        delivery.start()
        # The delivery waits for the row: past its read without the lock.
        assert "FOR UPDATE" in waiting()
    delivery.join(30)
    assert [o.status for o in outcomes] == ["over_quota"]
    assert not Message.objects.exists()
    assert not [e for e in published if e.kind == "exists"]


@postgresql_only
def test_a_batch_whose_mailbox_was_deleted_since_its_read_files_nothing(make_mailbox, published):
    # A batch's kept filings (groupcommit.send_later) wait for the mailbox's row, which
    # another session deletes: their UPDATE finds no row, _file_shared's kept `then`
    # raises (QuotaExceeded: the statement cannot tell a mailbox gone from one full, and
    # either way it only rolls the batch back), and the batch runs again with savepoints,
    # where each message reads its mailboxes under their locks, finds none, and its
    # recipient is refused as the lone message's (_file_shared returning False) and the
    # Sieve plan's are (_lock_again): over_quota, a late refusal, nothing stored. Told
    # delivered, were the kept filing taken as done.
    alice = make_mailbox("alice@example.org")
    group = GroupCommitter()
    outcomes: dict = {}

    def batch() -> None:
        pieces = {
            name: (lambda name=name: deliver_through(group, make_raw(name), "alice@example.org"))
            for name in ["m1", "m2"]
        }
        outcomes.update(queue_behind(group, pieces, submit=False))

    runner = threading.Thread(target=batch)
    with mailbox_deleted_behind(alice.pk) as waiting:
        runner.start()
        assert waiting().startswith("WITH u AS (UPDATE")
    runner.join(30)
    assert group.batches == 1  # the run with savepoints
    assert sorted(o[0].status for o in outcomes.values()) == ["over_quota", "over_quota"]
    assert not Mailbox.objects.filter(pk=alice.pk).exists()
    assert not Message.objects.exists()
    assert not [e for e in published if e.kind == "exists"]
