"""Admin for the platform: organizations, their staff, API clients and access tokens.

Secrets are shown once, in a message right after they are issued; only their hashes are stored.
"""

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from .admin_login import LimitedAdminAuthenticationForm
from .admin_scoping import ADD, CHANGE, VIEW, OrgScopedAdmin, Role
from .models import AccessToken, ApiClient, IdempotencyRecord, Membership, Organization

admin.site.login_form = LimitedAdminAuthenticationForm


def adopt(target: models.Model, issued: models.Model) -> None:
    """Make the admin's unsaved `target` the row a factory method just created."""
    for field in target._meta.concrete_fields:
        setattr(target, field.attname, getattr(issued, field.attname))
    target._state.adding = False
    target._state.db = issued._state.db


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(OrgScopedAdmin):
    list_display = ["name", "slug", "timezone", "brand_color", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]
    member_permissions = {Role.DISPATCHER: frozenset({VIEW}), Role.ADMIN: frozenset({VIEW, CHANGE})}


@admin.register(Membership)
class MembershipAdmin(OrgScopedAdmin):
    list_display = ["user", "organization", "role"]
    list_filter = ["role"]
    list_select_related = ["user", "organization"]
    search_fields = ["user__username", "user__email", "organization__name"]
    autocomplete_fields = ["user", "organization"]
    # Granting access is for superusers (or holders of the Django permission), not members.
    member_permissions = {}


class RevokeMixin:
    @admin.action(description="Revoke selected")
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = self.revoke_rows(queryset.filter(revoked_at__isnull=True))
        self.message_user(request, f"Revoked {count}.", messages.SUCCESS)

    def revoke_rows(self, queryset: QuerySet) -> int:
        return queryset.update(revoked_at=timezone.now())


@admin.register(ApiClient)
class ApiClientAdmin(RevokeMixin, OrgScopedAdmin):
    list_display = ["__str__", "client_id", "organization", "created_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["organization"]
    search_fields = ["name", "client_id"]
    fields = ["organization", "name", "client_id", "created_at", "revoked_at"]
    readonly_fields = ["client_id", "created_at", "revoked_at"]
    actions = ["revoke"]
    member_permissions = {Role.ADMIN: frozenset({VIEW, ADD, CHANGE})}

    def save_model(self, request: HttpRequest, obj: ApiClient, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        client, secret = ApiClient.issue(obj.organization, obj.name)
        adopt(obj, client)
        messages.warning(
            request,
            f"Client {client.client_id} secret: {secret} — copy it now, it is not stored and will not be shown again.",
        )

    def revoke_rows(self, queryset: QuerySet) -> int:
        # A revoked client's tokens stop working with it.
        AccessToken.objects.filter(client__in=queryset, revoked_at__isnull=True).update(revoked_at=timezone.now())
        return super().revoke_rows(queryset)


@admin.register(AccessToken)
class AccessTokenAdmin(RevokeMixin, OrgScopedAdmin):
    list_display = ["prefix", "name", "organization", "client", "created_at", "expires_at", "last_used_at", "state"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["organization", "client"]
    search_fields = ["prefix", "name"]
    autocomplete_fields = ["client"]
    readonly_fields = ["prefix", "token_hash", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]
    member_permissions = {Role.ADMIN: frozenset({VIEW, ADD, CHANGE})}

    def get_fields(self, request: HttpRequest, obj: AccessToken | None = None) -> list[str]:
        editable = ["organization", "client", "name", "expires_at"]
        return editable if obj is None else [*editable, *self.readonly_fields]

    def get_readonly_fields(self, request: HttpRequest, obj: AccessToken | None = None) -> tuple[str, ...]:
        return tuple(super().get_readonly_fields(request, obj)) if obj else ()

    @admin.display(description="state")
    def state(self, obj: AccessToken) -> str:
        if obj.revoked_at:
            return "revoked"
        return "expired" if obj.is_expired else "active"

    def save_model(self, request: HttpRequest, obj: AccessToken, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        token, raw = AccessToken.issue(obj.organization, name=obj.name, client=obj.client)
        if obj.expires_at:
            token.expires_at = obj.expires_at
            token.save(update_fields=["expires_at"])
        adopt(obj, token)
        messages.warning(request, f"Bearer token: {raw} — copy it now, it is not stored and will not be shown again.")


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(OrgScopedAdmin):
    """Stored first responses to Idempotency-Keys: read here, written only by the API."""

    list_display = ["created_at", "route", "key", "response_status", "organization"]
    list_filter = ["response_status"]
    list_select_related = ["organization"]
    search_fields = ["=key", "route"]
    member_permissions = {Role.ADMIN: frozenset({VIEW})}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: IdempotencyRecord | None = None) -> bool:
        return False
