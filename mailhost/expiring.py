"""An answer kept for a few seconds, and forgotten at once when this process saves or deletes
a row it may depend on.

Hot paths ask the database the same small question for every message (the DKIM key of the
From domain, whether the sender's domain is hosted, whether the logged-in mailbox owns the
sender address): the statement, and for the SMTP hooks the hop to a worker thread, cost more
than the work. An ExpiringCache answers from memory for `seconds`; a save or delete of one of
its `models` in this process forgets everything, when it happens and again when its
transaction commits (so that nobody stores what another thread read before the commit); a
lookup that a forget overtook does not store what it read. A change made elsewhere (the
admin's process, another worker, an UPDATE without signals) is seen within `seconds`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save

MISSING: Any = object()


class ExpiringCache:
    def __init__(
        self,
        compute: Callable[..., Any],
        *,
        seconds: float,
        size: int,
        models: Iterable[type],
        name: str,
    ) -> None:
        self.compute = compute
        self.seconds = seconds
        self.size = size
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._generation = 0
        self._lock = threading.Lock()
        for model in models:
            for signal in (post_save, post_delete):
                signal.connect(
                    self.forget_now_and_on_commit,
                    sender=model,
                    dispatch_uid=f"expiring-{name}-{model.__name__}",
                    weak=False,
                )

    def cached(self, *key: Hashable) -> Any:
        """The answer for `key` while it is fresh, else MISSING (never asks the database)."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        return MISSING

    def get(self, *key: Hashable) -> Any:
        """compute(*key), from memory while fresh."""
        found = self.cached(*key)
        return found if found is not MISSING else self.renew(*key)

    def _store(self, generation: int, key: tuple, value: Any) -> None:
        with self._lock:
            if generation == self._generation:  # no forget overtook the lookup
                if len(self._entries) >= self.size:
                    self._entries = {}
                self._entries[key] = (time.monotonic() + self.seconds, value)

    def renew(self, *key: Hashable) -> Any:
        """compute(*key) from the database whatever is remembered, and remembered for its time
        (a caller that must see the rows as they are now, and fills the memory for the
        callers that may not)."""
        generation = self._generation
        value = self.compute(*key)
        self._store(generation, key, value)
        return value

    def forget(self, **_: object) -> None:
        with self._lock:
            self._generation += 1
            self._entries = {}

    def forget_now_and_on_commit(self, **kwargs: object) -> None:
        self.forget()
        transaction.on_commit(self.forget, using=kwargs.get("using"))
