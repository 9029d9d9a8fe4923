"""JSON for the page's poller: cheap counters, no message rows."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from mailboxes import selectors
from webmail.auth import mailbox_required


@require_GET
@mailbox_required
def status(request: HttpRequest) -> JsonResponse:
    folders = selectors.folders_of(request.mailbox.pk).values(
        "id", "name", "unseen_count", "message_count", "highestmodseq", "uidnext"
    )
    return JsonResponse(
        {
            "folders": [
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
        }
    )
