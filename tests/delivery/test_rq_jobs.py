"""With REDIS_URL: the delivery jobs on RQ's queue, as runmail's delivery threads take them
(delivery.rqworker.JobTaker) and as the spool enqueues them (delivery.queue)."""

from __future__ import annotations

import pytest
from django.conf import settings

from delivery import queue

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="REDIS_URL is not set")

RAN: list[str] = []


def remember(value: str) -> None:
    """A job of another function than delivery's, put on the same queue."""
    RAN.append(value)


@pytest.fixture
def rq():
    q = queue.rq_queue()
    q.empty()
    RAN.clear()
    yield q
    q.empty()


def taker(q):  # noqa: ANN001, ANN201
    from delivery.rqworker import JobTaker

    return JobTaker(q)


def test_enqueueing_and_starting_jobs_reuse_the_processs_redis_connection(rq, monkeypatch):
    """django_rq.get_queue makes a new client at each call: each enqueue and each job's
    start connected to Redis afresh (and looked redis-py's version up for the handshake)."""
    import redis.connection

    connects = []
    real_connect = redis.connection.AbstractConnection.connect

    def counting(self):  # noqa: ANN001, ANN202
        if self._sock is None:  # connect() is a no-op on a connected connection
            connects.append(self)
        return real_connect(self)

    monkeypatch.setattr(redis.connection.AbstractConnection, "connect", counting)
    rq.connection.ping()  # the pool's first connection, if it has none yet
    connects.clear()
    for message_id in range(900_001, 900_021):
        assert queue.enqueue(message_id)
        queue.jobs_started([message_id])
    assert len(rq) == 20
    assert connects == []


def test_a_share_of_the_queue_is_taken_with_its_jobs_deleted(rq):
    """Jobs whose ids do not name their message (enqueued by RQ's API, as an earlier
    version did) are read for it."""
    for message_id in (11, 12, 13, 11):
        rq.connection.set(queue.PENDING_KEY.format(message_id), 1)
        rq.enqueue(queue.JOB, message_id)
    job_ids = rq.job_ids
    t = taker(rq)
    first, backlog = t.pop(timeout=0)
    assert (first.decode(), backlog) == (job_ids[0], 3)
    more = t.pop_more(3)
    assert [j.decode() for j in more] == job_ids[1:]
    assert t.message_ids([first, *more]) == [11, 12, 13]  # message 11's second job: once
    assert len(rq) == 0
    assert not any(rq.connection.exists(f"rq:job:{j}") for j in job_ids)
    assert not any(rq.connection.exists(queue.PENDING_KEY.format(m)) for m in (11, 12, 13))
    assert t.pop(timeout=0.1) == (None, 0)


def test_a_wait_under_a_second_is_that_long(rq, monkeypatch):
    """A delivery thread keeping its last results for its next claim waits that long for a
    job (delivery.worker.RESULTS_HOLD): from Redis 6 on, whose BLPOP takes decimals, not a
    whole second; from a server that takes whole seconds only, not at all."""
    import time

    started = time.monotonic()
    assert taker(rq).pop(timeout=0.2) == (None, 0)
    assert 0.15 <= time.monotonic() - started < 0.9
    old = taker(rq)
    monkeypatch.setattr(old.connection, "info", lambda section: {"redis_version": "5.0.14"})
    started = time.monotonic()
    assert old.pop(timeout=0.2) == (None, 0)
    assert time.monotonic() - started < 0.15


def test_a_job_of_another_function_is_run_in_the_thread(rq):
    rq.enqueue(f"{__name__}.remember", "hello")
    rq.enqueue(queue.JOB, 21)
    t = taker(rq)
    first, backlog = t.pop(timeout=1)
    assert backlog == 1
    assert t.message_ids([first, *t.pop_more(backlog)]) == [21]
    assert RAN == ["hello"]


def counted_sends(monkeypatch) -> list[bytes]:  # noqa: ANN001
    """What this process sends Redis from now on, one item a round trip."""
    import redis.connection

    sends = []
    real_send = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        sends.append(command)
        return real_send(self, command, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    return sends


def test_an_enqueue_is_one_round_trip_for_a_message_just_spooled_else_two(rq, monkeypatch):
    """A message just spooled: its pending mark set with the job, in one pipeline (RQ's own
    enqueue executes two: the queue's name in its set of queues, then the job and its place
    in the queue; and the mark was tested first). The sweeper's enqueue tests the mark
    first: a message already asked for costs that SET NX only."""
    assert queue.enqueue(900_099, spooled=True)  # RQ asks the server's version once
    sends = counted_sends(monkeypatch)
    assert queue.enqueue(900_100, spooled=True)
    assert len(sends) == 1
    assert not queue.enqueue(900_100)  # the mark is set: not asked twice
    assert len(sends) == 2
    rq.connection.delete(queue.PENDING_KEY.format(900_100))  # the job was taken
    del sends[:]
    assert queue.enqueue(900_100)  # the sweeper's: the mark tested, then the job
    assert len(sends) == 2
    monkeypatch.undo()
    assert [job.args for job in rq.jobs] == [(900_099,), (900_100,), (900_100,)]
    assert [queue.job_message(job.id) for job in rq.jobs] == [900_099, 900_100, 900_100]


def test_jobs_enqueued_here_are_taken_with_their_marks_in_one_round_trip(rq, monkeypatch):
    for message_id in (31, 32, 33):
        assert queue.enqueue(message_id, spooled=True)
    job_ids = rq.job_ids
    t = taker(rq)
    first, backlog = t.pop(timeout=1)
    more = t.pop_more(backlog)
    sends = counted_sends(monkeypatch)
    assert t.message_ids([first, *more]) == [31, 32, 33]
    assert len(sends) == 1
    monkeypatch.undo()
    assert not any(rq.connection.exists(f"rq:job:{j}") for j in job_ids)
    assert not any(rq.connection.exists(queue.PENDING_KEY.format(m)) for m in (31, 32, 33))


def test_a_delivery_jobs_id_names_its_message():
    assert queue.job_message(f"{queue.JOB_ID_PREFIX}42-0a1b") == 42
    for other in ("42", f"{queue.JOB_ID_PREFIX}42", f"{queue.JOB_ID_PREFIX}x-1", "0a1b-42-c"):
        assert queue.job_message(other) is None
