"""The mail store: domains, mailboxes, aliases, folders, messages and their raw bytes.

Models stay thin; every write goes through mailboxes/services.py, every read through
mailboxes/selectors.py.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from mailboxes.flags import COLUMNS as FLAG_COLUMNS
from mailboxes.flags import names_of_columns

# Defined in the leaf module mailboxes/folders.py; named here too, where the models use them.
from mailboxes.folders import (  # noqa: F401 - re-exported
    ACL_OBSOLETE_RIGHTS,
    ACL_RIGHTS,
    DEFAULT_FOLDERS,
    HIERARCHY_DELIMITER,
    OTHER_USERS_NAMESPACE,
    SHARED_NAMESPACE,
    SpecialUse,
)


class Domain(models.Model):
    # Stored as lower-case ASCII (IDNA "xn--" form for internationalized names).
    name = models.CharField(max_length=253, unique=True)
    active = models.BooleanField(default=True)
    case_sensitive_local_parts = models.BooleanField(
        default=False,
        help_text="RFC 5321 allows case-sensitive local parts; almost every domain folds case.",
    )
    plus_separator = models.CharField(
        max_length=1,
        default="+",
        blank=True,
        help_text="Sub-addressing separator (user+tag@); blank turns it off.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Run before each mailbox's own active script (Pigeonhole's sieve_before); written through
    # services.domain_set_sieve_default, which validates it (never checked at delivery).
    sieve_default = models.TextField(
        blank=True,
        default="",
        help_text="Sieve script run before every mailbox's own active script; blank: none.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.unicode_name

    @property
    def dkim_key(self) -> DkimKey | None:
        """The key that signs the domain's mail now (None: mail leaves unsigned)."""
        return self.dkim_keys.filter(state=DkimKey.State.ACTIVE).first()

    @property
    def dkim_selector(self) -> str:
        key = self.dkim_key
        return key.selector if key else ""

    @property
    def dkim_private_key(self) -> str:
        key = self.dkim_key
        return key.private_key if key else ""

    @property
    def unicode_name(self) -> str:
        from mailboxes.addresses import domain_to_unicode

        return domain_to_unicode(self.name)

    def local_key(self, local_part: str) -> str:
        return local_part if self.case_sensitive_local_parts else local_part.lower()


