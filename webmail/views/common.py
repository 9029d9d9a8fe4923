"""What every webmail page shares: the reader's folders, lookups scoped to the reader."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

from django.http import Http404, HttpRequest
from django.utils import dateformat, timezone
from django.utils.dates import WEEKDAYS
from django.utils.translation import gettext as _

from mailboxes import selectors
from mailboxes.folders import HIERARCHY_DELIMITER, SpecialUse

if TYPE_CHECKING:
    from mailboxes.models import Folder, Message

PAGE_SIZE = 50

# Special uses first, in the order mail clients show them; then the reader's own folders.
SPECIAL_ORDER = {
    "": 0,  # INBOX (the only special folder without a special use)
    SpecialUse.DRAFTS: 1,
    SpecialUse.SENT: 2,
    SpecialUse.ARCHIVE: 3,
    SpecialUse.JUNK: 4,
    SpecialUse.TRASH: 5,
}
ICONS = {
    SpecialUse.SENT: "send",
    SpecialUse.DRAFTS: "draft",
    SpecialUse.JUNK: "junk",
    SpecialUse.TRASH: "trash",
    SpecialUse.ARCHIVE: "archive",
}


@dataclass
class FolderItem:
    folder: Folder
    icon: str
    label: str
    depth: int
    is_special: bool


def folder_items(mailbox_id: int) -> list[FolderItem]:
    folders = list(selectors.folders_of(mailbox_id))
    items = []
    for folder in folders:
        if folder.name == "INBOX":
            items.append(FolderItem(folder, "inbox", _("Inbox"), 0, True))
        elif folder.special_use:
            items.append(
                FolderItem(folder, ICONS.get(folder.special_use, "folder"), folder.name, 0, True)
            )
        else:
            parts = folder.name.split(HIERARCHY_DELIMITER)
            items.append(FolderItem(folder, "folder", parts[-1], len(parts) - 1, False))

    def key(item: FolderItem):
        if item.is_special:
            order = (
                0 if item.folder.name == "INBOX" else SPECIAL_ORDER.get(item.folder.special_use, 6)
            )
            return (0, order, item.folder.name)
        return (1, 0, item.folder.name.lower())

    items.sort(key=key)
    return items


def folder_for(request: HttpRequest, folder_id: int) -> Folder:
    folder = selectors.folder_of(request.mailbox.pk, folder_id)
    if folder is None:
        raise Http404("no such folder")
    return folder


def message_for(folder: Folder, uid: int) -> Message:
    message = selectors.message_get(folder, uid)
    if message is None:
        raise Http404("no such message")
    return message


def special_folder(mailbox_id: int, special_use: str) -> Folder | None:
    return selectors.folder_by_special_use(mailbox_id, special_use)


def inbox(mailbox_id: int) -> Folder:
    folder = selectors.folder_get(mailbox_id, "INBOX")
    if folder is None:
        raise Http404("no INBOX")
    return folder


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def short_date(when, now=None) -> str:
    if when is None:
        return ""
    local = timezone.localtime(when)
    now = timezone.localtime(now)
    if local.date() == now.date():
        return local.strftime("%H:%M")
    if local.year == now.year:
        return dateformat.format(local, "M j")  # the month's name in the reader's language
    return local.strftime("%Y-%m-%d")


def relative_date(when, now=None) -> str:
    """The list's date, relative to today in the reader's zone: the time today ("14:05",
    which shows the zone), "Yesterday", the weekday within a week, then "Mar 4", then
    "2024-03-04"."""
    if when is None:
        return ""
    local = timezone.localtime(when)
    now = timezone.localtime(now)
    days = (now.date() - local.date()).days
    if days == 1:
        return _("Yesterday")
    if 1 < days < 7:
        return str(WEEKDAYS[local.weekday()])
    return short_date(when, now)


def header_date(value: str) -> str:
    """A Date header's time in the reader's zone ("Thu, 3 Dec 2026 06:30 IST"); the value as
    written when it is not a date with a zone."""
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return value
    if when is None or when.tzinfo is None:
        return value
    local = timezone.localtime(when)
    return f"{local:%a, %-d %b %Y %H:%M} {local.tzname()}"


def display_name(display: str, address: str) -> str:
    """The name part of a cached From/To display ("Ann <ann@x>" -> "Ann")."""
    first = display.split(",")[0].strip() if display else ""
    if "<" in first:
        name = first.split("<", 1)[0].strip().strip('"')
        if name:
            return name
    return first or address or "(nobody)"


def content_disposition(filename: str, *, attachment: bool) -> str:
    """RFC 6266: an ASCII fallback name and the exact name in RFC 5987 filename*."""
    kind = "attachment" if attachment else "inline"
    fallback = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii")
    fallback = "".join(c for c in fallback if c.isprintable() and c not in '"\\;') or "file"
    header = f'{kind}; filename="{fallback}"'
    if fallback != filename:
        header += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return header
