"""Run listener families on real sockets for end-to-end tests.

    with running(runner.SMTP, runner.IMAP) as ports:
        smtplib.SMTP("127.0.0.1", ports["smtp"])

The families run on their own event loop in a background thread, bound to 127.0.0.1 on free
ports (the `live_settings` fixture sets every port to 0). Tests using this need
`transactional_db`, since the server threads use their own database connections.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from contextlib import contextmanager

from mailhost import eventloop
from mailhost.listeners import Listener


@contextmanager
def running(*modules: str):
    loop = eventloop.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-servers", daemon=True)
    thread.start()

    async def start() -> list[Listener]:
        listeners: list[Listener] = []
        for name in modules:
            listeners.extend(await importlib.import_module(name).start())
        return listeners

    try:
        listeners = asyncio.run_coroutine_threadsafe(start(), loop).result(60)
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        raise

    async def stop() -> None:
        for listener in listeners:
            listener.close()
        await asyncio.gather(*(lst.wait_closed() for lst in listeners), return_exceptions=True)

    try:
        yield {listener.name: listener.port for listener in listeners}
    finally:
        try:
            asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


def run_elsewhere(code: str, data_dir) -> int:
    """Run Python `code` (after django.setup()) in another process on this test's PostgreSQL
    database, with the tests' password hasher: another front end's work, heard through Redis.
    Returns its exit status."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    prelude = (
        "import django; django.setup()\n"
        "from django.conf import settings\n"
        f"settings.PASSWORD_HASHERS = {settings.PASSWORD_HASHERS!r}\n"
    )
    env = dict(
        os.environ,
        DATABASE_URL=f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{host}:{port}/{db['NAME']}",
        MAILHOST_DATA_DIR=str(data_dir),
        DJANGO_SETTINGS_MODULE="mailhost.settings",
    )
    root = Path(__file__).resolve().parents[2]
    return subprocess.run(
        [sys.executable, "-c", prelude + code], env=env, cwd=root, timeout=60
    ).returncode