class DkimKey(models.Model):
    """One DKIM key of a domain, by selector (RFC 6376 3.1). Rotation (RFC 6376 3.6.1, M3AAWG's
    DKIM key rotation practice): a new key is created PUBLISHED (its TXT record listed by
    dnsrecords, not signing yet), made ACTIVE once DNS serves it (the one key that signs; the
    one before goes back to PUBLISHED, so mail signed with it still verifies), then RETIRED
    (left out of the records; its private key erased)."""

    class State(models.TextChoices):
        PUBLISHED = "published"
        ACTIVE = "active"
        RETIRED = "retired"

    class Algorithm(models.TextChoices):
        RSA = "rsa"  # rsa-sha256, 2048 bits
        ED25519 = "ed25519"  # ed25519-sha256 (RFC 8463)

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="dkim_keys")
    selector = models.CharField(max_length=63)
    algorithm = models.CharField(max_length=10, choices=Algorithm.choices, default=Algorithm.RSA)
    private_key = models.TextField(blank=True, help_text="PEM; erased when retired.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PUBLISHED)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["domain", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["domain", "selector"], name="dkim_selector_unique"),
            models.UniqueConstraint(
                fields=["domain"],
                condition=models.Q(state="active"),
                name="dkim_one_active_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.selector}._domainkey.{self.domain.name} ({self.algorithm}, {self.state})"


class Mailbox(models.Model):
    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="mailboxes")
    local_part = models.CharField(max_length=64)
    # The lookup form of local_part: folded to lower case unless the domain is case-sensitive.
    local_key = models.CharField(max_length=64, editable=False)
    password = models.CharField(max_length=256)
    display_name = models.CharField(max_length=200, blank=True)
    quota = models.BigIntegerField(default=0, help_text="Bytes; 0 means no limit.")
    used_bytes = models.BigIntegerField(default=0, editable=False)
    # RFC 9208 5.2 MESSAGE: how many messages all folders may hold, and hold now (kept with
    # used_bytes by the same writes, under the same row lock).
    quota_messages = models.BigIntegerField(default=0, help_text="Messages; 0 means no limit.")
    used_messages = models.BigIntegerField(default=0, editable=False)
    active = models.BooleanField(default=True)
    # Source of UIDVALIDITY values: strictly increasing per mailbox, so a folder deleted and
    # created again under the same name never repeats a UIDVALIDITY (RFC 9051 2.3.1.1).
    uidvalidity_seq = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The reader's own settings (webmail Settings > Account); blank: the browser's zone and
    # the site's language.
    time_zone = models.CharField(max_length=64, blank=True, default="")
    language = models.CharField(max_length=16, blank=True, default="")
    # Two-factor sign-in (RFC 6238 TOTP): the shared secret in base32 once enrolment is
    # confirmed (blank: off), and the last time step accepted, so a code is never used twice.
    totp_secret = models.CharField(max_length=64, blank=True, default="", editable=False)
    totp_last_step = models.BigIntegerField(default=0, editable=False)

    class Meta:
        verbose_name_plural = "mailboxes"
        ordering = ["domain__name", "local_key"]
        constraints = [
            models.UniqueConstraint(fields=["domain", "local_key"], name="mailbox_unique_address")
        ]

    def __str__(self) -> str:
        return self.address

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain.unicode_name}"

    @property
    def ascii_address(self) -> str:
        return f"{self.local_part}@{self.domain.name}"


class Alias(models.Model):
    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="aliases")
    # Empty local part: the domain's catch-all.
    local_part = models.CharField(max_length=64, blank=True)
    local_key = models.CharField(max_length=64, editable=False, blank=True)
    destinations = models.TextField(help_text="One address per line (local or remote).")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "aliases"
        ordering = ["domain__name", "local_key"]
        constraints = [
            models.UniqueConstraint(fields=["domain", "local_key"], name="alias_unique_address")
        ]

    def __str__(self) -> str:
        return self.address

    @property
    def address(self) -> str:
        return f"{self.local_part or '*'}@{self.domain.unicode_name}"

    @property
    def is_catch_all(self) -> bool:
        return self.local_key == ""

    @property
    def destination_list(self) -> list[str]:
        return [d for d in self.destinations.replace(",", "\n").split() if d]


class Folder(models.Model):
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="folders")
    # Full hierarchical name with HIERARCHY_DELIMITER, in UTF-8 ("INBOX" is always upper-case).
    name = models.CharField(max_length=512)
    special_use = models.CharField(max_length=16, choices=SpecialUse.choices, blank=True)
    uidvalidity = models.PositiveIntegerField()
    uidnext = models.PositiveIntegerField(default=1)
    highestmodseq = models.BigIntegerField(default=1)
    # RFC 3501 \Recent: messages with uid >= this have not yet been seen by any session that
    # selected the folder read-write; the first such session claims them (and moves this up).
    first_recent_uid = models.PositiveIntegerField(default=1)
    # Counters kept by the services so SELECT and STATUS never scan (bench: 100k folders).
    message_count = models.PositiveIntegerField(default=0)
    unseen_count = models.PositiveIntegerField(default=0)
    total_size = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["mailbox", "name"]
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "name"], name="folder_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.mailbox_id}:{self.name}"


