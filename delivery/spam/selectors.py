"""Reads for the spam verdict: classifier counts, known senders, allow/block lists."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connection, connections

from delivery.models import KnownSender, SpamToken, SpamTraining
from delivery.spam.classifier import Totals
from mailhost.plainsql import Read, selects_together

TOTALS_TOKEN = 0  # SpamToken row holding a mailbox's trained message counts


def _table(model) -> str:  # noqa: ANN001
    return connections[DEFAULT_DB_ALIAS].ops.quote_name(model._meta.db_table)


def _marks(values: list) -> str:
    return ", ".join(["%s"] * len(values))


def classifier_totals(mailbox_ids: Iterable[int]) -> dict[int, Totals]:
    """Each mailbox's trained counts (mailboxes never trained are left out)."""
    return mailbox_facts(mailbox_ids, "")[0]


def known_sender_mailboxes(mailbox_ids: Iterable[int], address: str) -> set[int]:
    """Those of these mailboxes that trust `address` (they wrote to it, or un-junked it)."""
    return mailbox_facts(mailbox_ids, address)[1]


def mailbox_facts(mailbox_ids: Iterable[int], sender: str) -> tuple[dict[int, Totals], set[int]]:
    """classifier_totals and known_sender_mailboxes in one statement."""
    return mailbox_facts_read(mailbox_ids, sender).run()


def mailbox_facts_read(
    mailbox_ids: Iterable[int], sender: str
) -> Read[tuple[dict[int, Totals], set[int]]]:
    """mailbox_facts as a Read (the hot path of port 25: plain SQL, since building these with
    the ORM cost more CPU than running them)."""
    ids = sorted(set(mailbox_ids))
    if not ids:
        return Read(None, [], lambda _: ({}, set()))
    sql = _mailbox_facts_sql(len(ids), bool(sender))
    params: list = [TOTALS_TOKEN, *ids]
    if sender:
        params += [sender.lower(), *ids]

    def answer(rows: list[tuple]) -> tuple[dict[int, Totals], set[int]]:
        totals: dict[int, Totals] = {}
        known: set[int] = set()
        for kind, mailbox_id, spam, ham in rows:
            if kind:
                known.add(mailbox_id)
            else:
                totals[mailbox_id] = Totals(spam, ham)
        return totals, known

    return Read(sql, params, answer, columns=4)


@functools.lru_cache(maxsize=64)
def _mailbox_facts_sql(mailboxes: int, sender: bool) -> str:
    """mailbox_facts_read's statement for so many mailboxes, with or without the known
    senders' half, made once (for the one database a process uses), not for every message."""
    marks = ", ".join(["%s"] * mailboxes)
    sql = (
        f"SELECT 0, mailbox_id, spam, ham FROM {_table(SpamToken)}"
        f" WHERE token = %s AND mailbox_id IN ({marks})"
    )
    if sender:
        sql += (
            f" UNION ALL SELECT 1, mailbox_id, 0, 0 FROM {_table(KnownSender)}"
            f" WHERE address = %s AND mailbox_id IN ({marks})"
        )
    return sql


@dataclass(frozen=True)
class SenderFacts:
    """What the spam verdict reads of its mailboxes about one sender (mailbox_reasons)."""

    mailbox_ids: tuple[int, ...]
    sender: str
    lists: dict[int, str | None]  # sender_list_verdicts
    totals: dict[int, Totals]  # classifier_totals
    known: set[int]  # known_sender_mailboxes

    def about(self, mailbox_ids: Iterable[int], sender: str) -> bool:
        return sender == self.sender and tuple(sorted(set(mailbox_ids))) == self.mailbox_ids


def sender_facts(mailbox_ids: Iterable[int], sender: str, *also: Read) -> tuple[SenderFacts, list]:
    """The SenderFacts of `mailbox_ids` and `sender`, and the answers of the caller's `also`
    (reads that depend on none of these), all in one round trip on PostgreSQL (port 25 asks
    them for every message: selects_together; `also` are plain SELECTs too)."""
    ids = tuple(sorted(set(mailbox_ids)))
    lists, (totals, known), *others = selects_together(
        [sender_list_verdicts_read(ids, sender), mailbox_facts_read(ids, sender), *also]
    )
    return SenderFacts(ids, sender, lists, totals, known), others


def classifier_counts(
    mailbox_ids: Iterable[int], hashes: list[int]
) -> dict[int, dict[int, tuple[int, int]]]:
    """{mailbox id: {token hash: (spam, ham)}} for the tokens these mailboxes have seen."""
    found: dict[int, dict[int, tuple[int, int]]] = defaultdict(dict)
    ids = sorted(set(mailbox_ids))
    if not ids or not hashes:
        return found
    with connection.cursor() as cursor:
        for start in range(0, len(hashes), 900):  # SQLite's bound parameters
            chunk = hashes[start : start + 900]
            cursor.execute(
                f"SELECT mailbox_id, token, spam, ham FROM {_table(SpamToken)}"
                f" WHERE mailbox_id IN ({_marks(ids)}) AND token IN ({_marks(chunk)})",
                [*ids, *chunk],
            )
            for mailbox_id, token, spam, ham in cursor.fetchall():
                found[mailbox_id][token] = (spam, ham)
    return found


def sender_list_verdicts(mailbox_ids: Iterable[int], sender: str) -> dict[int, str | None]:
    """What each mailbox's allow/block lists say of `sender`: "allow", "block" or None
    (the lists and their rule belong to mailboxes: selectors.sender_lists)."""
    return sender_list_verdicts_read(mailbox_ids, sender).run()


def sender_list_verdicts_read(
    mailbox_ids: Iterable[int], sender: str
) -> Read[dict[int, str | None]]:
    from mailboxes import selectors

    ids = list(mailbox_ids)
    if not sender or not ids:
        return Read(None, [], lambda _: dict.fromkeys(ids))
    return selectors.sender_lists_read(ids, sender)


def trainings_pending(mailbox_id: int | None = None) -> list[int]:
    """Ids of SpamTraining rows whose wanted class is not the counted one, oldest first."""
    from django.db.models import F, Q

    rows = SpamTraining.objects.filter(Q(trained__isnull=True) | ~Q(trained=F("spam")))
    if mailbox_id is not None:
        rows = rows.filter(mailbox_id=mailbox_id)
    return list(rows.order_by("updated_at", "id").values_list("id", flat=True))
