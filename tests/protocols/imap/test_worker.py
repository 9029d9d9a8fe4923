"""protocols/imap/worker.py: the database threads' pool hands each call's result or error
back to the loop, starts threads only while every one is busy (never more than its size),
and closes every thread's connection at shutdown."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from protocols.imap import worker


def test_results_and_errors_reach_the_awaiting_coroutine():
    pool = worker.DbPool(2, "imap-db")

    def fails():
        raise LookupError("gone")

    async def main():
        loop = asyncio.get_running_loop()
        assert await pool.run(loop, lambda: 42) == 42
        with pytest.raises(LookupError, match="gone"):
            await pool.run(loop, fails)
        return threading.current_thread()

    assert asyncio.run(main()) is threading.main_thread()
    assert len(pool.threads) == 1  # one call at a time: one thread


def test_threads_start_while_all_are_busy_up_to_the_size():
    pool = worker.DbPool(2, "imap-db")
    release = threading.Event()
    ran_in: list[str] = []

    def blocked():
        ran_in.append(threading.current_thread().name)
        release.wait(10)
        return len(ran_in)

    async def main():
        loop = asyncio.get_running_loop()
        calls = [pool.run(loop, blocked) for _ in range(3)]
        await asyncio.sleep(0.2)
        assert len(pool.threads) == 2 and len(ran_in) == 2  # the third waits for a thread
        release.set()
        return await asyncio.gather(*calls)

    assert sorted(asyncio.run(main())) in ([2, 2, 3], [2, 3, 3])
    assert set(ran_in) == {"imap-db_0", "imap-db_1"}


def test_a_call_cancelled_before_it_began_does_not_run():
    pool = worker.DbPool(1, "imap-db")
    release = threading.Event()
    ran: list[str] = []

    async def main():
        loop = asyncio.get_running_loop()
        first = pool.run(loop, lambda: release.wait(10))
        second = pool.run(loop, lambda: ran.append("second"))
        second.cancel()
        release.set()
        await first
        await pool.run(loop, lambda: None)  # after the cancelled one in the queue

    asyncio.run(main())
    assert ran == []


def test_shutdown_closes_each_thread_s_connection_and_the_pool_serves_on(monkeypatch):
    pool = worker.DbPool(3, "imap-db")
    monkeypatch.setattr(worker, "_pool", pool)
    closed: list[str] = []
    monkeypatch.setattr(
        "django.db.connections.close_all",
        lambda: closed.append(threading.current_thread().name),
    )
    release = threading.Event()

    async def busy():
        loop = asyncio.get_running_loop()
        calls = [pool.run(loop, lambda: release.wait(10)) for _ in range(3)]
        await asyncio.sleep(0.2)
        release.set()
        await asyncio.gather(*calls)

    asyncio.run(busy())
    worker.close_db_connections()
    assert sorted(closed) == ["imap-db_0", "imap-db_1", "imap-db_2"]

    async def after():
        loop = asyncio.get_running_loop()
        return await pool.run(loop, lambda: "served")

    assert asyncio.run(after()) == "served"
    assert pool.handed == pool.finished == 4  # the shutdown's calls are not counted


@pytest.mark.django_db(transaction=True)
def test_sessions_writes_share_the_group_committers_transaction(make_mailbox):
    """together(): on SQLite, STOREs and EXPUNGEs (and \\Recent claims) that other threads
    make while a write is in progress run as one batch of the group committer, each with its
    own result; on PostgreSQL each runs alone."""
    from django.db import connection

    from mailboxes import services
    from mailboxes.groupcommit import committer
    from mailboxes.selectors import folder_get, messages_in
    from tests.mailboxes.conftest import make_raw
    from tests.mailboxes.test_groupcommit import held

    inbox = folder_get(make_mailbox("alice@example.org"), "INBOX")
    for n in range(3):
        services.message_append(folder=inbox, raw=make_raw(f"m{n}"))
    store = worker.together(services.messages_store_flags, synced=False)
    expunge = worker.together(services.messages_expunge, synced=False)
    services.messages_store_flags(folder=inbox, uids=[3], flags=["\\Deleted"], mode="add")
    calls = {
        "seen": lambda: store(folder=inbox, uids=[1], flags=["\\Seen"], mode="add"),
        "flagged": lambda: store(folder=inbox, uids=[2], flags=["\\Flagged"], mode="add"),
        "expunge": lambda: expunge(folder=inbox, uids=[3]),
        "claim": lambda: services.folder_claim_recent(folder_id=inbox.pk),
    }
    outcomes: dict[str, object] = {}

    def call(name: str) -> None:
        try:
            outcomes[name] = calls[name]()
        finally:
            connection.close()

    sqlite = connection.vendor == "sqlite"
    batches = committer.batches
    threads = [threading.Thread(target=call, args=(name,)) for name in calls]
    with held(committer):
        for thread in threads:
            thread.start()
        if sqlite:
            deadline = time.monotonic() + 30
            while committer.waiting < len(calls):
                assert time.monotonic() < deadline, "writes did not queue"
                time.sleep(0.005)
        else:
            for thread in threads:
                thread.join(30)  # not queued behind the held committer
    for thread in threads:
        thread.join(30)
    assert committer.batches == batches + (1 if sqlite else 0)
    assert [uid for uid, _, _ in outcomes["seen"].changed] == [1]
    assert [uid for uid, _, _ in outcomes["flagged"].changed] == [2]
    assert outcomes["expunge"] == [3]
    assert outcomes["claim"] == (1, 4)
    rows = {m.uid: (m.seen, m.flagged) for m in messages_in(inbox)}
    assert rows == {1: (True, False), 2: (False, True)}