class FolderAcl(models.Model):
    """One entry of a folder's access control list (RFC 4314): what another mailbox, or every
    mailbox of the owner's domain (grantee None: the identifier "anyone"), may do with it.
    The owner holds every right and has no row."""

    folder = models.ForeignKey(Folder, on_delete=models.CASCADE, related_name="acl")
    grantee = models.ForeignKey(
        Mailbox, on_delete=models.CASCADE, null=True, blank=True, related_name="granted"
    )
    rights = models.CharField(max_length=16)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["folder", "grantee"],
                condition=models.Q(grantee__isnull=False),
                name="folderacl_unique_grantee",
            ),
            models.UniqueConstraint(
                fields=["folder"],
                condition=models.Q(grantee__isnull=True),
                name="folderacl_unique_anyone",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.folder_id}:{self.grantee_id or 'anyone'}={self.rights}"


class MetadataEntry(models.Model):
    """An annotation (RFC 5464): on a folder, or on the server (folder None). A /private/
    entry belongs to the mailbox that set it (each reader of a shared folder has their own),
    a /shared/ one on a folder to the folder's owner. Names are kept in lower case (RFC 5464
    3.2: entry names are case-insensitive)."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="metadata")
    folder = models.ForeignKey(
        Folder, on_delete=models.CASCADE, null=True, blank=True, related_name="metadata"
    )
    name = models.CharField(max_length=255)
    value = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox", "folder", "name"],
                condition=models.Q(folder__isnull=False),
                name="metadata_unique_folder_entry",
            ),
            models.UniqueConstraint(
                fields=["mailbox", "name"],
                condition=models.Q(folder__isnull=True),
                name="metadata_unique_server_entry",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.mailbox_id}:{self.folder_id or ''}:{self.name}"


class Subscription(models.Model):
    """A name on a mailbox's subscription list (IMAP SUBSCRIBE, LSUB, LIST (SUBSCRIBED)).

    Kept apart from the folders: a subscription to a name that does not exist, or whose
    folder was deleted, stays until UNSUBSCRIBE (RFC 9051 6.3.7, 6.3.9; LIST-EXTENDED shows it
    with \\NonExistent, RFC 5258 3)."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="subscriptions")
    name = models.CharField(max_length=512)  # as Folder.name: UTF-8, "INBOX" upper-case

    class Meta:
        ordering = ["mailbox", "name"]
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "name"], name="subscription_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.mailbox_id}:{self.name}"


class Blob(models.Model):
    """Raw RFC 5322 bytes, written once and shared by every message and spool entry."""

    name = models.CharField(max_length=255, unique=True)  # the storage name
    size = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    # The bytes themselves when they fit MAILHOST_BLOB_INLINE_MAX (the name then starts with
    # INLINE_PREFIX and no file exists): the row's commit makes them durable, no file syncs.
    data = models.BinaryField(null=True, blank=True)

    INLINE_PREFIX = "inline:"  # never the start of a storage name (those are "ab/cd/<hex>")

    @staticmethod
    def name_is_inline(name: object) -> bool:
        return isinstance(name, str) and name.startswith(Blob.INLINE_PREFIX)

    def __str__(self) -> str:
        return self.name


class BlobText(models.Model):
    """The searchable text of a blob (mailboxes/fulltext.py): its header fields and its text
    parts, decoded, case-folded and with white space runs as one space, exactly what IMAP
    SEARCH HEADER/BODY/TEXT match against. A full-text index (SQLite FTS5 trigram, or
    PostgreSQL pg_trgm) finds candidates fast; LIKE on this text makes the answer exact. Keyed
    by the blob's id without a foreign key: blob_release removes both, and the index is
    rebuilt from blobs at will (`manage.py reindex`)."""

    blob_id = models.BigIntegerField(primary_key=True)
    header = models.TextField()
    body = models.TextField()

    def __str__(self) -> str:
        return f"text of blob {self.blob_id}"


class BlobTextPending(models.Model):
    """A blob without indexed text: every new blob gets a row (a database trigger, so that no
    way of making blobs is missed), the indexer removes it with the text it writes. Searches
    read the bytes of messages whose blob is here; `too_long` marks text longer than
    MAILHOST_FTS_MAX_TEXT, which is never indexed."""

    blob_id = models.BigIntegerField(primary_key=True)
    too_long = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"blob {self.blob_id} not indexed"


