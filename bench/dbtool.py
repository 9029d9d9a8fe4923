"""Database chores for the bench, run in Mailhost's environment (same DATABASE_URL, data dir).

    python bench/dbtool.py setup DOMAIN ADDRESS.. [populate ADDRESS FOLDER COUNT..]
                                                            # migrate and provision (stdin: password)
    python bench/dbtool.py populate ADDRESS FOLDER COUNT.. # a large folder, fast
    python bench/dbtool.py count ADDRESS FOLDER             # messages in a folder
    python bench/dbtool.py folder-id ADDRESS FOLDER         # the folder's id (webmail URLs)
    python bench/dbtool.py outbound                         # spool recipients by status

`setup` does in one process what `manage.py migrate`, `adddomain` and `addmailbox` (all with
the password read from standard input) and `populate` would do in several: it prints
"migrated" once the schema is there, so that runmail can start beside the rest.

`populate` is how the bench builds 1k/10k/100k-message folders in seconds: one message is
stored through the services (blob written and synced, one Blob row), then Message rows that
all share that blob are bulk-inserted with consecutive UIDs, and the folder's counters
(uidnext, highestmodseq, message_count, unseen_count, total_size) and the mailbox's used_bytes
and used_messages are set to match, exactly as message_deliver would leave them. Sharing one
blob is what IMAP COPY does, so every protocol reads these rows like any other.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")

import django  # noqa: E402

django.setup()

from django.db import transaction  # noqa: E402
from django.db.models import Count, F  # noqa: E402
from django.utils import timezone  # noqa: E402

from mailboxes import headers, services  # noqa: E402
from mailboxes.models import Folder, Mailbox, Message  # noqa: E402
from mailboxes.selectors import mailbox_get  # noqa: E402


def sample_message(index: int, size: int = 2048) -> bytes:
    head = (
        f"From: Sender {index} <sender{index}@example.net>\r\n"
        f"To: Bench <box@bench.test>\r\n"
        f"Subject: bench message {index}\r\n"
        f"Date: Sun, 29 Nov 2026 01:00:00 +0000\r\n"
        f"Message-ID: <bench-{index}@example.net>\r\n"
        f"MIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body


def folder_of(address: str, name: str) -> Folder:
    mailbox = mailbox_get(address)
    if mailbox is None:
        raise SystemExit(f"no mailbox {address}")
    folder = Folder.objects.filter(mailbox=mailbox, name=name).first()
    if folder is None:
        folder = services.folder_create(mailbox=mailbox, name=name)
    return folder


def populate(address: str, name: str, count: int) -> dict:
    folder = folder_of(address, name)
    raw = sample_message(0)
    summary = headers.summarize(raw)
    size = len(raw)
    batch = 5000
    now = timezone.now()
    with transaction.atomic():
        blob = services.blob_store(raw)
        locked = Folder.objects.select_for_update().get(pk=folder.pk)
        first_uid = locked.uidnext
        modseq = locked.highestmodseq + 1
        for start in range(0, count, batch):
            rows = []
            for offset in range(start, min(count, start + batch)):
                rows.append(
                    Message(
                        folder_id=folder.pk,
                        uid=first_uid + offset,
                        modseq=modseq,
                        blob=blob,
                        size=size,
                        internal_date=now - timedelta(seconds=count - offset),
                        # Every third message read, so searches have both kinds.
                        seen=offset % 3 == 0,
                        **{**summary, "subject": f"bench message {offset}"},
                    )
                )
            Message.objects.bulk_create(rows)
        unseen = count - len(range(0, count, 3))
        Folder.objects.filter(pk=folder.pk).update(
            uidnext=first_uid + count,
            highestmodseq=modseq,
            first_recent_uid=first_uid + count,
            message_count=F("message_count") + count,
            unseen_count=F("unseen_count") + unseen,
            total_size=F("total_size") + size * count,
        )
        Mailbox.objects.filter(pk=folder.mailbox_id).update(
            used_bytes=F("used_bytes") + size * count, used_messages=F("used_messages") + count
        )
    return {"folder": name, "count": count, "first_uid": first_uid}


def setup(args: list[str], password: str) -> dict:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print("migrated", flush=True)
    domain, *addresses = args[: args.index("populate")] if "populate" in args else args
    services.domain_create(name=domain)
    for address in addresses:
        services.mailbox_create(address=address, password=password)
    folders = args[args.index("populate") + 1 :] if "populate" in args else []
    return {"domain": domain, "mailboxes": addresses, "folders": populate_many(folders)}


def populate_many(args: list[str]) -> list[dict]:
    """ADDRESS FOLDER COUNT [FOLDER COUNT ...]"""
    pairs = zip(args[1::2], args[2::2])
    return [populate(args[0], name, int(number)) for name, number in pairs]


def count(address: str, name: str) -> int:
    mailbox = mailbox_get(address)
    return Message.objects.filter(folder__mailbox=mailbox, folder__name=name).count()


def outbound() -> dict:
    from delivery.models import OutboundRecipient

    rows = OutboundRecipient.objects.values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "setup":
        result = setup(args, sys.stdin.readline().rstrip("\r\n"))
    elif command == "populate":
        result = populate_many(args)
    elif command == "count":
        result = count(args[0], args[1])
    elif command == "folder-id":
        result = folder_of(args[0], args[1]).pk
    elif command == "outbound":
        result = outbound()
    else:
        raise SystemExit(f"unknown command {command}")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
