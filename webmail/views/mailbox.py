"""The message list of a folder and what can be done to many messages at once.

Pages are UID keysets, newest first, of conversations (each at its newest message in the
folder): `?before=<uid>` shows the PAGE_SIZE conversations below that UID, `?after=<uid>`
those above it. Each page is one range of the partial (folder, uid) index of the messages
marked newest of their conversation (Message.conversation_head), so the 2000th page of a 100k
folder costs what the first does (no OFFSET), whatever the conversations' sizes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, ngettext_lazy
from django.views.decorators.http import require_GET, require_POST

from mailboxes import selectors, senderlists, services
from mailboxes.exceptions import MailhostError
from mailboxes.folders import SpecialUse
from webmail.auth import mailbox_required, safe_next
from webmail.views.common import (
    PAGE_SIZE,
    display_name,
    folder_for,
    folder_items,
    human_size,
    inbox,
    relative_date,
    special_folder,
)

if TYPE_CHECKING:
    from mailboxes.models import Folder, Message

LIST_FIELDS = (
    "id",
    "folder_id",
    "uid",
    "seen",
    "flagged",
    "answered",
    "draft",
    "from_display",
    "from_address",
    "to_display",
    "subject",
    "sent_date",
    "internal_date",
    "size",
    "has_attachments",
    "thread_key",
    "preview",
)


def row(message: Message, folder: Folder | None = None, *, show_folder: bool = False) -> dict:
    """What one line of a message list shows."""
    folder = folder or message.folder
    outgoing = folder.special_use in {SpecialUse.SENT, SpecialUse.DRAFTS}
    if outgoing:
        who = "To: " + display_name(message.to_display, "")
    else:
        who = display_name(message.from_display, message.from_address)
    return {
        "uid": message.uid,
        "folder_id": folder.id,
        "folder_name": folder.name if show_folder else "",
        "who": who,
        "subject": message.subject or _("(no subject)"),
        "date": relative_date(message.internal_date),
        "preview": message.preview,
        "thread_count": 1,
        "full_date": message.internal_date,
        "size": human_size(message.size),
        "seen": message.seen,
        "flagged": message.flagged,
        "answered": message.answered,
        "draft": message.draft,
        "attachment": message.has_attachments,
    }


def conversations(page: list[Message], folder: Folder) -> list[dict]:
    """The page's rows, one per conversation (thread_key: the References root, else
    In-Reply-To, else the Message-ID): the page holds the newest message of each, so a
    conversation is shown once in the whole folder, with the number of its messages in the
    folder; it is unread, flagged or with attachments if any of them is. Its checkbox says
    "t<UID of its newest message>", which the bulk action expands to the conversation's
    messages up to that one (conversations_uids): the page costs the same for a conversation
    of 2 or of 100k. One statement over the page's thread keys, summed in the database."""
    threads = selectors.folder_conversations(folder, (m.thread_key for m in page))
    rows: list[dict] = []
    for message in page:  # newest first
        line = row(message, folder)
        thread = threads.get(message.thread_key) if message.thread_key else None
        if thread is None or thread.count == 1:
            line["pick"] = str(message.uid)
        else:
            line["pick"] = f"{CONVERSATION}{message.uid}"
            line["thread_count"] = thread.count
            line["seen"] = not thread.unseen
            line["flagged"] = thread.flagged
            line["attachment"] = thread.attachments
        rows.append(line)
    return rows


# A checkbox's value: a UID, or this prefix and the UID of a conversation's newest message.
CONVERSATION = "t"


def picked_uids(folder: Folder, values: list[str]) -> list[int]:
    """The UIDs, ascending, that the list's checkboxes name: "7" is one message, "t7" the
    conversation whose newest message is UID 7 (its messages up to that one), "7,5,2" (the
    list's former value for a conversation) those UIDs. ValueError for anything else."""
    uids: set[int] = set()
    heads: set[int] = set()
    for value in values:
        if value.startswith(CONVERSATION):
            heads.add(_uid(value.removeprefix(CONVERSATION)))
        else:
            uids.update(_uid(u) for u in value.split(","))
    if heads:
        uids.update(selectors.conversations_uids(folder, heads))
    return sorted(uids)


def _uid(text: str) -> int:
    if not (text.isascii() and text.isdigit()):  # int() would take " 7", "+7" and "٧"
        raise ValueError(text)
    return int(text)


@require_GET
@mailbox_required
def index(request: HttpRequest) -> HttpResponse:
    return redirect("webmail:folder", folder_id=inbox(request.mailbox.pk).pk)


