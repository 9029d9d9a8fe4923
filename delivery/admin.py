"""The queue in the Django admin: messages, recipients, and the operator's actions.

Actions go through delivery/services.py; the RQ dashboard (django-rq) is at /admin/rq/.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.utils.html import format_html

from delivery import services
from delivery.models import OutboundMessage, OutboundRecipient, RecipientStatus, ReportSent

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
