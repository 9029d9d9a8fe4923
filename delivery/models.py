"""The outbound spool. The database is the queue's truth; RQ jobs carry only ids."""

from __future__ import annotations

from django.db import models

from mailboxes.models import Blob, Domain, Mailbox


class OutboundMessage(models.Model):
    queue_id = models.CharField(max_length=32, unique=True)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="outbound")
    # Envelope sender; "" is the null reverse-path (bounces), which never gets a DSN.
    mail_from = models.CharField(max_length=320, blank=True)
    sender_mailbox = models.ForeignKey(
        Mailbox, null=True, blank=True, on_delete=models.SET_NULL, related_name="outbound"
    )
    # RFC 3461 parameters given at MAIL FROM.
    envid = models.CharField(max_length=100, blank=True)
    ret = models.CharField(max_length=4, blank=True)  # "FULL", "HDRS" or ""
    smtputf8 = models.BooleanField(default=False)
    body_8bit = models.BooleanField(default=False)
    # RFC 8689 REQUIRETLS: delivered only over TLS verified by DANE or MTA-STS to a peer that
    # offers REQUIRETLS itself, else bounced.
    require_tls = models.BooleanField(default=False)
    size = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.queue_id


class RecipientStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    DEFERRED = "deferred", "deferred"
    DELIVERED = "delivered", "delivered"
    FAILED = "failed", "failed"
    # An operator's `manage.py queue hold`: never attempted (not due for the sweeper or a
    # job) until `queue release`, and never pruned; kept past the queue lifetime, as Postfix's
    # hold queue is.
    HOLD = "hold", "on hold"


class OutboundRecipient(models.Model):
    message = models.ForeignKey(
        OutboundMessage, on_delete=models.CASCADE, related_name="recipients"
    )
    address = models.CharField(max_length=320)
    # RFC 3461: NOTIFY as a comma list ("" = the default: FAILURE), ORCPT as given.
    notify = models.CharField(max_length=40, blank=True)
    orcpt = models.CharField(max_length=500, blank=True)
    status = models.CharField(
        max_length=10, choices=RecipientStatus.choices, default=RecipientStatus.QUEUED
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    # A worker holds the recipient until this time; the sweeper skips held rows.
    lease_until = models.DateTimeField(null=True, blank=True)
    # Which claim holds the lease: a job writes results only for rows still carrying its token.
    # Indexed by a Meta index: a field's db_index would add a varchar_pattern_ops twin on
    # PostgreSQL, for LIKE queries that nothing asks, written at every claim and result.
    lease_token = models.CharField(max_length=32, blank=True)
    last_reply = models.TextField(blank=True)
    mx_used = models.CharField(max_length=255, blank=True)
    # How the last session was protected: Protection's values ("" before any).
    protection = models.CharField(max_length=16, blank=True)
    delay_notified = models.BooleanField(default=False)
    # An operator's "retry now": the next attempt ignores the dead-address memo.
    retry_forced = models.BooleanField(default=False)
    dsn_sent = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["message", "id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="recipient_due"),
            models.Index(fields=["lease_token"], name="recipient_lease_token"),
        ]

    def __str__(self) -> str:
        return f"{self.address} ({self.status})"

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2].lower()


# --- Aggregate reports received about our domains (delivery/reports.py) -------------------


