"""Reads for the spam verdict: classifier counts, known senders, allow/block lists."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from delivery.models import KnownSender, SpamToken, SpamTraining
from delivery.spam.classifier import Totals

TOTALS_TOKEN = 0  # SpamToken row holding a mailbox's trained message counts


def classifier_totals(mailbox_ids: Iterable[int]) -> dict[int, Totals]:
    """Each mailbox's trained counts (mailboxes never trained are left out)."""
    rows = SpamToken.objects.filter(mailbox_id__in=list(mailbox_ids), token=TOTALS_TOKEN)
    return {m: Totals(s, h) for m, s, h in rows.values_list("mailbox_id", "spam", "ham")}


def classifier_counts(
    mailbox_ids: Iterable[int], hashes: list[int]
) -> dict[int, dict[int, tuple[int, int]]]:
    """{mailbox id: {token hash: (spam, ham)}} for the tokens these mailboxes have seen."""
    found: dict[int, dict[int, tuple[int, int]]] = defaultdict(dict)
    ids = list(mailbox_ids)
    for start in range(0, len(hashes), 900):  # SQLite's bound parameters
        rows = SpamToken.objects.filter(mailbox_id__in=ids, token__in=hashes[start : start + 900])
        for mailbox_id, token, spam, ham in rows.values_list("mailbox_id", "token", "spam", "ham"):
            found[mailbox_id][token] = (spam, ham)
    return found


def known_sender_mailboxes(mailbox_ids: Iterable[int], address: str) -> set[int]:
    """Those of these mailboxes that trust `address` (they wrote to it, or un-junked it)."""
    if not address:
        return set()
    rows = KnownSender.objects.filter(mailbox_id__in=list(mailbox_ids), address=address.lower())
    return set(rows.values_list("mailbox_id", flat=True))


def sender_list_verdicts(mailbox_ids: Iterable[int], sender: str) -> dict[int, str | None]:
    """What each mailbox's allow/block lists say of `sender`: "allow", "block" or None.

    The lists and their rule belong to mailboxes (selectors.sender_lists); before they exist
    every answer is None."""
    from mailboxes import selectors

    lists = getattr(selectors, "sender_lists", None)
    ids = list(mailbox_ids)
    if lists is None or not sender or not ids:
        return dict.fromkeys(ids)
    return lists(ids, sender)


def trainings_pending(mailbox_id: int | None = None) -> list[int]:
    """Ids of SpamTraining rows whose wanted class is not the counted one, oldest first."""
    from django.db.models import F, Q

    rows = SpamTraining.objects.filter(Q(trained__isnull=True) | ~Q(trained=F("spam")))
    if mailbox_id is not None:
        rows = rows.filter(mailbox_id=mailbox_id)
    return list(rows.order_by("updated_at", "id").values_list("id", flat=True))
