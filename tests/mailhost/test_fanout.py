"""The workers' fan-out (mailhost/fanout.py): what one worker sends, the reading thread of
another hands to the topic's subscribers."""

from __future__ import annotations

import json
import socket
import threading
import tracemalloc

from mailhost import fanout


def test_a_message_is_read_without_a_megabyte_buffer(monkeypatch):
    """recv allocates what it is asked for before it reads: the reader asks for the largest
    datagram there can be (MAX_DATAGRAM), not 1 MiB (an mmap and a munmap per message)."""
    heard: list[dict] = []
    arrived = threading.Event()

    def subscriber(message: dict) -> None:
        heard.append(message)
        arrived.set()

    monkeypatch.setitem(fanout._subscribers, "test-topic", [subscriber])
    receive, send = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    reader = threading.Thread(target=fanout._listen, args=(receive,), daemon=True)
    tracemalloc.start()
    try:
        reader.start()
        tracemalloc.reset_peak()
        send.send(json.dumps(["test-topic", {"id": 42}]).encode())
        assert arrived.wait(10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        send.close()  # the reader (a daemon, as in a worker) waits on its socket for good
    assert heard == [{"id": 42}]
    assert peak < 2 * fanout.MAX_DATAGRAM, peak