class DmarcReport(models.Model):
    """One DMARC aggregate report (RFC 7489 7.2) another receiver sent about `domain`."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="dmarc_reports")
    org_name = models.CharField(max_length=255)
    org_email = models.CharField(max_length=320, blank=True)
    report_id = models.CharField(max_length=255)
    begin = models.DateTimeField()
    end = models.DateTimeField()
    policy_domain = models.CharField(max_length=253)
    policy = models.CharField(max_length=16, blank=True)
    subdomain_policy = models.CharField(max_length=16, blank=True)
    pct = models.PositiveSmallIntegerField(null=True, blank=True)
    adkim = models.CharField(max_length=1, blank=True)
    aspf = models.CharField(max_length=1, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-begin", "org_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["domain", "org_name", "report_id"], name="dmarc_report_unique"
            )
        ]
        indexes = [models.Index(fields=["domain", "end"], name="dmarc_report_domain_end")]

    def __str__(self) -> str:
        return f"{self.org_name} {self.report_id} ({self.policy_domain})"


class DmarcRecord(models.Model):
    """One row of a DMARC report: `count` messages from `source_ip` claiming `header_from`."""

    report = models.ForeignKey(DmarcReport, on_delete=models.CASCADE, related_name="records")
    source_ip = models.GenericIPAddressField()
    count = models.PositiveIntegerField()
    disposition = models.CharField(max_length=16, blank=True)
    dkim = models.CharField(max_length=8, blank=True)  # DMARC-aligned DKIM: pass | fail
    spf = models.CharField(max_length=8, blank=True)  # DMARC-aligned SPF: pass | fail
    header_from = models.CharField(max_length=253, blank=True)
    envelope_from = models.CharField(max_length=253, blank=True)
    # The raw checks, "domain selector result" / "domain scope result", one per line.
    dkim_results = models.TextField(blank=True)
    spf_results = models.TextField(blank=True)


class TlsReport(models.Model):
    """One SMTP TLS report (RFC 8460) another sender sent about `domain`."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="tls_reports")
    org_name = models.CharField(max_length=255)
    contact = models.CharField(max_length=320, blank=True)
    report_id = models.CharField(max_length=255)
    begin = models.DateTimeField()
    end = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-begin", "org_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["domain", "org_name", "report_id"], name="tls_report_unique"
            )
        ]
        indexes = [models.Index(fields=["domain", "end"], name="tls_report_domain_end")]

    def __str__(self) -> str:
        return f"{self.org_name} {self.report_id}"


class TlsReportPolicy(models.Model):
    """One policy of a TLS report: sessions that succeeded and failed under it."""

    report = models.ForeignKey(TlsReport, on_delete=models.CASCADE, related_name="policies")
    policy_type = models.CharField(max_length=16, blank=True)  # sts | tlsa | no-policy-found
    policy_domain = models.CharField(max_length=253, blank=True)
    mx_hosts = models.TextField(blank=True)  # one per line
    successful = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    failure_details = models.JSONField(default=list, blank=True)


# --- Spam: the per-mailbox classifier, training requests, sender reputation, greylisting -----


class SpamToken(models.Model):
    """One hashed token's counts in one mailbox's classifier (delivery/spam/classifier.py).

    `token` is a 32-bit hash of the token text (never the text: the table stays small and
    says nothing readable). The reserved token 0 holds the mailbox's totals: how many
    messages were trained as spam and as ham."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="+")
    token = models.IntegerField()
    spam = models.PositiveIntegerField(default=0)
    ham = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "token"], name="spamtoken_unique")
        ]


class SpamTraining(models.Model):
    """What the user said of one message (its bytes, `blob_id`) in one mailbox: `spam` is
    the class wanted, `trained` the class its tokens are counted in now (None: not yet).
    A row whose two differ is pending; the trainer makes them agree (so a message moved into
    Junk and back out is counted once, as ham). blob_id is a plain number, not a foreign
    key: the blob may be collected after its messages go; the row then cannot be retrained."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="+")
    blob_id = models.BigIntegerField()
    spam = models.BooleanField()
    trained = models.BooleanField(null=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "blob_id"], name="spamtraining_unique")
        ]


