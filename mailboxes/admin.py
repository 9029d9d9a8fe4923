"""Django admin for domains, mailboxes and aliases. Writes go through the services.

The domain's page gains its DNS records, DNS check and aggregate reports from
delivery/admin.py, which extends DomainAdmin (the store does not import delivery)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count
from django.utils.html import format_html

from mailboxes import selectors, senderlists, services
from mailboxes.addresses import domain_to_ascii, parse_address
from mailboxes.exceptions import InvalidAddress, InvalidValue, NotFound
from mailboxes.models import (
    Alias,
    DkimKey,
    Domain,
    Folder,
    Mailbox,
    SenderListEntry,
    SieveScript,
)
from mailboxes.selectors import destinations_undeliverable
from mailboxes.sizes import format_size, human_size, parse_size


class QuotaField(forms.CharField):
    """A quota as people write it (500M, 2G, 1.5 GB, 0 or unlimited), stored in bytes."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault(
            "help_text", "500M, 2G, 1.5 GB (binary units) or bytes; 0 or empty: unlimited."
        )
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, int):
            return format_size(value) if value else "0"
        return value

    def to_python(self, value) -> int:
        if str(value or "").strip().startswith("-"):
            raise forms.ValidationError("quota must not be negative")
        try:
            return parse_size(str(value or ""))
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


def _search_by_address(parent, request, queryset, search_term: str, *, destinations=False):
    """Admin search that also understands a whole address (`alice@example.org`, IDNA too);
    for aliases, an address also finds the aliases that deliver to it."""
    term = search_term.strip()
    if "@" in term and " " not in term:
        local, _, domain = term.rpartition("@")
        try:
            domain = domain_to_ascii(domain) if domain else ""
        except InvalidAddress:
            domain = domain.lower()
        qs = queryset
        if local and local != "*":
            qs = qs.filter(local_key__iexact=local)
        elif local == "*":
            qs = qs.filter(local_key="")
        if domain:
            qs = qs.filter(domain__name=domain)
        if destinations and local and local != "*":
            qs = qs | queryset.filter(destinations__icontains=f"{local}@{domain}")
        return qs, False
    return parent.get_search_results(request, queryset, search_term)


class DomainForm(forms.ModelForm):
    class Meta:
        model = Domain
        fields = ["name", "active", "case_sensitive_local_parts", "plus_separator", "sieve_default"]
        widgets = {"sieve_default": forms.Textarea(attrs={"rows": 8, "cols": 80})}

    def clean_sieve_default(self):
        """Validated here, when it is saved (the MDA never checks a script at delivery)."""
        text = self.cleaned_data["sieve_default"]
        if not text.strip():
            return ""
        if len(text.encode("utf-8")) > settings.MAILHOST_SIEVE_MAX_SCRIPT_SIZE:
            raise forms.ValidationError(
                f"larger than {settings.MAILHOST_SIEVE_MAX_SCRIPT_SIZE} octets"
            )
        errors = services.sievescript_check(text=text)
        if errors:
            raise forms.ValidationError(
                [f"line {e.line}, column {e.column}: {e.message}" for e in errors]
            )
        return text

    def clean_name(self):
        try:
            return domain_to_ascii(self.cleaned_data["name"])
        except InvalidAddress as exc:
            raise forms.ValidationError(str(exc)) from None


