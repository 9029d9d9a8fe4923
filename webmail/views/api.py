"""JSON for the page's live updates: cheap counters, no message rows.

`status` answers at once; `wait` (webmail/push.py) answers when the mailbox changes or after
a short hold, whichever comes first."""

from __future__ import annotations

import hashlib

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from mailboxes import selectors
from webmail import push
from webmail.auth import mailbox_required


def _status(mailbox_id: int) -> dict:
    folders = selectors.folders_of(mailbox_id).values(
        "id", "name", "unseen_count", "message_count", "highestmodseq", "uidnext"
    )
    rows = [
        {
            "id": f["id"],
            "name": f["name"],
            "unseen": f["unseen_count"],
            "total": f["message_count"],
            "modseq": f["highestmodseq"],
            "uidnext": f["uidnext"],
        }
        for f in folders
    ]
    # The version the page sends back: any change of any folder's counters changes it.
    state = ";".join(f"{r['id']}:{r['modseq']}:{r['uidnext']}:{r['unseen']}" for r in rows)
    return {"folders": rows, "v": hashlib.sha256(state.encode()).hexdigest()[:16]}


@require_GET
@mailbox_required
def status(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_status(request.mailbox.pk))


@require_GET
@mailbox_required
def wait(request: HttpRequest) -> JsonResponse:
    """The state once it differs from `?v=` (the version the page has), or after the hold."""
    mailbox_id = request.mailbox.pk
    since = request.GET.get("v", "")
    with push.waiter(mailbox_id) as changed:
        data = _status(mailbox_id)
        if changed is not None and data["v"] == since:
            changed.wait(push.HOLD_SECONDS)
            data = _status(mailbox_id)
    data["held"] = changed is not None
    data["retry"] = 0 if changed is not None else push.FALLBACK_SECONDS
    return JsonResponse(data)


SUGGEST_SCAN = 3000  # newest messages of the mailbox read for past correspondents
SUGGEST_LIMIT = 10


@require_GET
@mailbox_required
def addresses(request: HttpRequest) -> JsonResponse:
    """Address suggestions for compose: past correspondents (senders of mail received, the
    recipients of mail sent) whose name or address contains `q`, most frequent first."""
    from webmail.compose import format_addresses, split_addresses

    query = request.GET.get("q", "").strip().lower()
    if len(query) < 2:
        return JsonResponse({"addresses": []})
    own = request.mailbox.address.lower()
    counts: dict[str, int] = {}
    names: dict[str, str] = {}
    recent = selectors.correspondents_recent(request.mailbox.pk, limit=SUGGEST_SCAN)
    for row in recent:
        for display in row:
            if not display or (query not in display.lower()):
                continue
            valid, _ = split_addresses(display)
            for name, address in valid:
                key = address.lower()
                if key == own or (query not in key and query not in name.lower()):
                    continue
                counts[key] = counts.get(key, 0) + 1
                if name and not names.get(key):
                    names[key] = name
                names.setdefault(key, "")
    # The address book first (every match), then past correspondents by frequency.
    booked: list[str] = []
    for contact in selectors.contacts_matching(request.mailbox, query, limit=SUGGEST_LIMIT):
        for address in contact.email_list:
            if query in address.lower() or query in contact.name.lower():
                booked.append(format_addresses([(contact.name, address)]))
    taken = {b.rsplit("<", 1)[-1].rstrip(">").lower() for b in booked}
    best = [k for k in sorted(counts, key=lambda k: (-counts[k], k)) if k not in taken]
    found = booked + [format_addresses([(names[k], k)]) for k in best]
    return JsonResponse({"addresses": found[:SUGGEST_LIMIT]})
