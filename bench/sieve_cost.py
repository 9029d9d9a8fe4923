"""CPU cost of Sieve at delivery: a 50-rule script run for every message, in process.

    MAILHOST_DATA_DIR=<scratch dir> .venv/bin/python bench/sieve_cost.py [N] [--json]

Three figures, CPU milliseconds per message (median of N runs; process time, so other load
on the machine counts less than in wall time):

- interpreter: mailboxes.sieve.run of the compiled script on bench/sample.eml;
- mda plan: mailboxes.mda.plan_mailbox, what the MDA does before the delivery transaction
  (the interpreter, its callbacks and the translation into a plan);
- accept: delivery.accept.message_accept of the message to one local mailbox, without a
  script and with the script (the whole SMTP-side cost: Received, trust headers skipped,
  resolution, blob, group commit), and the difference; interleaved, one message to a mailbox
  without a script then one to the mailbox with it, medians of each.

The script is the kind a rule editor writes: 50 rules on From, To, Subject, List-Id, size and
the envelope, with fileinto, flags and stop; the message matches the last one only, so every
test runs. Uses the SQLite database in MAILHOST_DATA_DIR (or DATABASE_URL): a scratch one.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

ADDRESS = "box@sieve.bench.test"  # has the script
PLAIN = "plain@sieve.bench.test"  # has none
RULES = 50


def script_text(rules: int = RULES) -> str:
    lines = ['require ["fileinto", "imap4flags", "envelope", "mailbox", "relational"];']
    kinds = (
        'if address :is "from" "sender{n}@lists.bench.test" {{ fileinto "Lists/{n}"; stop; }}',
        'if header :contains "subject" "[project-{n}]" {{ addflag "$Project{n}"; fileinto '
        '"Projects"; stop; }}',
        'if header :contains "list-id" "list{n}.bench.test" {{ fileinto :create "Lists/L{n}"; '
        "stop; }}",
        'if envelope :domain :is "from" "partner{n}.bench.test" {{ fileinto "Partners"; stop; }}',
        'if allof (size :over 5M, header :contains "x-rule" "{n}") {{ fileinto "Big"; stop; }}',
    )
    for n in range(rules - 1):
        lines.append(kinds[n % len(kinds)].format(n=n))
    lines.append('if header :contains "subject" "" { addflag "$Seen-by-rules"; keep; }')
    return "\n".join(lines) + "\n"


def cpu_ms(fn, runs: int) -> float:  # noqa: ANN001
    samples = []
    for _ in range(runs):
        start = time.process_time()
        fn()
        samples.append((time.process_time() - start) * 1000)
    return round(statistics.median(samples), 3)


def accept_pair_ms(raw: bytes, runs: int) -> tuple[float, float]:
    """Median CPU ms of message_accept to the mailbox without a script and to the one with
    it, interleaved (one of each per round) so that drift in the machine's load hits both."""
    from delivery import accept

    def one(address: str) -> float:
        start = time.process_time()
        result = accept.message_accept(
            raw=raw, mail_from="sender@remote.bench.test", recipients=[address]
        )
        spent = (time.process_time() - start) * 1000
        assert result.accepted, result
        return spent

    plain, scripted = [], []
    for _ in range(runs):
        plain.append(one(PLAIN))
        scripted.append(one(ADDRESS))
    return round(statistics.median(plain), 3), round(statistics.median(scripted), 3)


def give_script(mailbox, text: str) -> None:  # noqa: ANN001
    from mailboxes import services

    services.sievescript_put(mailbox=mailbox, name="rules", text=text, activate=True)


def measure(runs: int) -> dict:
    from django.conf import settings

    from mailboxes import mda, services, sieve
    from mailboxes.models import Domain

    settings.MAILHOST_GROUP_COMMIT_MAX = 1  # one message at a time, no batching to share
    call_command("migrate", verbosity=0)
    if not Domain.objects.filter(name="sieve.bench.test").exists():
        services.domain_create(name="sieve.bench.test")
    mailbox = services.mailbox_create(address=ADDRESS, password="bench-password-1")
    services.mailbox_create(address=PLAIN, password="bench-password-1")
    raw = (REPO / "bench" / "sample.eml").read_bytes()
    text = script_text()
    script = sieve.compile(text)
    context = sieve.SieveContext(raw=raw, envelope_from="sender@remote.bench.test")
    result = sieve.run(script, context)
    assert not result.errors, result.errors
    interpreter = cpu_ms(lambda: sieve.run(script, sieve.SieveContext(raw=raw)), runs)
    info = mda.DeliveryInfo(raw=raw, mail_from="sender@remote.bench.test")
    entry = mda._Mailbox(mailbox.id, ADDRESS, "sieve.bench.test", (("user script", text),))
    plan = mda.plan_mailbox(entry, info)
    assert not plan.error, plan.error
    planning = cpu_ms(lambda: mda.plan_mailbox(entry, info), runs)
    give_script(mailbox, text)
    accept_pair_ms(raw, 5)  # warm-up: imports, first queries
    without, with_script = accept_pair_ms(raw, runs)
    return {
        "rules": RULES,
        "runs": runs,
        "message_bytes": len(raw),
        "script_bytes": len(text.encode()),
        "interpreter_cpu_ms": interpreter,
        "mda_plan_cpu_ms": planning,
        "accept_cpu_ms_without_script": without,
        "accept_cpu_ms_with_script": with_script,
        "accept_cpu_ms_added": round(with_script - without, 3),
    }


def main() -> None:
    runs = int(next((a for a in sys.argv[1:] if a.isdigit()), "200"))
    figures = measure(runs)
    if "--json" in sys.argv:
        print(json.dumps(figures))
        return
    for name, value in figures.items():
        print(f"{name:32} {value}")


if __name__ == "__main__":
    main()
