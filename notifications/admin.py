"""Dispatcher admin: the notification log (with resend), template sets and their rules, opt-outs, settings."""

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.utils.html import format_html

from taskhub.admin_scoping import CHANGE, OrgScopedAdmin, ScopedInline

from .models import Notification, NotificationSettings, Suppression, TemplateRule, TemplateSet
from .rendering import SAMPLE_CONTEXT, RenderError, check_template, render
from .services import notification_resend

NOTIFICATION_COLUMNS = ["created_at", "event", "channel", "to", "status", "attempts", "error"]


class TemplateRuleForm(forms.ModelForm):
    """Refuses a subject or body that does not compile, showing Django's reason."""

    class Meta:
        model = TemplateRule
        fields = ["event", "audience", "channel", "urgent", "enabled", "subject", "body"]
        widgets = {"body": forms.Textarea(attrs={"rows": 4, "cols": 90})}

    def clean_subject(self) -> str:
        return self._compiled("subject")

    def clean_body(self) -> str:
        return self._compiled("body")

    def _compiled(self, name: str) -> str:
        source = self.cleaned_data.get(name, "")
        try:
            check_template(source)
        except RenderError as exc:
            raise forms.ValidationError(f"This template does not compile: {exc}") from exc
        return source


class TemplateRuleInline(ScopedInline, admin.StackedInline):
    model = TemplateRule
    form = TemplateRuleForm
    extra = 0
    fields = [("event", "audience", "channel"), ("urgent", "enabled"), "subject", "body", "preview"]
    readonly_fields = ["preview"]

    @admin.display(description="preview (sample context)")
    def preview(self, obj: TemplateRule) -> str:
        if not obj.pk:
            return "Save to see a preview."
        try:
            subject = render(obj.subject, SAMPLE_CONTEXT) if obj.subject else ""
            body = render(obj.body, SAMPLE_CONTEXT)
        except RenderError as exc:
            return format_html('<span class="errornote">{}</span>', exc)
        if subject:
            return format_html("<strong>{}</strong><pre>{}</pre>", subject, body)
        return format_html("<pre>{}</pre>", body)


@admin.register(TemplateSet)
class TemplateSetAdmin(OrgScopedAdmin):
    list_display = ["name", "key", "is_default", "organization"]
    list_filter = ["is_default"]
    list_select_related = ["organization"]
    search_fields = ["name", "key"]
    inlines = [TemplateRuleInline]


@admin.register(Notification)
class NotificationAdmin(OrgScopedAdmin):
    """Every message sent or not, and why; the dispatcher can send one again."""

    list_display = ["created_at", "event", "channel", "to", "status", "task", "attempts", "short_error"]
    list_filter = ["status", "channel", "event", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["task"]
    search_fields = ["to", "=task__external_id", "task__title", "=provider_message_id"]
    date_hierarchy = "created_at"
    show_facets = admin.ShowFacets.NEVER
    actions = ["resend"]
    readonly_fields = [
        "organization", "task", "event", "rule", "recipient", "channel", "to", "subject", "body", "urgent", "status",
        "provider_message_id", "error", "attempts", "next_attempt_at", "sent_at", "idempotency_key", "created_at",
        "updated_at",
    ]  # fmt: skip

    @admin.display(description="error")
    def short_error(self, obj: Notification) -> str:
        return obj.error[:80]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return self._member_may(request, CHANGE, None)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        extra_context = {**(extra_context or {}), "show_save": False, "show_save_and_continue": False}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description="Resend the selected messages", permissions=["resend"])
    def resend(self, request: HttpRequest, queryset: QuerySet) -> None:
        copies = [notification_resend(notification=n) for n in queryset.select_related("organization")]
        held = sum(copy.status != Notification.Status.QUEUED for copy in copies)
        self.message_user(request, f"Queued {len(copies) - held} message(s) again.", messages.SUCCESS)
        if held:
            self.message_user(
                request, f"{held} copy(ies) not sent now: opted out or held for quiet hours.", messages.WARNING
            )


class DisplayOnlyFormSet(BaseInlineFormSet):
    """Shown on the page, never read back: the task's change form need not post anything for it."""

    def __init__(self, data=None, files=None, *args, **kwargs) -> None:
        super().__init__(None, None, *args, **kwargs)
        self.new_objects, self.changed_objects, self.deleted_objects = [], [], []

    def is_valid(self) -> bool:
        return True

    def has_changed(self) -> bool:
        return False

    def save(self, commit: bool = True) -> list:
        return []


class NotificationInline(ScopedInline, admin.TabularInline):
    """A task's messages, read-only, newest first; resend from the notification log."""

    model = Notification
    formset = DisplayOnlyFormSet
    fk_name = "task"
    extra = 0
    fields = NOTIFICATION_COLUMNS
    readonly_fields = NOTIFICATION_COLUMNS
    ordering = ["-created_at", "-id"]
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Suppression)
class SuppressionAdmin(OrgScopedAdmin):
    list_display = ["address", "channel", "reason", "created_at", "organization"]
    list_filter = ["channel"]
    list_select_related = ["organization"]
    search_fields = ["address", "reason"]


@admin.register(NotificationSettings)
class NotificationSettingsAdmin(OrgScopedAdmin):
    list_display = [
        "organization", "quiet_hours_start", "quiet_hours_end", "daily_sms_cap", "daily_email_cap", "digest_hour",
    ]  # fmt: skip
    list_select_related = ["organization"]
