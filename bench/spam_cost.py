"""Cost of the builtin spam verdict per inbound message, and the classifier's size.

    MAILHOST_DATA_DIR=<scratch dir> .venv/bin/python bench/spam_cost.py [N] [--json]

CPU milliseconds per message (median of N runs; process time), on bench/sample.eml:

- tokens: the classifier's tokenizer and hashes of one message (delivery/spam/tokens.py);
- verdict, untrained: delivery.spam.verdict for one mailbox that never trained (rules, lists,
  known senders: three small queries; no DNS lists, which are off by default);
- verdict, trained: the same for a mailbox whose classifier learned TRAINED spam and TRAINED
  ham messages (synthetic, from two vocabularies that share common words), i.e. with the
  classifier's token lookup and Fisher combining; and on a 100 KiB text message (the
  tokenizer reads at most 16 KiB of decoded text);
- training: spam_train plus the trainer, per message (off the SMTP path: after the move's
  commit);
- accept: delivery.accept.message_accept to one local mailbox with MAILHOST_SPAM_BACKEND
  builtin and off, and the difference (the verdict's cost on the SMTP path).

Size: the trained mailbox's SpamToken rows and the table's bytes on disk (SQLite's dbstat),
and the Python memory one verdict allocates at its peak (tracemalloc). Nothing of the
classifier stays in memory between messages. Uses the SQLite database in MAILHOST_DATA_DIR
(or DATABASE_URL): a scratch one.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

DOMAIN = "spam.bench.test"
TRAINED = 200

COMMON = "the and you for with this that your from have will are our all more about".split()
SPAM_WORDS = (
    "casino prize winner claim offer cheap replica watches pills bonus jackpot limited free "
    "money credit loan urgent click unsubscribe discount deal bitcoin investment guaranteed"
).split()
HAM_WORDS = (
    "meeting agenda project review budget quarterly report draft minutes thursday tuesday "
    "schedule team release notes comments attached invoice lunch family weekend photos"
).split()


def synthetic(kind: str, n: int, rng: random.Random) -> bytes:
    words = SPAM_WORDS if kind == "spam" else HAM_WORDS
    body = " ".join(rng.choice(words if rng.random() < 0.6 else COMMON) for _ in range(120))
    subject = " ".join(rng.choice(words) for _ in range(5))
    return (
        f"From: {kind}{n % 37}@{kind}.example\r\nTo: box@{DOMAIN}\r\nSubject: {subject}\r\n"
        f"Date: Tue, 5 Mar 2024 10:00:00 +0000\r\nMessage-ID: <{kind}{n}@{kind}.example>\r\n"
        f"\r\n{body}\r\n"
    ).encode()


def cpu_ms(fn, runs: int) -> float:  # noqa: ANN001
    samples = []
    for _ in range(runs):
        start = time.process_time()
        fn()
        samples.append((time.process_time() - start) * 1000)
    return round(statistics.median(samples), 3)


def accept_ms(raw: bytes, address: str, runs: int) -> float:
    from delivery import accept

    start = time.process_time()
    for _ in range(runs):
        result = accept.message_accept(
            raw=raw, mail_from="sender@remote.bench.test", recipients=[address]
        )
        assert result.accepted, result
    return round((time.process_time() - start) * 1000 / runs, 3)


def table_bytes() -> int | None:
    from django.db import connection

    if connection.vendor != "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_total_relation_size('delivery_spamtoken')")
            return cursor.fetchone()[0]
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT SUM(pgsize) FROM dbstat WHERE name = 'delivery_spamtoken'"
                " OR name LIKE '%spamtoken%'"
            )
            return cursor.fetchone()[0]
    except Exception:  # dbstat not compiled in
        return None


def measure(runs: int) -> dict:
    from django.conf import settings

    from delivery import spam
    from delivery.models import SpamToken
    from delivery.spam.classifier import Totals
    from delivery.spam.selectors import classifier_totals
    from delivery.spam.services import training_run
    from delivery.spam.tokens import message_hashes
    from mailboxes import selectors, services
    from mailboxes.models import Domain, Message

    settings.MAILHOST_GROUP_COMMIT_MAX = 1
    settings.MAILHOST_INBOUND_CHECKS = False  # their cost is bench/inbound_checks.py's
    call_command("migrate", verbosity=0)
    if not Domain.objects.filter(name=DOMAIN).exists():
        services.domain_create(name=DOMAIN)
    fresh = services.mailbox_create(address=f"fresh@{DOMAIN}", password="bench-password-1")
    box = services.mailbox_create(address=f"box@{DOMAIN}", password="bench-password-1")
    raw = (REPO / "bench" / "sample.eml").read_bytes()

    # Train `box`: deliver the corpus to it, then say what each message is, as a move would.
    rng = random.Random(16)
    corpus = [(kind, synthetic(kind, n, rng)) for n in range(TRAINED) for kind in ("spam", "ham")]
    for _, message in corpus:
        services.message_deliver(raw=message, recipients=[box.address])
    ids = list(
        Message.objects.filter(folder__mailbox=box).order_by("id").values_list("id", flat=True)
    )
    started = time.process_time()
    for (kind, _), message_id in zip(corpus, ids):
        services.spam_train(mailbox=box, message_ids=[message_id], spam=kind == "spam")
        training_run()  # what the move's on_commit does
    training = (time.process_time() - started) * 1000 / len(corpus)
    assert classifier_totals([box.pk])[box.pk] == Totals(TRAINED, TRAINED)

    def verdict(mailbox, message: bytes = raw):  # noqa: ANN001, ANN202
        return spam.verdict(
            raw=message,
            auth=None,
            client_ip="198.51.100.25",
            helo="mail.remote.bench.test",
            mailbox_ids=[mailbox.pk],
            mail_from="sender@remote.bench.test",
        )

    probe = synthetic("spam", 9999, random.Random(99))
    assert box.pk in verdict(box, probe).junk_mailbox_ids  # the trained classifier works
    assert box.pk not in verdict(box, synthetic("ham", 9999, random.Random(98))).junk_mailbox_ids
    tokens = cpu_ms(lambda: message_hashes(raw), runs)
    untrained = cpu_ms(lambda: verdict(fresh), runs)
    trained = cpu_ms(lambda: verdict(box), runs)
    split = raw.index(b"\r\n\r\n") + 4 if b"\r\n\r\n" in raw else raw.index(b"\n\n") + 2
    head, body = raw[:split], raw[split:]
    large = head + body * (100 * 1024 // len(body) + 1)
    trained_large = cpu_ms(lambda: verdict(box, large), max(10, runs // 5))
    tracemalloc.start()
    verdict(box)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    settings.MAILHOST_SPAM_BACKEND = "off"
    accept_ms(raw, box.address, 5)  # warm-up
    off = accept_ms(raw, box.address, runs)
    settings.MAILHOST_SPAM_BACKEND = "builtin"
    on = accept_ms(raw, box.address, runs)
    rows = SpamToken.objects.filter(mailbox=box).count()
    assert selectors.mailbox_get(box.address) is not None
    return {
        "runs": runs,
        "message_bytes": len(raw),
        "trained_messages": 2 * TRAINED,
        "tokens_cpu_ms": tokens,
        "verdict_untrained_cpu_ms": untrained,
        "verdict_trained_cpu_ms": trained,
        "verdict_trained_100kb_cpu_ms": trained_large,
        "training_cpu_ms_per_message": round(training, 3),
        "accept_cpu_ms_backend_off": off,
        "accept_cpu_ms_builtin": on,
        "accept_cpu_ms_added": round(on - off, 3),
        "classifier_rows": rows,
        "classifier_table_bytes": table_bytes(),
        "verdict_peak_python_kib": round(peak / 1024, 1),
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
