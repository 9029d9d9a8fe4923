"""What folders are called and what may be done in them: special uses, the folders a new
mailbox gets, the hierarchy delimiter, the namespaces of shared folders, ACL rights.

A leaf module (it imports nothing of Mailhost's): mailboxes/models.py builds its fields on
these, and the front ends take them from here rather than from the models.
"""

from __future__ import annotations

from django.db import models


class SpecialUse(models.TextChoices):
    """RFC 6154 special uses of a folder."""

    NONE = "", "none"
    SENT = "\\Sent", "Sent"
    DRAFTS = "\\Drafts", "Drafts"
    JUNK = "\\Junk", "Junk"
    TRASH = "\\Trash", "Trash"
    ARCHIVE = "\\Archive", "Archive"


# The folders every new mailbox gets (RFC 6154 special uses).
DEFAULT_FOLDERS: tuple[tuple[str, str], ...] = (
    ("INBOX", SpecialUse.NONE),
    ("Sent", SpecialUse.SENT),
    ("Drafts", SpecialUse.DRAFTS),
    ("Junk", SpecialUse.JUNK),
    ("Trash", SpecialUse.TRASH),
    ("Archive", SpecialUse.ARCHIVE),
)

HIERARCHY_DELIMITER = "/"
# RFC 2342 namespaces of folders other mailboxes share: "Other Users/<address>/<folder>" for
# a folder shared with this mailbox, "Shared/<address>/<folder>" for one shared with the
# whole domain. No personal folder may be named under them.
OTHER_USERS_NAMESPACE = "Other Users"
SHARED_NAMESPACE = "Shared"

# RFC 4314 2.1: the rights, in the order GETACL and MYRIGHTS show them.
ACL_RIGHTS = "lrswipkxtea"
# RFC 4314 2.1.1: the obsolete "c" and "d" stand for these (RIGHTS=texk).
ACL_OBSOLETE_RIGHTS = {"c": "k", "d": "xte"}
