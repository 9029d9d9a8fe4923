"""The event loop the servers run on: uvloop's where it is installed, else asyncio's own
(MAILHOST_EVENT_LOOP: auto, uvloop or asyncio; README "Configuration").

uvloop (libuv under a Cython event loop) moves bytes, schedules callbacks and runs
transports in C where asyncio runs them in Python; the sessions, the database threads and
every loop API the protocols use (start_tls, sock_recv, add_signal_handler, executors) are
the same on both. runmail, runsmtp, runimap, runpop3, runmanagesieve and runmail's worker
processes start their loop through run() here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T")


def loop_factory(
    choice: str, *, proxy_trusted: bool = False
) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of MAILHOST_EVENT_LOOP's loop; None: asyncio's default. `uvloop` named
    but not installed is a configuration error; `auto` falls back to asyncio quietly.

    Behind a PROXY-protocol balancer (MAILHOST_PROXY_TRUSTED) asyncio's loop: protocols/proxy.py
    hands each connection on as a socket whose getpeername() is the header's client, which
    asyncio's transports report as their peer, and uvloop's do not (they ask the kernel), so
    per-IP caps, logs and SPF would see the balancer."""
    if choice == "asyncio" or (choice == "auto" and proxy_trusted):
        return None
    if choice == "uvloop" and proxy_trusted:
        raise ImproperlyConfigured(
            "MAILHOST_EVENT_LOOP=uvloop cannot serve MAILHOST_PROXY_TRUSTED balancers: its"
            " transports report the balancer, not the PROXY header's client (use auto or asyncio)"
        )
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ImproperlyConfigured(
                "MAILHOST_EVENT_LOOP=uvloop, but uvloop is not installed (pip install uvloop)"
            ) from None
        return None
    return uvloop.new_event_loop


def _configured() -> Callable[[], asyncio.AbstractEventLoop] | None:
    from django.conf import settings

    return loop_factory(
        settings.MAILHOST_EVENT_LOOP, proxy_trusted=bool(settings.MAILHOST_PROXY_TRUSTED)
    )


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new loop of the configured kind (the tests' server threads use one too)."""
    factory = _configured()
    return factory() if factory is not None else asyncio.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(main) on the configured loop."""
    with asyncio.Runner(loop_factory=_configured()) as runner:
        return runner.run(main)
