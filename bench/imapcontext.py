"""What a live SEARCH or SORT context (RFC 5267 RETURN (UPDATE)) costs a change, through IMAP.

    python bench/imapcontext.py ADDRESS PASSWORD PORT [COUNT]

Run in Mailhost's environment beside a running IMAP listener, as bench/imapsort.py (whose
folder "SortBench" of COUNT messages, default 100,000, it fills or reuses). Times, best of
five, a flag change (`UID STORE n +FLAGS.SILENT (\\Flagged)` and back) and an arrival (APPEND
to the folder, answered with its EXISTS) in a session with no context, with a SEARCH context
(UNFLAGGED), and with a SORT context (SUBJECT) open.
"""

from __future__ import annotations

import imaplib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from imapsort import FOLDER, command_line, populate  # noqa: E402

MESSAGE = b"From: a@example.org\r\nSubject: topic number 2500\r\n\r\nbody\r\n"


def best_of_five(action) -> float:
    best = None
    for _ in range(5):
        start = time.perf_counter()
        action()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best


def check(answer) -> None:
    typ, data = answer
    if typ != "OK":
        raise SystemExit(f"refused: {data}")


def measure(client: imaplib.IMAP4, uid: int) -> tuple[float, float]:
    def flag() -> None:
        check(client.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Flagged)"))
        check(client.uid("STORE", str(uid), "-FLAGS.SILENT", "(\\Flagged)"))

    def arrive() -> None:
        check(client.append(FOLDER, "", None, MESSAGE))

    return best_of_five(flag) / 2, best_of_five(arrive)


CONTEXTS = {
    "no context": None,
    "SEARCH context": ("SEARCH", "RETURN", "(UPDATE)", "UNFLAGGED"),
    "SORT context": ("SORT", "RETURN", "(UPDATE)", "(SUBJECT)", "UTF-8", "ALL"),
}


def main(address: str, password: str, port: int, count: int) -> None:
    populate(address, count)
    print(f"{count} messages, load average {os.getloadavg()[0]:.1f}")
    for name, command in CONTEXTS.items():
        client = imaplib.IMAP4("127.0.0.1", port)
        client.login(address, password)
        typ, data = client.select(FOLDER)
        uid = 1 + int(data[0]) // 2
        if command is not None:
            check(client.uid(*command))
        flag, arrive = measure(client, uid)
        print(f"{name:15s} STORE {flag * 1000:7.1f} ms  APPEND {arrive * 1000:7.1f} ms")
        client.logout()


if __name__ == "__main__":
    command_line(main, __doc__)
