"""IDLE and changes made elsewhere: EXISTS / EXPUNGE / FETCH FLAGS reach selected sessions."""

from __future__ import annotations

import smtplib
import time

import pytest

from mailboxes import selectors, services
from protocols.imap import responses as r
from tests.protocols.imap.conftest import deliver_in_thread

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = b"From: bob@example.net\r\nTo: alice@example.org\r\nSubject: ping\r\n\r\nHi.\r\n"


def idle_in_inbox(c) -> None:  # noqa: ANN001
    """`c` selects INBOX (a0) and is in IDLE (a1), its continuation read."""
    c.cmd("a0", "SELECT INBOX")
    c.send("a1 IDLE\r\n")
    assert c.line() == r.CONTINUE_IDLE.rstrip(b"\r\n")


def ok(tag: str, reply: r.Reply = r.OK_COMPLETED) -> bytes:
    return reply.tagged(tag).rstrip(b"\r\n")


def test_idle_woken_by_delivery_within_a_second(client):
    c = client()
    idle_in_inbox(c)
    started = time.monotonic()
    deliver_in_thread(MESSAGE, "alice@example.org")
    assert c.line() == b"* 1 EXISTS"
    assert c.line() == b"* 1 RECENT"
    assert time.monotonic() - started < 1.0
    c.send("DONE\r\n")
    assert c.until("a1") == [ok("a1", r.OK_IDLE_DONE)]


