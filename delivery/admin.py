"""The queue in the Django admin: messages, recipients, and the operator's actions; and
what delivery adds to a domain's page (its DNS records, their check, the aggregate reports
received about it).

Actions go through delivery/services.py; the RQ dashboard (django-rq) is at /admin/rq/.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from delivery import dnsrecords, services
from delivery import selectors as delivery_selectors
from delivery.dkim import dkim_txt_record
from delivery.models import OutboundMessage, OutboundRecipient, RecipientStatus, ReportSent
from mailboxes import admin as mailboxes_admin
from mailboxes.models import Domain

PENDING = [RecipientStatus.QUEUED, RecipientStatus.DEFERRED]


class OutboundRecipientInline(admin.TabularInline):
    model = OutboundRecipient
    extra = 0
    can_delete = False
    fields = [
        "address",
        "status",
        "attempts",
        "next_attempt_at",
        "last_attempt_at",
        "last_reply",
        "mx_used",
        "protection",
        "notify",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(OutboundMessage)
class OutboundMessageAdmin(admin.ModelAdmin):
    list_display = [
        "queue_id",
        "sender",
        "recipient_count",
        "pending_count",
        "failed_count",
        "size",
        "created_at",
    ]
    search_fields = ["queue_id", "mail_from", "recipients__address"]
    date_hierarchy = "created_at"
    inlines = [OutboundRecipientInline]
    readonly_fields = [
        "queue_id",
        "mail_from",
        "sender_mailbox",
        "envid",
        "ret",
        "smtputf8",
        "body_8bit",
        "size",
        "created_at",
        "blob",
    ]
    fields = readonly_fields
    actions = ["retry_now", "bounce_now", "delete_from_queue"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                _recipients=Count("recipients"),
                _pending=Count("recipients", filter=Q(recipients__status__in=PENDING)),
                _failed=Count("recipients", filter=Q(recipients__status=RecipientStatus.FAILED)),
            )
        )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # "delete from queue" frees the bytes through the service

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description="sender", ordering="mail_from")
    def sender(self, obj: OutboundMessage) -> str:
        return obj.mail_from or "<> (bounce)"

    @admin.display(description="recipients", ordering="_recipients")
    def recipient_count(self, obj) -> int:
        return obj._recipients

    @admin.display(description="pending", ordering="_pending")
    def pending_count(self, obj) -> int:
        return obj._pending

    @admin.display(description="failed", ordering="_failed")
    def failed_count(self, obj) -> int:
        return obj._failed

    @admin.action(description="Retry now")
    def retry_now(self, request, queryset):
        ids = OutboundRecipient.objects.filter(message__in=queryset).values_list("id", flat=True)
        count = services.recipients_retry_now(recipient_ids=list(ids))
        self.message_user(request, f"{count} recipient(s) will be tried now.", messages.SUCCESS)

    @admin.action(description="Bounce now (fail pending recipients, notify the sender)")
    def bounce_now(self, request, queryset):
        ids = OutboundRecipient.objects.filter(message__in=queryset).values_list("id", flat=True)
        count = services.recipients_bounce_now(recipient_ids=list(ids))
        self.message_user(request, f"{count} recipient(s) bounced.", messages.SUCCESS)

    @admin.action(description="Delete from the queue (no notification)")
    def delete_from_queue(self, request, queryset):
        count = services.messages_delete(message_ids=list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"{count} message(s) deleted.", messages.SUCCESS)


@admin.register(OutboundRecipient)
class OutboundRecipientAdmin(admin.ModelAdmin):
    list_display = [
        "address",
        "queue_link",
        "status",
        "attempts",
        "next_attempt_at",
        "last_reply_short",
        "mx_used",
        "protection",
        "updated_at",
    ]
    list_filter = ["status", "protection"]
    search_fields = ["address", "message__queue_id", "message__mail_from", "last_reply"]
    list_select_related = ["message"]
    readonly_fields = [f.name for f in OutboundRecipient._meta.fields]
    actions = ["retry_now", "bounce_now"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description="message", ordering="message__queue_id")
    def queue_link(self, obj: OutboundRecipient) -> str:
        return format_html(
            '<a href="../outboundmessage/{}/change/">{}</a>', obj.message_id, obj.message.queue_id
        )

    @admin.display(description="last reply")
    def last_reply_short(self, obj: OutboundRecipient) -> str:
        reply = obj.last_reply
        return reply if len(reply) <= 80 else reply[:77] + "..."

    @admin.action(description="Retry now")
    def retry_now(self, request, queryset):
        count = services.recipients_retry_now(
            recipient_ids=list(queryset.values_list("id", flat=True))
        )
        self.message_user(request, f"{count} recipient(s) will be tried now.", messages.SUCCESS)

    @admin.action(description="Bounce now (fail, notify the sender)")
    def bounce_now(self, request, queryset):
        count = services.recipients_bounce_now(
            recipient_ids=list(queryset.values_list("id", flat=True))
        )
        self.message_user(request, f"{count} recipient(s) bounced.", messages.SUCCESS)


@admin.register(ReportSent)
class ReportSentAdmin(admin.ModelAdmin):
    """The aggregate reports we sent (delivery/outreports): read only, the job writes them."""

    list_display = ["sent_at", "kind", "day", "domain", "report_id", "destinations"]
    list_filter = ["kind", "day"]
    search_fields = ["domain", "report_id"]
    date_hierarchy = "day"
    readonly_fields = list_display

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class DomainAdmin(mailboxes_admin.DomainAdmin):
    """The store's domain page (mailboxes/admin.py), with delivery's records and reports."""

    readonly_fields = ["dkim_dns_record", "dns_records", "aggregate_reports"]

    @admin.display(description="DKIM records to publish")
    def dkim_dns_record(self, obj: Domain) -> str:
        record = dkim_txt_record(obj) if obj.pk else ""
        return format_html('<code class="dkim-record">{}</code>', record) if record else "-"

    @admin.display(description="DNS records to publish")
    def dns_records(self, obj: Domain) -> str:
        if not obj.pk:
            return "-"
        lines = "\n".join(r.zone_line for r in dnsrecords.domain_records(obj))
        check = reverse("admin:mailboxes_domain_checkdns", args=[obj.pk])
        return format_html(
            '<pre class="dns-records">{}</pre><a href="{}">Check these records in DNS</a>'
            " (as <code>manage.py checkdns {}</code> does)",
            lines,
            check,
            obj.name,
        )

    @admin.display(description="DMARC and TLS reports")
    def aggregate_reports(self, obj: Domain) -> str:
        if not obj.pk:
            return "-"
        return format_html(
            '<a href="{}">Reports other mail servers sent about {}</a>'
            " (to the rua addresses of its _dmarc and _smtp._tls records)",
            reverse("admin:mailboxes_domain_reports", args=[obj.pk]),
            obj,
        )

    def get_urls(self):
        check = path(
            "<path:object_id>/checkdns/",
            self.admin_site.admin_view(self.checkdns_view),
            name="mailboxes_domain_checkdns",
        )
        reports = path(
            "<path:object_id>/reports/",
            self.admin_site.admin_view(self.reports_view),
            name="mailboxes_domain_reports",
        )
        return [check, reports, *super().get_urls()]

    REPORT_DAYS = (7, 30, 90, 365)

    def reports_view(self, request, object_id):
        """DMARC aggregate reports (who sends as the domain, SPF/DKIM/DMARC pass and fail)
        and SMTP TLS reports (sessions that succeeded and failed) of the last days."""
        domain = self.get_object(request, object_id)
        if domain is None or not self.has_view_permission(request, domain):
            raise Http404("no such domain")
        days = request.GET.get("days", "30")
        days = int(days) if days.isdigit() and int(days) in self.REPORT_DAYS else 30
        since = timezone.now() - timedelta(days=days)
        context = {
            **self.admin_site.each_context(request),
            "title": f"DMARC and TLS reports about {domain}",
            "opts": self.model._meta,
            "original": domain,
            "days": days,
            "day_choices": self.REPORT_DAYS,
            "dmarc": delivery_selectors.dmarc_summary(domain, since=since),
            "tls": delivery_selectors.tls_summary(domain, since=since),
            "dmarc_rua": f"{dnsrecords.DMARC_RUA_LOCAL_PART}@{domain.name}",
            "tls_rua": f"{dnsrecords.TLSRPT_RUA_LOCAL_PART}@{domain.name}",
        }
        return TemplateResponse(request, "admin/mailboxes/domain_reports.html", context)

    def checkdns_view(self, request, object_id):
        """What DNS answers for each record of the domain (MAILHOST_DNS_SERVERS)."""
        domain = self.get_object(request, object_id)
        if domain is None or not self.has_view_permission(request, domain):
            raise Http404("no such domain")
        checks = dnsrecords.check_records(dnsrecords.domain_records(domain))
        context = {
            **self.admin_site.each_context(request),
            "title": f"DNS check of {domain}",
            "opts": self.model._meta,
            "original": domain,
            "checks": checks,
            "all_ok": all(c.status is dnsrecords.Status.OK for c in checks),
        }
        return TemplateResponse(request, "admin/mailboxes/domain_checkdns.html", context)


admin.site.unregister(Domain)
admin.site.register(Domain, DomainAdmin)
