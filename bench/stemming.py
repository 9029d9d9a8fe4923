"""What the webmail search's stemming costs (issue 19): its body search with and without a
word's other inflections (mailboxes.search.Inflected), in process, alternated on the same
messages.

    .venv/bin/python bench/stemming.py [--messages 30000] [--postgres] [--rounds 3]

bench/fts.py's messages (about 1 KB bodies drawn from a random vocabulary, "quarterly" in
every other one), with "quarters" in every third and "quartered" in every fifth (inflections of
"quarterly": many texts) and "deployments" in a few (a rare word). Searched: "quarterly"
(common, inflections in many texts), "deploying" (rare: found only through "deployments") and
"deployments" (rare: its substring finds it, the stem adds nothing but its lookups). Prints one
JSON object: for each word and mode ("off": the substring search alone, as before; "on": the
webmail's), the median CPU milliseconds of each round (this process's, and on a local
PostgreSQL its backend's, by /proc's schedstat), and the messages shown. On
PostgreSQL a fresh database on DATABASE_URL's server (named after DATABASE_URL's own
database when it names one: mh_x_stemming_PID), dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WORDS = ("quarterly", "deploying", "deployments")


def body(rng: random.Random, vocabulary: list[str], index: int) -> str:
    words = rng.choices(vocabulary, k=160)
    for every, word in ((2, "quarterly"), (3, "quarters"), (5, "quartered")):
        if index % every == 0:
            words[rng.randrange(len(words))] = word
    if index % 10_000 == 7:
        words[rng.randrange(len(words))] = "deployments"
    return " ".join(words)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL (DATABASE_URL)")
    parser.add_argument("--rounds", type=int, default=3, help="off/on pairs, alternated")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="mailhost-stemming-"))
    os.environ["MAILHOST_DATA_DIR"] = str(root / "data")
    os.environ.pop("REDIS_URL", None)
    from bench import fts
    from bench.mailhost_process import PostgresDatabase

    database = None
    if args.postgres:
        server = os.environ.get("DATABASE_URL") or "postgres://root@127.0.0.1:5432/postgres"
        named = urlsplit(server).path.strip("/")
        prefix = named if named and named != "postgres" else "mh"
        database = PostgresDatabase(server, f"{prefix}_stemming_{os.getpid()}")
        database.create()
        os.environ["DATABASE_URL"] = database.url
    else:
        os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, connections

    try:
        call_command("migrate", verbosity=0)
        rng = random.Random(19)
        vocabulary = [
            "".join(rng.choices("abcdefghijklmnoprstuvw", k=rng.randint(3, 9))) for _ in range(5000)
        ]
        fts.populate([fts.message(i, body(rng, vocabulary, i)) for i in range(args.messages)])
        from mailboxes import fulltext
        from mailboxes.search import TextKey
        from mailboxes.selectors import mailbox_get
        from webmail import search as webmail_search

        fulltext.index_all()
        if database:
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        mailbox = mailbox_get(fts.USER)
        stemmed = webmail_search.body_stemmed
        modes = {"off": lambda query: TextKey("body", query), "on": stemmed}
        figures: dict = {
            "messages": args.messages,
            "database": "postgresql" if database else "sqlite",
            "inflections_of_quarterly": fulltext.inflections("quarterly"),
        }
        for _round in range(args.rounds):
            for mode, criterion in modes.items():
                webmail_search.body_stemmed = criterion
                for word in WORDS:

                    def search(word: str = word):  # noqa: ANN202
                        return webmail_search.search(mailbox=mailbox, query=word, where="body")

                    figures[f"{word}_{mode}_shown"] = len(search().messages)
                    _wall, cpu = fts.median_wall_cpu_ms(search)
                    figures.setdefault(f"{word}_{mode}_cpu_ms", []).append(cpu)
        webmail_search.body_stemmed = stemmed
        print(json.dumps(figures))
    finally:
        connections.close_all()
        if database:
            database.drop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