def page_of(folder: Folder, *, before: int | None, after: int | None) -> tuple[list, bool, bool]:
    """One page of conversations newest first (each as its newest message); returns
    (messages, has_newer, has_older)."""
    return selectors.conversation_list_page(
        folder, before=before, after=after, size=PAGE_SIZE, fields=LIST_FIELDS
    )


def _int_param(request: HttpRequest, name: str) -> int | None:
    value = request.GET.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise ValueError(name)
    return int(value)


@require_GET
@mailbox_required
def folder_view(request: HttpRequest, folder_id: int) -> HttpResponse:
    folder = folder_for(request, folder_id)
    try:
        before = _int_param(request, "before")
        after = _int_param(request, "after")
    except ValueError:
        return HttpResponseBadRequest("bad page")
    page, has_newer, has_older = page_of(folder, before=before, after=after)
    items = folder_items(request.mailbox.pk)
    context = {
        "folder": folder,
        "folders": items,
        "rows": conversations(page, folder),
        "has_newer": has_newer,
        "has_older": has_older,
        "newer_uid": page[0].uid if page else None,
        "older_uid": page[-1].uid if page else None,
        "first_page": before is None and after is None,
        "move_targets": [i for i in items if i.folder.pk != folder.pk],
        "is_trash": folder.special_use == SpecialUse.TRASH,
        "is_drafts": folder.special_use == SpecialUse.DRAFTS,
        "is_archive": folder.special_use == SpecialUse.ARCHIVE,
        "can_empty": folder.special_use in EMPTYABLE and folder.message_count > 0,
        "is_junk": folder.special_use == SpecialUse.JUNK,
        "can_junk": folder.special_use in JUNKABLE,
    }
    return render(request, "webmail/folder.html", context)


ACTIONS = {
    "read",
    "unread",
    "flag",
    "unflag",
    "move",
    "archive",
    "delete",
    "junk",
    "notjunk",
    "empty",
}
# What a failed action says, by action (the error follows).
_FAILED = {
    "read": gettext_lazy("Could not mark read: %(error)s"),
    "unread": gettext_lazy("Could not mark unread: %(error)s"),
    "flag": gettext_lazy("Could not flag: %(error)s"),
    "unflag": gettext_lazy("Could not unflag: %(error)s"),
    "move": gettext_lazy("Could not move: %(error)s"),
    "archive": gettext_lazy("Could not archive: %(error)s"),
    "delete": gettext_lazy("Could not delete: %(error)s"),
    "junk": gettext_lazy("Could not move to Junk: %(error)s"),
    "notjunk": gettext_lazy("Could not mark as not junk: %(error)s"),
}
# Actions that change a flag: the service and what the confirmation says was done.
FLAG_ACTIONS = {
    "read": (services.messages_mark_read, "read"),
    "unread": (services.messages_mark_unread, "unread"),
    "flag": (services.messages_flag, "flag"),
    "unflag": (services.messages_unflag, "unflag"),
}
EMPTYABLE = {SpecialUse.TRASH, SpecialUse.JUNK}
# Folders whose messages can be called junk: mail that came in (not Sent, Drafts, Trash).
JUNKABLE = {SpecialUse.NONE, SpecialUse.ARCHIVE}


@require_POST
@mailbox_required
def bulk(request: HttpRequest, folder_id: int) -> HttpResponse:
    """Apply one action to the selected messages (checkboxes named `uid`)."""
    folder = folder_for(request, folder_id)
    back = safe_next(request, reverse("webmail:folder", args=[folder.pk]))
    action = request.POST.get("action", "")
    if action not in ACTIONS:
        return HttpResponseBadRequest("unknown action")
    if action == "empty":
        return _empty(request, folder, back)
    if request.POST.get("all") == "1":  # "select all N messages in the folder": every page
        uids = selectors.folder_uids(folder)
    else:
        try:
            uids = picked_uids(folder, request.POST.getlist("uid"))
        except ValueError:
            return HttpResponseBadRequest("bad uid")
    if not uids:
        flash.info(request, _("Select some messages first."))
        return redirect(back)
    try:
        text, back = apply(request, folder, action, uids, back)
    except MailhostError as exc:
        flash.error(request, _FAILED[action] % {"error": exc})
        return redirect(back)
    flash.success(request, text)
    return redirect(back)


def _empty(request: HttpRequest, folder: Folder, back: str) -> HttpResponse:
    """Delete everything in Trash or Junk for good."""
    if folder.special_use not in EMPTYABLE:
        flash.error(
            request, _("Only Trash and Junk can be emptied, not %(name)s.") % {"name": folder.name}
        )
        return redirect(back)
    try:
        gone = services.folder_empty(folder=folder)
    except MailhostError as exc:
        flash.error(
            request, _("Could not empty %(name)s: %(error)s") % {"name": folder.name, "error": exc}
        )
        return redirect(back)
    text = ngettext(
        "%(name)s emptied: %(count)s message deleted for good.",
        "%(name)s emptied: %(count)s messages deleted for good.",
        len(gone),
    )
    flash.success(request, text % {"name": folder.name, "count": len(gone)})
    return redirect(back)