class Message(models.Model):
    # Indexed by message_unique_uid (Meta), whose index starts with folder_id, not by an index
    # of its own (one page less written by each INSERT; migration 0036).
    folder = models.ForeignKey(
        Folder, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    uid = models.PositiveIntegerField()
    modseq = models.BigIntegerField()
    # Indexed by message_blob_folder_uid (Meta), not by an index of its own.
    blob = models.ForeignKey(
        Blob, on_delete=models.PROTECT, related_name="messages", db_index=False
    )
    size = models.PositiveIntegerField()
    internal_date = models.DateTimeField()
    # When the row was saved in its folder (delivery, APPEND, COPY, MOVE): IMAP SAVEDATE
    # (RFC 8514). NULL for rows older than the column, which SAVEDATE shows as NIL.
    saved_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    # System flags as columns (fast SEARCH and counters); keywords as a space-separated string.
    seen = models.BooleanField(default=False)
    answered = models.BooleanField(default=False)
    flagged = models.BooleanField(default=False)
    deleted = models.BooleanField(default=False)
    draft = models.BooleanField(default=False)
    keywords = models.TextField(blank=True, default="")
    # Header fields cached at delivery for lists, sorting, threading and searches.
    subject = models.TextField(blank=True, default="")
    from_display = models.TextField(blank=True, default="")
    from_address = models.CharField(max_length=320, blank=True, default="")
    to_display = models.TextField(blank=True, default="")
    cc_display = models.TextField(blank=True, default="")
    sent_date = models.DateTimeField(null=True, blank=True)
    message_id = models.TextField(blank=True, default="")
    in_reply_to = models.TextField(blank=True, default="")
    references = models.TextField(blank=True, default="")
    # Indexed by message_thread_date (Meta), not by an index of its own.
    thread_key = models.CharField(max_length=255, blank=True, default="")
    has_attachments = models.BooleanField(default=False)
    # Whether this is the newest message (highest UID) of its conversation (thread_key) in its
    # folder; always so without a thread_key. The webmail lists a folder's conversations from
    # the partial index of these rows. Kept by triggers (migration 0033) on every INSERT,
    # DELETE and change of folder, UID or thread_key, so that no write path can miss it.
    conversation_head = models.BooleanField(default=True, db_default=True)
    # The first 256 characters of the text, as IMAP PREVIEW (RFC 8970) gives them, computed
    # at delivery for the webmail list ("" for rows older than the column, or no text).
    preview = models.TextField(blank=True, default="", db_default="")
    # Protocol caches derived from the bytes (IMAP ENVELOPE, BODYSTRUCTURE...), filled lazily.
    mime_cache = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["folder", "uid"]
        constraints = [models.UniqueConstraint(fields=["folder", "uid"], name="message_unique_uid")]
        indexes = [
            models.Index(fields=["folder", "modseq"], name="message_folder_modseq"),
            # Unseen rows only, in UID order: SEARCH UNSEEN and SELECT's first unseen read
            # the index alone (smaller than one over every row's seen flag).
            models.Index(
                fields=["folder", "uid"],
                condition=models.Q(seen=False),
                name="message_folder_unseen",
            ),
            models.Index(fields=["folder", "flagged"], name="message_folder_flagged"),
            models.Index(fields=["folder", "deleted"], name="message_folder_deleted"),
            models.Index(fields=["folder", "internal_date"], name="message_folder_date"),
            # A conversation's messages in a folder, newest last: the triggers that keep
            # conversation_head find a conversation's newest message here. Without the flags
            # (migration 0038): a flag change on SQLite rewrites no entry of it.
            models.Index(fields=["folder", "thread_key", "uid"], name="message_folder_thread_uid"),
            # The newest message of each conversation in a folder, by UID: the webmail's list
            # reads a page of conversations from it in order and stops, whatever their sizes
            # (a folder of one conversation of 100k walked 99,999 rows to find no other).
            models.Index(
                fields=["folder", "uid"],
                condition=models.Q(conversation_head=True),
                name="message_conversation_heads",
            ),
            # A conversation across the mailbox's folders, oldest first (the webmail's message
            # page shows its first 25): read in order and cut, not sorted whole (a
            # conversation of 100k: 42.8 -> 1.7 ms of CPU on SQLite).
            models.Index(fields=["thread_key", "internal_date", "id"], name="message_thread_date"),
            # The few rows with keywords: the IMAP FLAGS response without a folder scan.
            models.Index(
                fields=["folder", "keywords"],
                condition=~models.Q(keywords=""),
                name="message_folder_keywords",
            ),
            # A blob's messages, with their folder and UID in the index itself: a full-text
            # search of a folder turns the blobs the words index gives into UIDs without
            # reading a row (mailboxes/fulltext.py folder_matching_uids).
            models.Index(fields=["blob", "folder", "uid"], name="message_blob_folder_uid"),
        ]

    def __str__(self) -> str:
        return f"{self.folder_id}:{self.uid}"

    @property
    def flags(self) -> list[str]:
        """Flag names (mailboxes/flags.py's order): system flags, then keywords."""
        return names_of_columns(self.keywords, [getattr(self, c) for c in FLAG_COLUMNS])


class Conversation(models.Model):
    """A conversation (thread_key) in one folder, counted: its messages there, and how many of
    them are unread (the owner's \\Seen, Message.seen: a reader's PrivateSeen never counted in
    the list's summary), flagged and with attachments. The webmail's list reads its page's
    rows here, where summing the messages cost O(each conversation): 17 ms of CPU for one of
    100k on SQLite. A row for each (folder, thread_key) that has messages, none for messages
    without a thread_key; kept by triggers on the message table (migration 0037; statement
    triggers on PostgreSQL, 0039) on every
    INSERT, DELETE and change of folder, thread_key, seen, flagged or has_attachments, so
    that no write path can miss it. On SQLite the table is WITHOUT ROWID: one b-tree, keyed
    by the primary key, where a rowid table would write a second for its key."""

    pk = models.CompositePrimaryKey("folder_id", "thread_key")
    # No foreign key in PostgreSQL (migration 0043): the triggers write a row only from message
    # rows, whose own key names the folder; its deferred check was a query at every COMMIT.
    folder = models.ForeignKey(
        Folder,
        on_delete=models.CASCADE,
        related_name="conversations",
        db_index=False,
        db_constraint=False,
    )
    thread_key = models.CharField(max_length=255)
    messages = models.IntegerField()
    unseen = models.IntegerField()
    flagged = models.IntegerField()
    attachments = models.IntegerField()

    def __str__(self) -> str:
        return f"{self.folder_id}:{self.thread_key} ({self.messages})"


class PrivateSeen(models.Model):
    """A reader's own \\Seen on a message of a folder shared with it (RFC 4314's "s" right
    keeps \\Seen per user, as Dovecot's INDEXPVT does): the message's `seen` column is its
    owner's, and each other mailbox reading the folder has a row here once it sets or clears
    \\Seen (no row: unseen). `modseq` is the MODSEQ of the reader's last change (RFC 7162),
    taken from the folder's HIGHESTMODSEQ counter so that the reader's sessions see it as a
    change and nobody else's do. Keyed by (folder, uid) without a foreign key to the message:
    messages are removed with plain DELETEs, and _remove_messages removes these rows too."""

    folder = models.ForeignKey(Folder, on_delete=models.CASCADE, related_name="private_seen")
    reader = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="private_seen")
    uid = models.PositiveIntegerField()
    seen = models.BooleanField(default=True)
    modseq = models.BigIntegerField()

    class Meta:
        constraints = [
            # a reader's rows of a folder in UID order: FETCH's batch, STATUS's count
            models.UniqueConstraint(
                fields=["folder", "reader", "uid"], name="privateseen_unique_uid"
            )
        ]
        indexes = [
            # expunging messages removes every reader's rows of them
            models.Index(fields=["folder", "uid"], name="privateseen_folder_uid"),
        ]

    def __str__(self) -> str:
        return f"{self.folder_id}:{self.uid}@{self.reader_id}={self.seen}"


