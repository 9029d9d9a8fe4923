"""A child process for the concurrency and crash tests (not a test module).

    python tests/mailboxes/worker.py deliver ADDRESS COUNT TAG
        deliver COUNT messages to ADDRESS, then print "done".
    python tests/mailboxes/worker.py crash ADDRESS STAGE
        deliver one message but stop for good at STAGE ("after-blob": the bytes are written
        and synced, no transaction yet; "before-commit": the rows are inserted, not
        committed), after printing "stopped <blob name>"; the test then kills the process.

The environment names the database (DATABASE_URL) and data dir the parent test uses.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from mailboxes import services  # noqa: E402


def message(tag: str, n: int) -> bytes:
    return (
        f"From: w@remote.example\r\nTo: x@example.org\r\nSubject: {tag} {n}\r\n"
        f"Message-ID: <{tag}.{n}@remote.example>\r\n\r\nbody {tag} {n}\r\n"
    ).encode()


def deliver(address: str, count: int, tag: str) -> None:
    for n in range(count):
        results = services.message_deliver(raw=message(tag, n), recipients=[address])
        assert results[0].status == "delivered", results
    print("done", flush=True)


def crash(address: str, stage: str) -> None:
    written: list[str] = []
    real_blob_write = services.blob_write

    def stop() -> None:
        print("stopped", written[0], flush=True)
        while True:
            time.sleep(60)

    def blob_write(raw: bytes) -> str:
        name = real_blob_write(raw)
        written.append(name)
        if stage == "after-blob":
            stop()
        return name

    def stop_after_message_insert(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if stage == "before-commit" and 'INSERT INTO "mailboxes_message"' in sql:
            stop()
        return result

    services.blob_write = blob_write
    with connection.execute_wrapper(stop_after_message_insert):
        services.message_deliver(raw=message("crash", 0), recipients=[address])
    print("committed", flush=True)  # never reached when the stage is right


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "deliver":
        deliver(args[0], int(args[1]), args[2])
    elif command == "crash":
        crash(args[0], args[1])
    else:
        raise SystemExit(f"unknown command {command}")
