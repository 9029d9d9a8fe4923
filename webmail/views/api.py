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
