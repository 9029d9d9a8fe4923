"""What a live SEARCH or SORT context (RFC 5267 RETURN (UPDATE)) costs a change, through IMAP.

    python bench/imapcontext.py ADDRESS PASSWORD PORT [COUNT] [--pid PID] [--runs N]

Run in Mailhost's environment beside a running IMAP listener, as bench/imapsort.py (whose
folder "SortBench" of COUNT messages, default 100,000, it fills or reuses). Times, the median
of N (default 5) and with the listener's CPU as there, a flag change (`UID STORE n +FLAGS.SILENT (\\Flagged)` and back) and an arrival (APPEND
to the folder, answered with its EXISTS) in a session with no context, with a SEARCH context
(UNFLAGGED), and with a SORT context (SUBJECT) open.
"""

from __future__ import annotations

import imaplib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from imapsort import FOLDER, Timer, command_line, populate  # noqa: E402

MESSAGE = b"From: a@example.org\r\nSubject: topic number 2500\r\n\r\nbody\r\n"


def check(answer) -> None:
    typ, data = answer
    if typ != "OK":
        raise SystemExit(f"refused: {data}")


def measure(client: imaplib.IMAP4, uid: int, timer: Timer) -> str:
    def flag() -> None:
        check(client.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Flagged)"))
        check(client.uid("STORE", str(uid), "-FLAGS.SILENT", "(\\Flagged)"))

    def arrive() -> None:
        check(client.append(FOLDER, "", None, MESSAGE))

    flag_wall, flag_cpu = timer.measure(flag)
    return f"STORE {timer.text(flag_wall / 2, flag_cpu / 2)}  APPEND {timer.text(*timer.measure(arrive))}"


CONTEXTS = {
    "no context": None,
    "SEARCH context": ("SEARCH", "RETURN", "(UPDATE)", "UNFLAGGED"),
    "SORT context": ("SORT", "RETURN", "(UPDATE)", "(SUBJECT)", "UTF-8", "ALL"),
}


def main(address: str, password: str, port: int, count: int, timer: Timer) -> None:
    populate(address, count)
    print(f"{count} messages, load average {os.getloadavg()[0]:.1f}, median of {timer.runs}")
    for name, command in CONTEXTS.items():
        client = imaplib.IMAP4("127.0.0.1", port)
        client.login(address, password)
        typ, data = client.select(FOLDER)
        uid = 1 + int(data[0]) // 2
        if command is not None:
            check(client.uid(*command))
        print(f"{name:15s} {measure(client, uid, timer)}")
        client.logout()


if __name__ == "__main__":
    command_line(main, __doc__)