class DkimKeyInline(admin.TabularInline):
    """The domain's DKIM keys; created, activated and retired by the actions (or
    `manage.py dkimkey`), never edited."""

    model = DkimKey
    fields = ["selector", "algorithm", "state", "created_at", "activated_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class SenderListForm(forms.ModelForm):
    class Meta:
        model = SenderListEntry
        fields = ["pattern", "action"]

    def clean_pattern(self):
        try:
            return senderlists.pattern_normalize(self.cleaned_data["pattern"])
        except InvalidValue as exc:
            raise forms.ValidationError(str(exc)) from None


class SenderListInline(admin.TabularInline):
    """Allow and block list entries of the domain (for all its mailboxes) or of one mailbox
    (which beat the domain's); saved through services.sender_list_add/_remove."""

    model = SenderListEntry
    form = SenderListForm
    fields = ["pattern", "action", "created_at"]
    readonly_fields = ["created_at"]
    extra = 1
    verbose_name = "allowed or blocked sender"
    verbose_name_plural = "allowed and blocked senders"


class DomainSenderListInline(SenderListInline):
    fk_name = "domain"


class MailboxSenderListInline(SenderListInline):
    fk_name = "mailbox"


def save_sender_list(parent_field: str, form, formset) -> None:
    """Save an admin sender-list formset through the services (never the ORM directly)."""
    owner = {parent_field: form.instance}
    formset.save(commit=False)
    for entry in formset.deleted_objects:
        services.sender_list_remove(entry_id=entry.pk, **owner)
    for entry, _changed in formset.changed_objects:
        services.sender_list_remove(entry_id=entry.pk, **owner)
        services.sender_list_add(pattern=entry.pattern, action=entry.action, **owner)
    for entry in formset.new_objects:
        services.sender_list_add(pattern=entry.pattern, action=entry.action, **owner)


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    form = DomainForm
    list_display = ["name", "unicode_name", "active", "mailbox_count", "created_at"]
    list_filter = ["active"]
    search_fields = ["name"]
    inlines = [DkimKeyInline, DomainSenderListInline]
    actions = ["new_dkim_key_rsa", "new_dkim_key_ed25519"]

    class Media:
        css = {"all": ["mailboxes/admin.css"]}

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_mailbox_count=Count("mailboxes"))

    @admin.display(description="mailboxes", ordering="_mailbox_count")
    def mailbox_count(self, obj: Domain) -> int:
        return obj._mailbox_count

    def _new_dkim_keys(self, request, queryset, algorithm: str) -> None:
        for domain in queryset:
            key = services.dkim_key_create(domain=domain, algorithm=algorithm)
            self.message_user(
                request,
                f"{domain}: new {algorithm} key {key.selector}, published, not signing yet:"
                f" add its record to DNS, then activate it (DKIM keys, or `manage.py dkimkey"
                f" {domain.name} --activate {key.selector}`)",
                messages.SUCCESS,
            )

    @admin.action(description="Create a new DKIM key (RSA) to rotate to", permissions=["change"])
    def new_dkim_key_rsa(self, request, queryset):
        self._new_dkim_keys(request, queryset, DkimKey.Algorithm.RSA)

    @admin.action(description="Create a new DKIM key (ed25519, RFC 8463)", permissions=["change"])
    def new_dkim_key_ed25519(self, request, queryset):
        self._new_dkim_keys(request, queryset, DkimKey.Algorithm.ED25519)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            services.dkim_key_create(domain=obj, selector=services.DKIM_FIRST_SELECTOR, active=True)

    def save_formset(self, request, form, formset, change):
        if formset.model is SenderListEntry:
            save_sender_list("domain", form, formset)
        else:
            super().save_formset(request, form, formset, change)


@admin.register(DkimKey)
class DkimKeyAdmin(admin.ModelAdmin):
    list_display = ["selector", "domain", "algorithm", "state", "created_at", "activated_at"]
    list_filter = ["state", "algorithm"]
    search_fields = ["domain__name", "selector"]
    fields = ["domain", "selector", "algorithm", "state", "created_at", "activated_at"]
    readonly_fields = fields
    actions = ["activate", "retire"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def _each(self, request, queryset, service, done: str) -> None:
        for key in queryset.select_related("domain"):
            try:
                service(domain=key.domain, selector=key.selector)
            except (InvalidValue, NotFound) as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"{key.selector} of {key.domain}: {done}")

    @admin.action(description="Activate (sign with it; its record must be in DNS)")
    def activate(self, request, queryset):
        self._each(request, queryset, services.dkim_key_activate, "signs the domain's mail now")

    @admin.action(description="Retire (leave its record out; erase the private key)")
    def retire(self, request, queryset):
        self._each(request, queryset, services.dkim_key_retire, "retired")


class FolderForm(forms.ModelForm):
    """A folder row with its subscription (a Subscription row, not a Folder field): saved
    through services.subscription_set by MailboxAdmin.save_formset."""

    subscribed = forms.BooleanField(required=False)

    class Meta:
        model = Folder
        fields: list[str] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["subscribed"].initial = selectors.is_subscribed(
                self.instance.mailbox_id, self.instance.name
            )


class FolderInline(admin.TabularInline):
    model = Folder
    form = FolderForm
    # Django's tabular inline without the row's str() label ("1:Archive") above each row:
    # the name is the first column already.
    template = "admin/mailboxes/folder_inline.html"
    fields = ["name", "special_use", "subscribed", "message_count", "unseen_count", "size"]
    readonly_fields = ["name", "special_use", "message_count", "unseen_count", "size"]
    extra = 0
    can_delete = False
    show_change_link = False

    @admin.display(description="size")
    def size(self, obj: Folder) -> str:
        return human_size(obj.total_size)

    def has_add_permission(self, request, obj=None):
        return False


