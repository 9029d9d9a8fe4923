"""The search page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from webmail import search as search_module
from webmail.auth import mailbox_required
from webmail.views.common import folder_for, folder_items
from webmail.views.mailbox import row


@require_GET
@mailbox_required
def search_view(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:200]
    where = request.GET.get("in", "any")
    if where not in search_module.FIELDS:
        where = "any"
    scope = request.GET.get("folder", "")
    folder = folder_for(request, int(scope)) if scope.isdigit() else None
    result = search_module.search(mailbox=request.mailbox, query=query, folder=folder, where=where)
    rows = [row(m, show_folder=folder is None) for m in result.messages]
    return render(
        request,
        "webmail/search.html",
        {
            "folders": folder_items(request.mailbox.pk),
            "query": query,
            "where": where,
            "fields": search_module.FIELDS,
            "scope_folder": folder,
            "rows": rows,
            "result": result,
            "scan_limit": search_module.BODY_SCAN_LIMIT,
        },
    )
