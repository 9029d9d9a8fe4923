"""The reader's own allow and block lists of senders (the admin keeps the domain's)."""

from __future__ import annotations

from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_POST

from mailboxes import selectors, senderlists, services
from mailboxes.exceptions import MailhostError
from webmail.auth import mailbox_required
from webmail.views.common import folder_items


@require_GET
@mailbox_required
def senders_view(request: HttpRequest) -> HttpResponse:
    entries = [
        {"entry": e, "pattern": senderlists.pattern_display(e.pattern)}
        for e in selectors.sender_list_entries(mailbox=request.mailbox)
    ]
    return render(
        request,
        "webmail/senders.html",
        {
            "folders": folder_items(request.mailbox.pk),
            "allowed": [e for e in entries if e["entry"].action == senderlists.ALLOW],
            "blocked": [e for e in entries if e["entry"].action == senderlists.BLOCK],
        },
    )


@require_POST
@mailbox_required
def sender_add(request: HttpRequest) -> HttpResponse:
    pattern = request.POST.get("pattern", "").strip()
    action = request.POST.get("action", "")
    if action not in (senderlists.ALLOW, senderlists.BLOCK):
        return HttpResponseBadRequest("unknown action")
    try:
        entry = services.sender_list_add(mailbox=request.mailbox, pattern=pattern, action=action)
    except MailhostError as exc:
        flash.error(
            request,
            gettext("Could not add “%(pattern)s”: %(error)s") % {"pattern": pattern, "error": exc},
        )
        return redirect("webmail:senders")
    shown = senderlists.pattern_display(entry.pattern)
    if action == senderlists.ALLOW:
        flash.success(
            request, gettext("Mail from %(sender)s never goes to Junk now.") % {"sender": shown}
        )
    else:
        flash.success(
            request, gettext("Mail from %(sender)s goes to Junk now.") % {"sender": shown}
        )
    return redirect("webmail:senders")


@require_POST
@mailbox_required
def sender_remove(request: HttpRequest, entry_id: int) -> HttpResponse:
    if services.sender_list_remove(mailbox=request.mailbox, entry_id=entry_id):
        flash.success(request, gettext("Removed from the list."))
    else:
        flash.error(request, gettext("That entry is not on your lists."))
    return redirect("webmail:senders")
