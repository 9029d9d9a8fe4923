"""Hops from a protocol's event loop to its database threads, counted (the IMAP and SMTP
tests of how many a command or a message takes)."""

from __future__ import annotations


class CountingPool:
    """A worker pool that counts what the event loop hands it."""

    def __init__(self, pool) -> None:  # noqa: ANN001
        self.pool, self.hops = pool, 0

    def submit(self, fn, *args):  # noqa: ANN001, ANN202
        self.hops += 1
        return self.pool.submit(fn, *args)

    def run(self, loop, fn):  # noqa: ANN001, ANN202
        """IMAP's pool (protocols/imap/worker.py's DbPool)."""
        self.hops += 1
        return self.pool.run(loop, fn)


def counting_pool(monkeypatch, module, name: str) -> CountingPool:  # noqa: ANN001
    """Make `module.name` (the function that returns the protocol's pool) return it counted."""
    counting = CountingPool(getattr(module, name)())
    monkeypatch.setattr(module, name, lambda: counting)
    return counting
