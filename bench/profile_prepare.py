"""Instructions a call of port 25's accept path and its pieces, in one process without sockets,
counted by valgrind's callgrind: repeatable on a loaded machine, and finer than
bench/profile_server.py smtp --callgrind (the whole server), whose 200-message windows move by
several percent from run to run.

    MAILHOST_DATA_DIR=<scratch dir> .venv/bin/python bench/profile_prepare.py [--calls 200]
        [--size 1024] [--out DIR] [STEP ...]

Runs itself again under callgrind (start-up takes a minute), provisions one local mailbox
(SQLite in MAILHOST_DATA_DIR, or DATABASE_URL), and for each STEP calls it 10 times to warm,
zeroes callgrind's counters, calls it --calls times and prints the instructions a call (each
step's dump stays in DIR for callgrind_annotate). The message is bench/loadgen.py's, a new
one (its own Message-ID) for each call, from sender@remote.example through 127.0.0.1:

- accept: delivery.accept.message_accept, the whole of it (the filing's transaction alone,
  not shared with other sessions' as in the server's group commit);
- prepare: message_prepare, what comes before the transaction (its bytes written and synced);
- inbound_trust, authenticate: port 25's checks, with and without our header's making;
- header_read, sender_facts, verdict: the summary's and the spam rules' header read, the
  reads before the transaction, the spam verdict (with its log line), of the same message;
- rcpt: recipient_verdict, RCPT's check when it asks the database;
- submit, submit_prepare: message_accept and message_prepare of a submission (port 587's
  DATA after AUTH: the mailbox sends from its own address to a remote recipient, resolved as
  RCPT's hook resolves it), DKIM-signed with the domain's key and spooled (bench/run.py's
  outbound load); dkim_sign, from_check: its signature (RSA included) and its From check.

Default: every step.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from profile_server import callgrind_totals  # noqa: E402  (bench/, this script's directory)

REPO = Path(__file__).resolve().parent.parent
ADDRESS = "box@profile.test"
SENDER = "sender@remote.example"
STEPS = (
    "accept",
    "prepare",
    "inbound_trust",
    "authenticate",
    "header_read",
    "sender_facts",
    "verdict",
    "rcpt",
    "submit",
    "submit_prepare",
    "dkim_sign",
    "from_check",
)
WARM = 10


def steps(count: int, size: int) -> dict:
    """Each step as a function of the call's number (its message)."""
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")
    import django

    django.setup()
    import logging

    from django.core.management import call_command
    from loadgen import make_message

    from delivery import accept, dkim, inbound, spam
    from mailboxes import headers, mda, selectors, services
    from mailboxes.models import Domain
    from mailhost.logformat import lean_records

    lean_records()  # the servers' log records (runmail's)
    for handler in logging.getLogger().handlers:
        handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - for the process's life
    call_command("migrate", verbosity=0)
    if not Domain.objects.filter(name="profile.test").exists():
        services.domain_create(name="profile.test")
        services.mailbox_create(address=ADDRESS, password="profile-password")
    raws = [make_message(i, size, SENDER, ADDRESS) for i in range(WARM + count)]
    client = accept.ClientInfo(helo="client.example", ip="127.0.0.1")
    _, resolution = accept.recipient_verdict(ADDRESS, relay_allowed=False, size=len(raws[0]))
    envelope = [accept.EnvelopeRecipient(ADDRESS, resolution=resolution)]
    trusted = [accept.inbound_trust(raw, mail_from=SENDER, client=client) for raw in raws]
    read = [headers.header_read(raw, ours) for raw, _auth, ours in trusted]
    mailbox_ids = list(resolution.mailbox_ids)

    def facts() -> tuple:
        return spam.sender_facts(mailbox_ids, SENDER, mda.scripts_read(mailbox_ids))

    known = facts()[0]
    mailbox = selectors.mailbox_get(ADDRESS)
    remote = [f"user{i}@remote.example" for i in range(WARM + count)]
    submitted = [make_message(i, size, ADDRESS, remote[i]) for i in range(WARM + count)]
    submitter = accept.ClientInfo(helo="client.example", ip="127.0.0.1", protocol="ESMTPA")

    def envelope_to(i: int) -> list:
        resolution = selectors.Resolution(address=remote[i], hosted=False, remote=(remote[i],))
        return [accept.EnvelopeRecipient(remote[i], resolution=resolution)]

    def submission(i: int) -> dict:
        return {
            "raw": submitted[i],
            "mail_from": ADDRESS,
            "client": submitter,
            "authenticated_mailbox": mailbox,
        }

    def prefixed(i: int) -> bytes:
        received = accept.received_header(
            client=submitter, queue_id="Q", recipients=remote[i : i + 1]
        )
        return received + accept.submission_headers(submitted[i]) + submitted[i]

    signed = [prefixed(i) for i in range(WARM + count)]
    return {
        "accept": lambda i: accept.message_accept(
            raw=raws[i], mail_from=SENDER, recipients=envelope, client=client
        ),
        "prepare": lambda i: accept.message_prepare(
            raw=raws[i],
            mail_from=SENDER,
            envelope=envelope,
            client=client,
            authenticated_mailbox=None,
            spool=accept.SpoolOptions(),
        ),
        "inbound_trust": lambda i: accept.inbound_trust(raws[i], mail_from=SENDER, client=client),
        "authenticate": lambda i: inbound.authenticate(
            raw=raws[i], client_ip=client.ip, helo=client.helo, mail_from=SENDER
        ),
        "header_read": lambda i: headers.header_read(trusted[i][0], trusted[i][2]),
        "sender_facts": lambda i: facts(),
        "verdict": lambda i: spam.verdict(
            raw=trusted[i][0],
            auth=trusted[i][1],
            client_ip=client.ip,
            helo=client.helo,
            mail_from=SENDER,
            mailbox_ids=mailbox_ids,
            header=read[i],
            facts=known,
        ),
        "rcpt": lambda i: accept.recipient_verdict(ADDRESS, relay_allowed=False, size=len(raws[i])),
        "submit": lambda i: accept.message_accept(recipients=envelope_to(i), **submission(i)),
        "submit_prepare": lambda i: accept.message_prepare(
            envelope=envelope_to(i), spool=accept.SpoolOptions(), **submission(i)
        ),
        "dkim_sign": lambda i: dkim.dkim_sign(
            signed[i], mail_from=ADDRESS, from_addresses=[ADDRESS]
        ),
        "from_check": lambda i: accept.from_header_check(mailbox, submitted[i]),
    }


