"""Webhooks in the dispatcher admin: endpoints, the message log, deliveries and their attempts.

Writes go through `webhooks.services`, as the API's do. Rows are scoped to the user's organizations.
"""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from taskhub.admin_scoping import OrgScopedAdmin, SameOrganizationForm, ScopedInline, membership_roles
from taskhub.errors import DomainError

from . import http, services
from .models import Attempt, Delivery, Endpoint, Event


class ReadOnly:
    """Admin mixin: a log to read, never to add to or edit."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class EndpointForm(SameOrganizationForm):
    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            http.check_url(url)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return url


@admin.register(Endpoint)
class EndpointAdmin(OrgScopedAdmin):
    form = EndpointForm
    list_display = ["url", "description", "organization", "enabled", "failing_since", "disabled_reason"]
    list_filter = ["enabled"]
    list_select_related = ["organization"]
    search_fields = ["url", "description"]
    readonly_fields = ["disabled_at", "disabled_reason", "failing_since", "previous_secret_expires_at", "created_at"]
    actions = ["send_test", "rotate_secret", "recover_failed"]

    def save_model(self, request: HttpRequest, obj: Endpoint, form, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            messages.warning(request, f"The signing secret of {obj.url} is {obj.secret} — it is shown only now.")
            return
        fields = {name: form.cleaned_data[name] for name in form.changed_data if name in services.ENDPOINT_FIELDS}
        services.endpoint_update(endpoint=Endpoint.objects.get(pk=obj.pk), **fields)

    @admin.action(description="Send a webhook.test event")
    def send_test(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        for endpoint in queryset:
            self._run(request, lambda e=endpoint: services.endpoint_send_test(endpoint=e), f"Test sent to {endpoint}.")

    @admin.action(description="Rotate the signing secret (the old one keeps working for 24 h)")
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        for endpoint in queryset:
            secret = services.endpoint_rotate_secret(endpoint=endpoint)
            messages.warning(request, f"New secret of {endpoint.url}: {secret} — it is shown only now.")

    @admin.action(description="Re-send messages that failed in the last 30 days")
    def recover_failed(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        since = timezone.now() - services.RECOVER_WINDOW + timedelta(minutes=1)
        for endpoint in queryset:
            self._run(
                request,
                lambda e=endpoint: services.endpoint_recover(endpoint=e, since=since),
                f"Failed messages of {endpoint} scheduled again.",
            )

    @staticmethod
    def _run(request: HttpRequest, call, success: str) -> None:
        try:
            call()
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, success)


class DeliveryInline(ReadOnly, ScopedInline, admin.TabularInline):
    model = Delivery
    extra = 0
    fields = ["link", "endpoint", "status", "attempts", "next_attempt_at", "last_status_code", "last_error"]
    readonly_fields = fields
    can_delete = False

    @admin.display(description="delivery")
    def link(self, delivery: Delivery) -> str:
        url = reverse("admin:webhooks_delivery_change", args=[delivery.pk])
        return format_html('<a href="{}">#{}</a>', url, delivery.pk)


@admin.register(Event)
class EventAdmin(ReadOnly, OrgScopedAdmin):
    """The message log, read-only; resend sends the same message (same webhook-id) again."""

    list_display = ["id", "type", "organization", "task", "request_id", "created_at"]
    list_filter = ["type", "deliveries__status"]
    list_select_related = ["organization", "task"]
    search_fields = ["=id", "=request_id", "task__external_id"]
    readonly_fields = ["id", "organization", "type", "task", "request_id", "created_at", "payload"]
    fields = readonly_fields
    inlines = [DeliveryInline]
    actions = ["resend"]

    @admin.action(description="Resend the selected messages")
    def resend(self, request: HttpRequest, queryset: QuerySet[Event]) -> None:
        count = 0
        for event in queryset:
            try:
                count += len(services.message_resend(event=event))
            except DomainError as exc:
                messages.error(request, f"{event.id}: {exc.message}")
        messages.success(request, f"{count} deliveries scheduled again.")


class MemberScopedAdmin(admin.ModelAdmin):
    """For rows that reach their organization through `org_path`: members see their organizations' rows."""

    org_path = "event__organization"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.org_path}__in": set(membership_roles(request))})

    def _is_member(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff and bool(membership_roles(request))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or self._is_member(request)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_superuser or self._is_member(request)

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None):
        # Django redirects to the index for a missing row; another tenant's row answers 404, as everywhere else.
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such row.")
        return obj


class AttemptInline(ReadOnly, admin.TabularInline):
    model = Attempt
    extra = 0
    fields = ["started_at", "status_code", "latency_ms", "error", "response_body"]
    readonly_fields = fields
    can_delete = False

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return True  # shown only inside a delivery the user may already see


@admin.register(Delivery)
class DeliveryAdmin(ReadOnly, MemberScopedAdmin):
    list_display = ["id", "event", "endpoint", "status", "attempts", "next_attempt_at", "last_status_code"]
    list_filter = ["status"]
    list_select_related = ["event", "endpoint"]
    search_fields = ["=event__id"]
    readonly_fields = [
        "event",
        "endpoint",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "created_at",
        "updated_at",
    ]
    fields = readonly_fields
    inlines = [AttemptInline]
    actions = ["resend"]

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.action(description="Resend the selected deliveries")
    def resend(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        deliveries = services.deliveries_resend(deliveries=queryset.select_related("endpoint"))
        messages.success(request, f"{len(deliveries)} deliveries scheduled again.")