def test_idle_reports_flags_and_expunge_from_another_session(client):
    services.message_deliver(raw=MESSAGE, recipients=["alice@example.org"])
    services.message_deliver(raw=MESSAGE, recipients=["alice@example.org"])
    watcher, actor = client(), client()
    watcher.cmd("w0", "SELECT INBOX")
    actor.cmd("x0", "SELECT INBOX")
    watcher.send("w1 IDLE\r\n")
    assert watcher.line() == r.CONTINUE_IDLE.rstrip(b"\r\n")
    actor.cmd("x1", "STORE 2 +FLAGS.SILENT (\\Flagged)")
    assert watcher.line() == b"* 2 FETCH (FLAGS (\\Flagged \\Recent))"
    actor.cmd("x2", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert watcher.line() == b"* 1 FETCH (FLAGS (\\Deleted \\Recent))"
    actor.cmd("x3", "EXPUNGE")
    assert watcher.line() == b"* 1 EXPUNGE"
    assert watcher.line() == b"* 1 RECENT"  # RFC 3501 7.3.2: the \Recent count changed
    watcher.send("DONE\r\n")
    assert watcher.until("w1") == [ok("w1", r.OK_IDLE_DONE)]


def test_idle_bad_continuation_line(client):
    c = client()
    c.send("a1 IDLE\r\n")
    assert c.line() == r.CONTINUE_IDLE.rstrip(b"\r\n")
    c.send("NOPE\r\n")
    assert c.until("a1") == [b"a1 BAD Expected DONE"]
    assert c.cmd("a2", "NOOP") == [ok("a2", r.OK_NOOP)]


def test_two_sessions_see_each_others_changes_at_next_command(client, imap):
    one, two = client(), client()
    one.cmd("a0", "SELECT INBOX")
    two.cmd("b0", "SELECT INBOX")
    two.cmd("b1", b"APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE)
    time.sleep(0.2)
    assert one.cmd("a1", "NOOP") == [b"* 1 EXISTS", b"* 0 RECENT", ok("a1", r.OK_NOOP)]
    two.cmd("b2", "STORE 1 +FLAGS.SILENT (\\Seen)")
    time.sleep(0.2)
    assert one.cmd("a2", "NOOP") == [b"* 1 FETCH (FLAGS (\\Seen))", ok("a2", r.OK_NOOP)]
    two.cmd("b3", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    two.cmd("b4", "EXPUNGE")
    time.sleep(0.2)
    # No EXPUNGE during FETCH by sequence number (RFC 9051 7.5.1): the message stays visible.
    lines = one.cmd("a3", "FETCH 1 (UID)")
    assert b"* 1 EXPUNGE" not in lines and lines[-1] == ok("a3")
    # Nor during SEARCH, which says the message it no longer sees went (RFC 5530 3)
    assert one.cmd("a4", "SEARCH ALL")[-1] == ok("a4", r.OK_EXPUNGE_ISSUED)
    assert one.cmd("a5", "NOOP") == [b"* 1 EXPUNGE", ok("a5", r.OK_NOOP)]
    assert selectors.folder_get(imap["mailbox"], "INBOX").message_count == 0


def test_idle_woken_by_smtp_delivery(client, live_settings):
    """A message arriving over SMTP reaches an IDLE session within a second."""
    pytest.importorskip("protocols.smtp.server")
    from mailhost import runner
    from tests.support.servers import running

    c = client()
    c.cmd("a0", "SELECT INBOX")
    with running(runner.SMTP) as ports:
        c.send("a1 IDLE\r\n")
        assert c.line() == r.CONTINUE_IDLE.rstrip(b"\r\n")
        started = time.monotonic()
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=10) as smtp:
            smtp.sendmail("bob@example.net", ["alice@example.org"], MESSAGE)
        sent = time.monotonic()
        assert c.line() == b"* 1 EXISTS"
        assert time.monotonic() - sent < 1.0, time.monotonic() - started
        c.send("DONE\r\n")
        assert c.until("a1")[-1] == ok("a1", r.OK_IDLE_DONE)


def test_noop_finds_changes_even_when_the_event_was_lost(client, monkeypatch):
    from mailboxes import events

    c = client()
    c.cmd("a0", "SELECT INBOX")
    monkeypatch.setattr(events, "publish", lambda event: None)  # e.g. Redis was restarting
    services.message_deliver(raw=MESSAGE, recipients=["alice@example.org"])
    assert c.cmd("a1", "NOOP") == [b"* 1 EXISTS", b"* 1 RECENT", ok("a1", r.OK_NOOP)]


def _pending_tasks() -> int:
    import asyncio
    import gc

    return sum(1 for o in gc.get_objects() if isinstance(o, asyncio.Task) and not o.done())


def test_a_session_in_idle_holds_one_task(client):
    # Issue 22: thousands of idle connections each cost what their session keeps alive; in
    # IDLE that is the session's own task, not a read task and a wake-up task beside it.
    first = client()
    idle_in_inbox(first)
    before = _pending_tasks()
    crowd = [client() for _ in range(10)]
    for c in crowd:
        c.cmd("b0", "SELECT INBOX")
        c.send("b1 IDLE\r\n")
        assert c.line() == r.CONTINUE_IDLE.rstrip(b"\r\n")
    time.sleep(0.2)
    assert _pending_tasks() - before == 10
    deliver_in_thread(MESSAGE, "alice@example.org")
    recent = []
    for c in [first, *crowd]:  # every one woken; \Recent for one of them (RFC 3501 2.3.2)
        assert c.line() == b"* 1 EXISTS"
        recent.append(c.line())
        c.send("DONE\r\n")
    assert sorted(recent) == [b"* 0 RECENT"] * 10 + [b"* 1 RECENT"]
    for c in crowd:
        assert c.until("b1") == [ok("b1", r.OK_IDLE_DONE)]
    assert first.until("a1") == [ok("a1", r.OK_IDLE_DONE)]


def test_a_session_in_idle_awaits_in_its_task_s_own_frame(client):
    # Issue 22: each coroutine an idle session's task awaits through is a frame kept alive
    # for as long as it idles (about 280 bytes each, thousands of sessions). IDLE's wait is
    # awaited by the session's run() itself: one frame, not run, dispatch, idle and its wait.
    import asyncio
    import gc

    c = client()
    idle_in_inbox(c)
    time.sleep(0.2)
    sessions = [
        task
        for task in gc.get_objects()
        if isinstance(task, asyncio.Task)
        and not task.done()
        and task.get_coro().__qualname__ == "Session.run"
    ]
    assert len(sessions) == 1
    awaiting = sessions[0].get_coro()
    chain = []  # the coroutines the task awaits through, outermost first
    while asyncio.iscoroutine(awaiting):
        chain.append(awaiting.cr_code.co_name)
        awaiting = awaiting.cr_await
    assert chain == ["run"]
    assert awaiting is not None  # the wake-up future's iterator
    c.send("DONE\r\n")
    assert c.until("a1") == [ok("a1", r.OK_IDLE_DONE)]


def test_idle_connections_keep_no_close_future_of_their_own(client):
    # Issue 22: asyncio's stream protocol makes a close future for each connection and its
    # StreamWriter a completed one it never reads (144 bytes each): the close future is made
    # at the connection's end (or when the session waits for it), the other is shared.
    import gc

    from protocols.imap.session import Session

    crowd = [client() for _ in range(3)]
    for c in crowd:
        idle_in_inbox(c)
    time.sleep(0.2)
    sessions = [s for s in gc.get_objects() if isinstance(s, Session) and s.selected is not None]
    assert len(sessions) == 3
    assert all(s.writer._protocol._closed is None for s in sessions)
    assert len({id(s.writer._complete_fut) for s in sessions}) == 1
    for c in crowd:
        c.send("DONE\r\n")
        assert c.until("a1") == [ok("a1", r.OK_IDLE_DONE)]


def test_idle_looks_after_its_poll_interval_when_the_event_was_lost(client, monkeypatch):
    from mailboxes import events
    from protocols.imap.commands import idle

    monkeypatch.setattr(idle, "POLL_SECONDS", 0.3)
    monkeypatch.setattr(events, "publish", lambda event: None)  # e.g. Redis was restarting
    c = client()
    idle_in_inbox(c)
    services.message_deliver(raw=MESSAGE, recipients=["alice@example.org"])
    assert c.line() == b"* 1 EXISTS"
    assert c.line() == b"* 1 RECENT"
    c.send("DONE\r\n")
    assert c.until("a1") == [ok("a1", r.OK_IDLE_DONE)]


def test_idle_ends_with_bye_at_the_autologout_time(client, settings):
    settings.MAILHOST_IMAP_IDLE_TIMEOUT = 0.5
    c = client()
    idle_in_inbox(c)
    assert c.line() == r.BYE_TIMEOUT.untagged().rstrip(b"\r\n")


def _timers() -> int:
    import gc

    return sum(
        1 for o in gc.get_objects() if type(o).__name__ == "TimerHandle" and not o.cancelled()
    )


def test_sessions_in_idle_share_their_timers(client):
    # Issue 22: a timer of its own (handle, uvloop's and libuv's timer: about 500 bytes) for
    # each session in IDLE; the server's Alarms keep one loop timer per grain of time.
    first = client()
    idle_in_inbox(first)
    time.sleep(0.2)
    before = _timers()
    crowd = [client() for _ in range(10)]
    for c in crowd:
        c.cmd("b0", "SELECT INBOX")
    for c in crowd:  # within a few grains of each other
        c.send("b1 IDLE\r\n")
    for c in crowd:
        assert c.line() == r.CONTINUE_IDLE.rstrip(b"\r\n")
    time.sleep(0.2)
    import gc

    from protocols.imap.session import Session

    waiting = [s for s in gc.get_objects() if isinstance(s, Session) and s.waiter is not None]
    assert len(waiting) == 11
    alarms = waiting[0].server.alarms
    assert sum(len(waiters) for waiters in alarms.slots.values()) == 11
    assert _timers() - before <= len(alarms.slots)  # a loop timer per slot, not per session
    for c in [first, *crowd]:
        c.send("DONE\r\n")
    for c in crowd:
        assert c.until("b1") == [ok("b1", r.OK_IDLE_DONE)]
    assert first.until("a1") == [ok("a1", r.OK_IDLE_DONE)]