class Identity(models.Model):
    """How a mailbox writes as one of its addresses (its own, or an alias that delivers to
    it): the display name in From and the signature the webmail puts under new messages."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="identities")
    address = models.CharField(max_length=320)
    name = models.CharField(max_length=200, blank=True, default="")
    signature = models.TextField(blank=True, default="")
    is_default = models.BooleanField(default=False)

    class Meta:
        ordering = ["mailbox", "address"]
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "address"], name="identity_unique_address")
        ]

    def __str__(self) -> str:
        return self.address


class Contact(models.Model):
    """One card of a mailbox's address book: the vCard as written (by the webmail, an
    import or a CardDAV client) and what the webmail reads from it."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="contacts")
    uid = models.CharField(max_length=255)
    name = models.CharField(max_length=200, blank=True, default="")
    # One address a line, lower case as written
    emails = models.TextField(blank=True, default="")
    vcard = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)
    # Change number (nanoseconds of the change): the card's ETag and CardDAV's sync token.
    modseq = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        ordering = ["mailbox", "name"]
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "uid"], name="contact_unique_uid")
        ]

    def __str__(self) -> str:
        return self.name or self.uid

    @property
    def email_list(self) -> list[str]:
        return [e for e in self.emails.split("\n") if e]


class ContactDeleted(models.Model):
    """Tombstone of a deleted card, for CardDAV sync-collection (RFC 6578)."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="+")
    uid = models.CharField(max_length=255)
    modseq = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["mailbox", "modseq"], name="contactdeleted_modseq")]


class Expunged(models.Model):
    """Tombstone of an expunged UID, for QRESYNC's VANISHED (RFC 7162 3.2.10)."""

    folder = models.ForeignKey(Folder, on_delete=models.CASCADE, related_name="expunged")
    uid = models.PositiveIntegerField()
    modseq = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["folder", "modseq"], name="expunged_folder_modseq")]