# What a bulk action did, by action; the count picks the plural form.
_DONE = {
    "read": ngettext_lazy(
        "%(count)s message marked read.", "%(count)s messages marked read.", "count"
    ),
    "unread": ngettext_lazy(
        "%(count)s message marked unread.", "%(count)s messages marked unread.", "count"
    ),
    "flag": ngettext_lazy("%(count)s message flagged.", "%(count)s messages flagged.", "count"),
    "unflag": ngettext_lazy(
        "%(count)s message unflagged.", "%(count)s messages unflagged.", "count"
    ),
    "moved": ngettext_lazy(
        "%(count)s message moved to %(name)s.", "%(count)s messages moved to %(name)s.", "count"
    ),
    "deleted": ngettext_lazy(
        "%(count)s message deleted for good.", "%(count)s messages deleted for good.", "count"
    ),
    "trash": ngettext_lazy(
        "%(count)s message moved to Trash.", "%(count)s messages moved to Trash.", "count"
    ),
    "inbox": ngettext_lazy(
        "%(count)s message moved to Inbox.", "%(count)s messages moved to Inbox.", "count"
    ),
}


def _done(what: str, count: int, name: str = "") -> str:
    return _DONE[what] % {"count": count, "name": name}


def apply(request, folder: Folder, action: str, uids: list[int], back: str) -> tuple[str, str]:
    mailbox_id = request.mailbox.pk
    count = selectors.messages_count(folder, uids)
    if action in FLAG_ACTIONS:
        service, what = FLAG_ACTIONS[action]
        service(folder=folder, uids=uids)
        return _done(what, count), back
    leaving = reverse("webmail:folder", args=[folder.pk])
    if action == "move":
        target_id = request.POST.get("target", "")
        target = selectors.folder_of(mailbox_id, int(target_id) if target_id.isdigit() else 0)
        if target is None:
            return _("Choose a folder to move to."), back
        if target.pk == folder.pk:
            return _("The messages are already in that folder."), back
        services.messages_move(source=folder, uids=uids, target=target)
        return _done("moved", count, target.name), _away(back, leaving)
    if action in {"archive", "junk"}:
        use = SpecialUse.ARCHIVE if action == "archive" else SpecialUse.JUNK
        target = special_folder(mailbox_id, use)
        if target is None:
            return _("There is no %(name)s folder.") % {"name": _(use.label)}, back
        if target.pk == folder.pk:
            return _("The messages are already in %(name)s.") % {"name": target.name}, back
        # Into Junk trains the spam filter (messages_move does it, as for IMAP).
        services.messages_move(source=folder, uids=uids, target=target)
        return _done("moved", count, target.name), _away(back, leaving)
    if action == "notjunk":
        return _not_junk(request, folder, uids, count, back, leaving)
    # delete: to Trash; from Trash (or with no Trash) for good, as IMAP clients do it.
    trash = special_folder(mailbox_id, SpecialUse.TRASH)
    if trash is None or trash.pk == folder.pk:
        gone = services.messages_delete(folder=folder, uids=uids)
        return _done("deleted", len(gone)), _away(back, leaving)
    services.messages_move(source=folder, uids=uids, target=trash)
    return _done("trash", count), _away(back, leaving)


def _not_junk(request, folder: Folder, uids: list[int], count: int, back: str, leaving: str):
    """Back to INBOX, trained as ham, and each sender on the reader's allow list."""
    if folder.special_use != SpecialUse.JUNK:
        return _("Only messages in Junk can be marked as not junk."), back
    target = inbox(request.mailbox.pk)
    senders = selectors.messages_senders(folder, uids)
    services.messages_move(source=folder, uids=uids, target=target)  # trains ham
    trusted = []
    for sender in senders:
        try:
            entry = services.sender_list_add(
                mailbox=request.mailbox, pattern=sender, action="allow"
            )
        except MailhostError:
            continue  # a From address that is no address: nothing to trust
        trusted.append(senderlists.pattern_display(entry.pattern))
    text = _done("inbox", count)
    if trusted:
        text += " " + _("Mail from %(senders)s will not go to Junk again.") % {
            "senders": ", ".join(trusted)
        }
    return text, _away(back, leaving)


def _away(back: str, folder_url: str) -> str:
    """After a message leaves its folder, its reading page is gone: go to the list."""
    return folder_url if "/m/" in back else back
