"""Managing folders: create, rename, delete, share (through the same services as IMAP)."""

from __future__ import annotations

from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from mailboxes import selectors, services
from mailboxes.exceptions import MailhostError, NotFound
from mailboxes.folders import HIERARCHY_DELIMITER
from webmail.auth import mailbox_required
from webmail.views.common import folder_for, folder_items, human_size


@require_GET
@mailbox_required
def folders_view(request: HttpRequest) -> HttpResponse:
    items = folder_items(request.mailbox.pk)
    rows = [{"item": i, "size": human_size(i.folder.total_size)} for i in items]
    return render(
        request,
        "webmail/folders.html",
        {"folders": items, "rows": rows, "delimiter": HIERARCHY_DELIMITER},
    )


@require_POST
@mailbox_required
def folder_create(request: HttpRequest) -> HttpResponse:
    name = request.POST.get("name", "").strip()
    parent = request.POST.get("parent", "").strip()
    if parent:
        parent_folder = folder_for(request, int(parent)) if parent.isdigit() else None
        if parent_folder is None:
            flash.error(request, gettext("Unknown parent folder."))
            return redirect("webmail:folders")
        name = f"{parent_folder.name}{HIERARCHY_DELIMITER}{name}"
    try:
        folder = services.folder_create(mailbox=request.mailbox, name=name)
    except MailhostError as exc:
        flash.error(
            request,
            gettext("Could not create “%(name)s”: %(error)s") % {"name": name, "error": exc},
        )
        return redirect("webmail:folders")
    flash.success(request, gettext("Folder “%(name)s” created.") % {"name": folder.name})
    return redirect("webmail:folders")


@require_POST
@mailbox_required
def folder_rename(request: HttpRequest, folder_id: int) -> HttpResponse:
    folder = folder_for(request, folder_id)
    new_name = request.POST.get("name", "").strip()
    if folder.special_use or folder.name == "INBOX":
        flash.error(
            request,
            gettext("“%(name)s” is a special folder and keeps its name.") % {"name": folder.name},
        )
        return redirect("webmail:folders")
    old = folder.name
    try:
        services.folder_rename(folder=folder, new_name=new_name)
    except MailhostError as exc:
        flash.error(
            request, gettext("Could not rename “%(name)s”: %(error)s") % {"name": old, "error": exc}
        )
        return redirect("webmail:folders")
    flash.success(
        request, gettext("“%(old)s” renamed to “%(new)s”.") % {"old": old, "new": new_name}
    )
    return redirect("webmail:folders")


@require_POST
@mailbox_required
def folder_delete(request: HttpRequest, folder_id: int) -> HttpResponse:
    folder = folder_for(request, folder_id)
    if folder.special_use or folder.name == "INBOX":
        flash.error(
            request,
            gettext("“%(name)s” is a special folder and cannot be deleted.")
            % {"name": folder.name},
        )
        return redirect("webmail:folders")
    try:
        services.folder_delete(folder=folder)
    except MailhostError as exc:
        flash.error(
            request,
            gettext("Could not delete “%(name)s”: %(error)s") % {"name": folder.name, "error": exc},
        )
        return redirect("webmail:folders")
    flash.success(
        request, gettext("Folder “%(name)s” deleted with its messages.") % {"name": folder.name}
    )
    return redirect("webmail:folders")


# RFC 4314 rights behind the two choices the Sharing page offers.
SHARE_ACCESS = {
    "read": (gettext_lazy("Read only"), "lr"),
    "write": (gettext_lazy("Read and write"), "lrswipkxte"),
}


def _access_label(rights: str) -> str:
    for label, granted in SHARE_ACCESS.values():
        if rights == granted:
            return str(label)
    return gettext("Custom (%(rights)s)") % {"rights": rights}  # set over IMAP SETACL


@mailbox_required
def folder_sharing(request: HttpRequest, folder_id: int) -> HttpResponse:
    """A folder's Sharing settings: who else may read it, or read and write it (RFC 4314
    rights behind the two choices; IMAP clients see the same list with GETACL)."""
    folder = folder_for(request, folder_id)
    if request.method == "POST":
        domain_wide = request.POST.get("who") == "domain"
        identifier = "anyone" if domain_wide else request.POST.get("address", "").strip()
        try:
            if request.POST.get("action") == "remove":
                services.folder_acl_delete(folder=folder, identifier=identifier)
                flash.success(request, gettext("Sharing removed."))
            else:
                _label, rights = SHARE_ACCESS.get(
                    request.POST.get("access", ""), SHARE_ACCESS["read"]
                )
                services.folder_acl_set(folder=folder, identifier=identifier, rights=rights)
                if domain_wide:
                    text = gettext("“%(name)s” shared with everyone in your domain.")
                else:
                    text = gettext("“%(name)s” shared with %(address)s.")
                flash.success(request, text % {"name": folder.name, "address": identifier})
        except NotFound:
            flash.error(
                request, gettext("There is no mailbox %(address)s here.") % {"address": identifier}
            )
        except MailhostError as exc:
            flash.error(
                request,
                gettext("Could not share “%(name)s”: %(error)s")
                % {"name": folder.name, "error": exc},
            )
        return redirect("webmail:folder_sharing", folder_id=folder.pk)
    entries = [
        {
            "identifier": identifier,
            "domain": identifier == "anyone",
            "label": _access_label(rights),
        }
        for identifier, rights in selectors.folder_acl(folder)[1:]  # the owner's is fixed
    ]
    return render(
        request,
        "webmail/folder_sharing.html",
        {"folder": folder, "entries": entries, "choices": SHARE_ACCESS},
    )