def inside(args: argparse.Namespace) -> None:
    """Under callgrind: each step's instructions a call."""
    calls = steps(args.calls, args.size)
    for name in args.steps or STEPS:
        step = calls[name]
        for i in range(WARM):
            step(i)
        subprocess.run(
            ["callgrind_control", "-z", str(os.getpid())], check=True, capture_output=True
        )
        for i in range(args.calls):
            step(WARM + i)
        total = callgrind_totals(os.getpid(), args.out, name)
        print(f"{name:15} {total / args.calls / 1000:9.1f} k instructions a call", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("steps", nargs="*", metavar="STEP", help=", ".join(STEPS))
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--size", type=int, default=1024, help="message bytes")
    parser.add_argument("--out", type=Path, help="callgrind's dumps (default: a temporary dir)")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = set(args.steps) - set(STEPS)
    if unknown:
        parser.error(f"no such step: {', '.join(sorted(unknown))}")
    if args.inside:
        inside(args)
        return
    out = args.out or Path(tempfile.mkdtemp(prefix="profile-prepare-"))
    out.mkdir(parents=True, exist_ok=True)
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}/callgrind.%p",
        sys.executable,
        __file__,
        "--inside",
        "--calls",
        str(args.calls),
        "--size",
        str(args.size),
        "--out",
        str(out),
        *args.steps,
    ]
    # valgrind's own lines go to its stderr: only the script's are shown.
    subprocess.run(command, check=True, stderr=subprocess.DEVNULL)
    print(f"dumps in {out}")


if __name__ == "__main__":
    main()
