"""The maildrop lease: one POP3 session per mailbox, across every front end (RFC 1939 8)."""

from __future__ import annotations

from django.db import models


class MaildropLease(models.Model):
    """Who holds a mailbox's POP3 lock, until when; kept after release for LOGIN-DELAY.

    Used when REDIS_URL is unset (with Redis the lease is a key with a TTL). A session renews
    its lease while it lives, so a crashed front end's lease simply runs out.
    """

    mailbox = models.OneToOneField(
        "mailboxes.Mailbox", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    holder = models.CharField(max_length=64, blank=True, default="")  # "" when free
    expires_at = models.DateTimeField()
    last_login_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.mailbox_id}:{self.holder or '-'}"