class SenderListEntry(models.Model):
    """One entry of an allow or block list of senders: a mailbox's own list, or its domain's
    (which holds for every mailbox of the domain). The spam verdict reads them through
    selectors.sender_lists: allow -> never Junk, block -> Junk.

    `pattern` is stored normalized (mailboxes.senderlists.pattern_normalize): `user@host`
    (exactly that address), `@host` (any address at exactly that domain) or `host` (that
    domain and every domain under it); lower case, domains in ASCII (IDNA)."""

    class Action(models.TextChoices):
        ALLOW = "allow", "allow (never junk)"
        BLOCK = "block", "block (always junk)"

    domain = models.ForeignKey(
        Domain, null=True, blank=True, on_delete=models.CASCADE, related_name="sender_list"
    )
    mailbox = models.ForeignKey(
        Mailbox, null=True, blank=True, on_delete=models.CASCADE, related_name="sender_list"
    )
    pattern = models.CharField(
        max_length=320,
        help_text="alice@example.com (that address), @example.com (anyone at that domain) or "
        "example.com (that domain and its subdomains).",
    )
    action = models.CharField(max_length=5, choices=Action.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "sender list entry"
        verbose_name_plural = "sender list entries"
        ordering = ["action", "pattern"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(domain__isnull=True, mailbox__isnull=False)
                | models.Q(domain__isnull=False, mailbox__isnull=True),
                name="sender_list_one_owner",
            ),
            models.UniqueConstraint(
                fields=["mailbox", "pattern"],
                condition=models.Q(mailbox__isnull=False),
                name="sender_list_mailbox_pattern",
            ),
            models.UniqueConstraint(
                fields=["domain", "pattern"],
                condition=models.Q(domain__isnull=False),
                name="sender_list_domain_pattern",
            ),
        ]
        # sender_lists looks entries up by the sender's candidate patterns first.
        indexes = [models.Index(fields=["pattern"], name="sender_list_pattern")]

    def __str__(self) -> str:
        return f"{self.action} {self.pattern}"


