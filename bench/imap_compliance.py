"""Dovecot's imaptest against Mailhost: its compliance test groups, then its stress mix.

    .venv/bin/python bench/imap_compliance.py [--postgres] [--processes N]
        [--imaptest BINARY] [--tests DIR] [--secs 30] [--clients 10] [--no-stress] [--no-tests]
        [--json PATH]

Starts `manage.py runmail` (bench/mailhost_process.py: free ports, a fresh data dir, SQLite, or
with --postgres a fresh PostgreSQL database and Redis db 8 of REDIS_URL's server), creates
testuser@example.org and testuser2@example.org, and runs:

- the compliance tests: `imaptest test=DIR` (imaptest's src/tests), both users; prints the
  groups passed and the commands failed, and the failures;
- the stress runs, `--clients` clients for `--secs` seconds each, over plain IMAP and implicit
  TLS: imaptest's default mix, then mixes with what Mailhost announces (MIXES below: SEARCH,
  SORT, THREAD; QRESYNC; own_msgs/own_flags checking with checkpoints every 9 s of 30); prints
  operations/s and the distinct error lines.

The binary is --imaptest, else MAILHOST_BENCH_IMAPTEST, else `imaptest` on PATH; the tests
directory is --tests, else MAILHOST_BENCH_IMAPTEST_TESTS, else `tests` beside the binary (a
build tree's src/tests). Exits 1 when a group failed or a stress run printed an error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mailhost_process import Mailhost  # noqa: E402
from run import (  # noqa: E402
    bench_certificate,
    fresh_postgres,
    imaptest_binary,
    imaptest_figures,
    write_mbox,
)

DOMAIN = "example.org"
USERS = (f"testuser@{DOMAIN}", f"testuser2@{DOMAIN}")
PASSWORD = "imaptest-password-1"
# The stress mixes: imaptest's default; the default with the commands of what Mailhost
# announces added (UID FETCH, SEARCH, SORT, THREAD, NOOP, CHECK); the default with QRESYNC (and
# so CONDSTORE) enabled in every session; and long-lived QRESYNC sessions (logout=0) in which
# each client owns some messages and flags (own_msgs, own_flags: it checks that no other
# session's view disagrees with what it stored) and every few seconds all sessions' views,
# flags and \Recent counts are compared (checkpoint=, checkpoint_interval). imaptest itself
# asserts out with `checkpoint` in the logging-out mix and with `qresync` beside SEARCH, and
# its `own_flags` with logging out reports errors against a stock Dovecot too: those
# combinations are left out.
MIXES = {
    "default": (),
    "commands": (
        "uidfetch=50",
        "search=30",
        "sort=30",
        "thread=30",
        "noop=10",
        "check=10",
    ),
    "qresync": ("qresync",),
    "checkpoint": ("qresync", "own_msgs", "own_flags", "logout=0"),
}


def checkpoint_interval(secs: int) -> int:
    """Seconds between checkpoints, the last one ending well before the run does: imaptest
    asserts out when its stop logs the clients out in the middle of a checkpoint (at 30 s
    with checkpoint=10)."""
    return max(2, secs // 3 - 1)


ENV = {
    "MAILHOST_ALLOW_PLAINTEXT_AUTH": "1",
    "MAILHOST_IMAP_MAX_CONNECTIONS_PER_USER": "1000",
    "MAILHOST_MAX_CONNECTIONS_PER_IP": "1000",
}


def compliance(binary: str, tests: Path, port: int) -> dict:
    """imaptest's scripted tests: every group, its pass count and the failures it printed."""
    result = subprocess.run(
        [
            binary,
            "host=127.0.0.1",
            f"port={port}",
            f"user={USERS[0]}",
            f"user2={USERS[1]}",
            f"pass={PASSWORD}",
            f"test={tests}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout + result.stderr
    # "71 test groups: 0 failed, 0 skipped due to missing capabilities"
    groups = re.search(r"(\d+) test groups: (\d+) failed, (\d+) skipped", output)
    # "base protocol: 0/753 individual commands failed", and a line for "extensions"
    commands = re.findall(r"(\d+)/(\d+) individual commands failed", output)
    if not groups or not commands:
        raise RuntimeError(f"imaptest printed no summary: {output[-1500:]}")
    total, failed, skipped = map(int, groups.groups())
    return {
        "groups": total,
        "groups_failed": failed,
        "groups_skipped": skipped,
        "commands": sum(int(total) for _, total in commands),
        "commands_failed": sum(int(failed) for failed, _ in commands),
        # imaptest's own report of each failure: "*** Test NAME command N/M (line L)" and
        # what it expected and got, up to its summary.
        "failures": output[: groups.start()].strip().splitlines()[-60:] if failed else [],
    }


# imaptest's own assertion in the "qresync" mix: a client that logs out may keep its view
# (1 in 3) for another client's SELECT (QRESYNC (uidvalidity modseq)); during that SELECT
# imaptest holds the cached view alone and asserts out on a FETCH numbered past it, which is
# what RFC 7162 3.2.5.2 has a server send for a message that arrived since that mod-sequence
# (tests/protocols/imap/test_qresync_dovecot.py: Dovecot answers the same). Such a run is
# tried again, up to QRESYNC_ATTEMPTS in all, and if every attempt asserts out the mix is
# reported as imaptest's assertion, not as an error of the server.
QRESYNC_ASSERTION = "array.c: line 10 (array_idx_modifiable_i)"
QRESYNC_ATTEMPTS = 3


def stress(binary: str, port: int, mbox: Path, args: argparse.Namespace, *extra: str) -> dict:
    known = "qresync" in extra and "logout=0" not in extra
    attempts = 0
    while True:
        attempts += 1
        figures = stress_once(binary, port, mbox, args, *extra)
        assertion = [e for e in figures.get("panics", []) if QRESYNC_ASSERTION in e]
        if not (known and assertion) or attempts == QRESYNC_ATTEMPTS:
            break
    if attempts > 1:
        figures["attempts"] = attempts
    if known and assertion:
        figures.update(errors=0, first_errors=[], imaptest_assertion=assertion[0])
    return figures


def stress_once(binary: str, port: int, mbox: Path, args: argparse.Namespace, *extra: str) -> dict:
    result = subprocess.run(
        [
            binary,
            "host=127.0.0.1",
            f"port={port}",
            f"user={USERS[0]}",
            f"pass={PASSWORD}",
            f"mbox={mbox}",
            f"secs={args.secs}",
            f"clients={args.clients}",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=args.secs + 300,
    )
    output = result.stdout + result.stderr
    if "Totals:" not in output.splitlines():  # imaptest's own assertion: an error too
        panic = [line for line in output.splitlines() if line.startswith("Panic:")]
        return {
            "ops_per_s": None,
            "errors": 1,
            "first_errors": panic or [output[-500:]],
            "panics": panic,
        }
    figures = imaptest_figures(output, args.secs)
    figures["exit"] = result.returncode
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--imaptest", default=None, help="imaptest binary")
    parser.add_argument("--tests", default=None, help="imaptest's tests directory")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL and Redis")
    parser.add_argument("--processes", type=int, default=0, help="MAILHOST_PROCESSES")
    parser.add_argument("--secs", type=int, default=30)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--no-tests", action="store_true", help="skip the compliance tests")
    parser.add_argument("--no-stress", action="store_true", help="skip the stress runs")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.imaptest:
        os.environ["MAILHOST_BENCH_IMAPTEST"] = args.imaptest
    binary = imaptest_binary()
    if binary is None:
        print("imaptest not found (--imaptest, MAILHOST_BENCH_IMAPTEST or PATH)", file=sys.stderr)
        return 2
    tests = Path(
        args.tests
        or os.environ.get("MAILHOST_BENCH_IMAPTEST_TESTS")
        or Path(binary).resolve().parent / "tests"
    )
    if not args.no_tests and not tests.is_dir():
        print(f"no imaptest tests directory at {tests} (--tests)", file=sys.stderr)
        return 2
    results: dict = {"database": "postgresql" if args.postgres else "sqlite"}
    # runmail's MAILHOST_PROCESSES: --processes, else its default, the CPUs it may run on
    results["processes"] = args.processes or len(os.sched_getaffinity(0))
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mh-imaptest-")))
        env = dict(ENV)
        env["MAILHOST_TLS_CERT"], env["MAILHOST_TLS_KEY"] = map(str, bench_certificate(tmp / "tls"))
        if args.processes:
            env["MAILHOST_PROCESSES"] = str(args.processes)
        database_url = redis_url = None
        if args.postgres:
            database_url, redis_url = fresh_postgres(stack, f"mh_imaptest_{os.getpid()}")
        mailhost = Mailhost(
            tmp / "mailhost", database_url=database_url, redis_url=redis_url, extra_env=env
        )
        mailhost.manage("migrate", "--noinput")
        mailhost.manage("adddomain", DOMAIN)
        for user in USERS:
            mailhost.manage("addmailbox", user, "--password-stdin", stdin=PASSWORD + "\n")
        stack.callback(mailhost.stop)
        mailhost.start()
        if not args.no_tests:
            results["compliance"] = compliance(binary, tests, mailhost.ports["imap"])
            print(f"compliance: {json.dumps(results['compliance'], indent=1)}", flush=True)
        if not args.no_stress:
            mbox = tmp / "imaptest.mbox"
            write_mbox(mbox, 300)
            runs = results["stress"] = {}
            for name, extra in MIXES.items():
                if name == "checkpoint":
                    extra = (*extra, f"checkpoint={checkpoint_interval(args.secs)}")
                for transport, port, tls in (
                    ("plain", mailhost.ports["imap"], ()),
                    ("tls", mailhost.ports["imaps"], ("ssl=any-cert",)),
                ):
                    key = f"{name} {transport}"
                    runs[key] = stress(binary, port, mbox, args, *extra, *tls)
                    figures = runs[key]
                    assertion = figures.get("imaptest_assertion")
                    print(
                        f"stress {key}: {figures['ops_per_s']} ops/s,"
                        f" {figures['errors']} errors {figures['first_errors']}"
                        + (f" (attempts: {figures['attempts']})" if "attempts" in figures else "")
                        + (f"; imaptest asserted out: {assertion}" if assertion else ""),
                        flush=True,
                    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    failed = results.get("compliance", {}).get("groups_failed", 0)
    errors = sum(run["errors"] for run in results.get("stress", {}).values())
    return 1 if failed or errors else 0


if __name__ == "__main__":
    sys.exit(main())