class MailboxForm(forms.ModelForm):
    address = forms.CharField(help_text="user@example.org")
    quota = QuotaField()
    quota_messages = forms.IntegerField(
        required=False,
        min_value=0,
        label="Message quota",
        help_text="Messages in all folders; 0 or empty: unlimited.",
    )
    new_password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the current password.",
    )

    class Meta:
        model = Mailbox
        fields = ["display_name", "quota", "quota_messages", "active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["address"].initial = self.instance.address
            self.fields["address"].disabled = True
        else:
            self.fields["new_password"].required = True
            self.fields["new_password"].help_text = ""
            # A new mailbox starts from the defaults addmailbox gives.
            self.initial["quota"] = settings.MAILHOST_DEFAULT_QUOTA
            self.initial["quota_messages"] = settings.MAILHOST_DEFAULT_QUOTA_MESSAGES

    def clean_address(self):
        if self.instance.pk:
            return self.instance.address
        try:
            parsed = parse_address(self.cleaned_data["address"])
        except InvalidAddress as exc:
            raise forms.ValidationError(str(exc)) from None
        domain = Domain.objects.filter(name=parsed.domain).first()
        if domain is None:
            raise forms.ValidationError(f"domain {parsed.domain} is not hosted here")
        local_key = domain.local_key(parsed.local_part)
        if Mailbox.objects.filter(domain=domain, local_key=local_key).exists():
            raise forms.ValidationError("a mailbox with this address exists")
        if Alias.objects.filter(domain=domain, local_key=local_key).exists():
            raise forms.ValidationError("an alias with this address exists")
        return str(parsed)

    def clean_quota(self):
        quota = self.cleaned_data.get("quota") or 0
        if quota < 0:
            raise forms.ValidationError("quota must not be negative")
        return quota

    def clean_quota_messages(self):
        return self.cleaned_data.get("quota_messages") or 0

    def clean_new_password(self):
        password = self.cleaned_data.get("new_password")
        if password:
            try:
                services.password_check_strength(password)
            except InvalidValue as exc:
                raise forms.ValidationError(str(exc)) from None
        return password


class SieveScriptInline(admin.TabularInline):
    """The mailbox's Sieve scripts, to look at: the user manages them (ManageSieve, the
    webmail's Filters), and the domain's default script is on the domain's page."""

    model = SieveScript
    fields = ["name", "active", "script", "updated_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name = "Sieve script"

    @admin.display(description="script")
    def script(self, obj: SieveScript) -> str:
        return format_html('<pre class="sieve-script">{}</pre>', obj.text)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Mailbox)
class MailboxAdmin(admin.ModelAdmin):
    form = MailboxForm
    list_display = [
        "address_display",
        "display_name",
        "active",
        "quota_display",
        "usage",
        "messages_display",
        "last_login_at",
    ]
    list_filter = ["active", "domain"]
    search_fields = ["local_part", "domain__name", "display_name"]
    list_select_related = ["domain"]
    list_per_page = 100
    show_full_result_count = False
    readonly_fields = ["usage", "messages_display", "last_login_at"]
    inlines = [FolderInline, MailboxSenderListInline, SieveScriptInline]

    def get_search_results(self, request, queryset, search_term):
        return _search_by_address(super(), request, queryset, search_term)

    @admin.display(description="address", ordering="local_key")
    def address_display(self, obj: Mailbox) -> str:
        return obj.address

    @admin.display(description="quota", ordering="quota")
    def quota_display(self, obj: Mailbox) -> str:
        return human_size(obj.quota) if obj.quota else "unlimited"

    @admin.display(description="used", ordering="used_bytes")
    def usage(self, obj: Mailbox) -> str:
        if obj.quota:
            return f"{human_size(obj.used_bytes)} ({100 * obj.used_bytes / obj.quota:.0f}%)"
        return human_size(obj.used_bytes)

    @admin.display(description="messages", ordering="used_messages")
    def messages_display(self, obj: Mailbox) -> str:
        if obj.quota_messages:
            return f"{obj.used_messages} of {obj.quota_messages}"
        return str(obj.used_messages)

    def save_model(self, request, obj, form, change):
        password = form.cleaned_data.get("new_password")
        if change:
            services.mailbox_update(
                mailbox=obj,
                display_name=form.cleaned_data.get("display_name", ""),
                quota=form.cleaned_data.get("quota") or 0,
                quota_messages=form.cleaned_data.get("quota_messages") or 0,
                active=form.cleaned_data.get("active", True),
            )
            if password:
                services.mailbox_set_password(mailbox=obj, password=password)
            return
        created = services.mailbox_create(
            address=form.cleaned_data["address"],
            password=password,
            quota=form.cleaned_data.get("quota") or 0,
            quota_messages=form.cleaned_data.get("quota_messages") or 0,
            display_name=form.cleaned_data.get("display_name", ""),
            active=form.cleaned_data.get("active", True),
        )
        obj.pk = created.pk
        obj.__dict__.update(Mailbox.objects.get(pk=created.pk).__dict__)

    def get_inlines(self, request, obj):
        # mailbox_create makes the folders: the add form has none to show or save.
        return self.inlines if obj is not None else []

    def save_formset(self, request, form, formset, change):
        if formset.model is SenderListEntry:
            save_sender_list("mailbox", form, formset)
        elif formset.model is Folder:
            # Folder rows are read-only here; only their subscription changes.
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
            for folder_form in formset.forms:
                if folder_form.instance.pk and "subscribed" in folder_form.changed_data:
                    services.folder_set_subscribed(
                        folder=folder_form.instance,
                        subscribed=folder_form.cleaned_data["subscribed"],
                    )
        else:
            super().save_formset(request, form, formset, change)


class AliasForm(forms.ModelForm):
    address = forms.CharField(help_text="alias@example.org, or *@example.org for a catch-all")

    class Meta:
        model = Alias
        fields = ["destinations", "active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["address"].initial = self.instance.address
            self.fields["address"].disabled = True

    def clean_address(self):
        if self.instance.pk:
            return self.instance.address
        text = self.cleaned_data["address"].strip()
        try:
            if text.startswith("@") or text.startswith("*@"):
                local_part, domain_name = "", domain_to_ascii(text.split("@", 1)[1])
            else:
                parsed = parse_address(text)
                local_part, domain_name = parsed.local_part, parsed.domain
        except InvalidAddress as exc:
            raise forms.ValidationError(str(exc)) from None
        domain = Domain.objects.filter(name=domain_name).first()
        if domain is None:
            raise forms.ValidationError(f"domain {domain_name} is not hosted here")
        local_key = domain.local_key(local_part)
        if Alias.objects.filter(domain=domain, local_key=local_key).exists():
            raise forms.ValidationError("an alias with this address exists")
        if local_key and Mailbox.objects.filter(domain=domain, local_key=local_key).exists():
            raise forms.ValidationError("a mailbox with this address exists")
        return f"{local_part}@{domain_name}" if local_part else f"*@{domain_name}"

    def clean_destinations(self):
        items = self.cleaned_data["destinations"].replace(",", "\n").split()
        if not items:
            raise forms.ValidationError("at least one destination")
        try:
            return "\n".join(str(parse_address(item)) for item in items)
        except InvalidAddress as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(Alias)
class AliasAdmin(admin.ModelAdmin):
    form = AliasForm
    list_display = ["address_display", "destinations_display", "active"]
    list_filter = ["active", "domain"]
    search_fields = ["local_part", "domain__name", "destinations"]
    list_select_related = ["domain"]

    def get_search_results(self, request, queryset, search_term):
        return _search_by_address(super(), request, queryset, search_term, destinations=True)

    @admin.display(description="address", ordering="local_key")
    def address_display(self, obj: Alias) -> str:
        return obj.address

    @admin.display(description="destinations")
    def destinations_display(self, obj: Alias) -> str:
        return ", ".join(obj.destination_list)

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
        else:
            created = services.alias_create(
                address=form.cleaned_data["address"],
                destinations=form.cleaned_data["destinations"].split(),
                active=form.cleaned_data.get("active", True),
            )
            obj.pk = created.pk
            obj.__dict__.update(Alias.objects.get(pk=created.pk).__dict__)
        for address in destinations_undeliverable(obj.destination_list):
            # Saved all the same: the mailbox may be made next.
            messages.warning(
                request,
                f"{address} is not a mailbox or alias here (yet): mail to {obj.address} for"
                " it bounces until it is created.",
            )
