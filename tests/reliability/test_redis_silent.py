"""A Redis that accepts connections and never answers fails the delivery queue's callers in
seconds (mailhost.redisconn's timeouts), instead of holding them: an enqueue runs in a port
25 session's database thread after its commit, a pop in a delivery thread."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import redis

from delivery import queue


@pytest.fixture
def silent_redis(settings):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    settings.REDIS_URL = f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    yield
    server.close()
    for conn in held:
        conn.close()


def test_a_delivery_threads_pop_from_a_silent_redis_fails_in_seconds(silent_redis):
    from delivery.rqworker import JobTaker

    started = time.monotonic()
    with pytest.raises(redis.exceptions.TimeoutError):
        JobTaker(queue.rq_queue()).pop(timeout=1)
    assert time.monotonic() - started < 15


def test_an_enqueue_to_a_silent_redis_gives_up_in_seconds(silent_redis):
    started = time.monotonic()
    assert queue.enqueue(900_200) is False  # logged; the sweeper enqueues it later
    assert time.monotonic() - started < 15