class KnownSender(models.Model):
    """A sender one mailbox trusts: it wrote to them ("wrote_to": a recipient of mail it
    submitted) or moved their mail out of Junk ("not_junk"). Addresses are lower case."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="+")
    address = models.CharField(max_length=320)
    source = models.CharField(max_length=10)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "address"], name="knownsender_unique")
        ]


class GreylistEntry(models.Model):
    """One (client network, sender, recipient) triple seen on port 25 (RFC 6647).

    `passed_at` is set once the client retried after the delay; from then on the triple is
    let through until it is unseen for MAILHOST_GREYLIST_EXPIRY."""

    network = models.CharField(max_length=64)  # the client's /24 (IPv4) or /64 (IPv6)
    sender = models.CharField(max_length=320)
    recipient = models.CharField(max_length=320)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)
    passed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["network", "sender", "recipient"], name="greylist_triple_unique"
            )
        ]


class Protection(models.TextChoices):
    """What protected an outbound session, strongest first."""

    DANE = "dane", "DANE (TLSA verified)"
    MTA_STS = "mta-sts", "MTA-STS (certificate verified)"
    TLS = "tls", "TLS (not verified)"
    PLAIN = "plain", "none (plain text)"


class MtaStsPolicy(models.Model):
    """A recipient domain's MTA-STS policy (RFC 8461), kept until max_age after its fetch."""

    domain = models.CharField(max_length=255, unique=True)
    policy_id = models.CharField(max_length=32)
    mode = models.CharField(max_length=8)
    mx = models.TextField()  # the patterns, one per line
    max_age = models.PositiveIntegerField()
    fetched_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.domain} ({self.mode}, id {self.policy_id})"


# --- Aggregate reports we send: TLS (RFC 8460) and DMARC (RFC 7489) ---------------------------


class TlsSessionCount(models.Model):
    """Outbound TLS sessions of one UTC day under one policy of one recipient domain, by
    result (RFC 8460 4.3; "" is success), counted in memory by delivery/outreports/tlsrpt.py
    and added here with F() increments. A failure row names the MX host and addresses."""

    day = models.DateField()
    policy_domain = models.CharField(max_length=253)
    policy_type = models.CharField(max_length=16)  # tlsa | sts | no-policy-found
    policy_digest = models.CharField(max_length=64)  # SHA-256 of the strings and mx-host
    policy_strings = models.JSONField(default=list)
    mx_patterns = models.JSONField(default=list)  # the report's mx-host
    result_type = models.CharField(max_length=32, blank=True)
    mx_host = models.CharField(max_length=253, blank=True)
    receiving_ip = models.CharField(max_length=45, blank=True)
    sending_ip = models.CharField(max_length=45, blank=True)
    reason = models.CharField(max_length=255, blank=True)  # failure-reason-code (the last seen)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "day",
                    "policy_domain",
                    "policy_type",
                    "policy_digest",
                    "result_type",
                    "mx_host",
                    "receiving_ip",
                    "sending_ip",
                ],
                name="tls_session_count_unique",
            )
        ]
        indexes = [models.Index(fields=["day", "policy_domain"], name="tls_session_day_domain")]


class DmarcEvaluation(models.Model):
    """The DMARC evaluation of one message received on port 25 (accepted or refused), for
    the aggregate report to the From domain's rua (RFC 7489 7.2); removed once reported."""

    day = models.DateField()
    header_from = models.CharField(max_length=253)
    envelope_from = models.CharField(max_length=253, blank=True)
    source_ip = models.CharField(max_length=45)
    disposition = models.CharField(max_length=10)  # none | quarantine | reject
    dkim_aligned = models.BooleanField(default=False)
    spf_aligned = models.BooleanField(default=False)
    override = models.CharField(max_length=20, blank=True)  # RFC 7489 PolicyOverrideType
    spf_domain = models.CharField(max_length=253, blank=True)
    spf_scope = models.CharField(max_length=5, default="mfrom")  # mfrom | helo
    spf_result = models.CharField(max_length=10, default="none")
    dkim = models.JSONField(default=list)  # [[domain, selector, result], ...]

    class Meta:
        indexes = [models.Index(fields=["day", "header_from"], name="dmarc_eval_day_from")]


class ReportSent(models.Model):
    """An aggregate report of one kind, day and policy domain was sent (or handed to its
    https destinations): the unique row makes it once, whichever process gets there first."""

    class Kind(models.TextChoices):
        TLS = "tls", "TLS (RFC 8460)"
        DMARC = "dmarc", "DMARC (RFC 7489)"

    kind = models.CharField(max_length=5, choices=Kind.choices)
    day = models.DateField()
    domain = models.CharField(max_length=253)
    report_id = models.CharField(max_length=255)
    destinations = models.TextField(blank=True)  # one per line
    sent_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "reports sent"
        constraints = [
            models.UniqueConstraint(fields=["kind", "day", "domain"], name="report_sent_unique")
        ]