class SieveVacationReply(models.Model):
    """When a mailbox's Sieve vacation last answered a sender (RFC 5230 4.2: one reply per
    sender per :days, per :handle)."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="+")
    sender = models.CharField(max_length=320)  # lower-cased envelope sender
    handle = models.CharField(max_length=64)  # :handle, or a hash of the reply's text
    sent_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox", "sender", "handle"], name="sievevacation_unique"
            )
        ]


class SieveDuplicate(models.Model):
    """Ids the Sieve duplicate test (RFC 7352) has seen for a mailbox, until they expire."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=64)  # sha256 of handle + id, hex
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "key"], name="sieveduplicate_unique")
        ]


class SieveScript(models.Model):
    """One Sieve script (RFC 5228) of a mailbox, managed over ManageSieve (RFC 5804) and the
    webmail; the MDA runs the one that is active. Text is validated when it is stored
    (services.sievescript_put), never when mail arrives."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="sieve_scripts")
    name = models.CharField(max_length=128)  # RFC 5804 1.6; case-sensitive
    text = models.TextField()
    active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["mailbox", "name"]
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "name"], name="sievescript_unique_name"),
            # RFC 5804 2.8: at most one script of a user is active.
            models.UniqueConstraint(
                fields=["mailbox"],
                condition=models.Q(active=True),
                name="sievescript_one_active",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.mailbox_id}:{self.name}{' (active)' if self.active else ''}"

    @property
    def size(self) -> int:
        return len(self.text.encode("utf-8"))


class AppPassword(models.Model):
    """A password for one device's mail client (IMAP, POP3, SMTP submission, ManageSieve),
    never for the web sign-in. Shown once; stored hashed (Django's hashers). `prefix` is its
    first characters, shown in the list and used to find the row without hashing every one."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="app_passwords")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=8, db_index=True)
    password = models.CharField(max_length=256)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["mailbox", "name"]


class RecoveryCode(models.Model):
    """A single-use code that stands in for a TOTP code (shown once, stored hashed)."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="recovery_codes")
    code = models.CharField(max_length=256)
    used_at = models.DateTimeField(null=True, blank=True)


class WebSession(models.Model):
    """One signed-in webmail session, listed under Settings > Sessions: deleting the row
    ends the session (the webmail checks for it on every request)."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="web_sessions")
    session_key = models.CharField(max_length=64, unique=True)
    user_agent = models.CharField(max_length=300, blank=True)
    ip = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["-last_seen_at"]


class AdminTOTP(models.Model):
    """Two-factor sign-in of a Django admin user (superusers are Django users, not mailboxes):
    enrolled with `manage.py admintotp`, asked for by the admin sign-in form."""

    user = models.OneToOneField("auth.User", on_delete=models.CASCADE, related_name="totp")
    secret = models.CharField(max_length=64)
    last_step = models.BigIntegerField(default=0)


class Passkey(models.Model):
    """A WebAuthn credential (a passkey or a security key) of a mailbox: signs in to the
    webmail without a password, or stands in for the TOTP code after it."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="passkeys")
    name = models.CharField(max_length=100)
    credential_id = models.CharField(max_length=1400, unique=True)  # base64url
    public_key = models.BinaryField()  # COSE_Key
    sign_count = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["mailbox", "name"]
