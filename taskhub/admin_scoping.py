"""Shared admin machinery: organization scoping and pagination that never counts a whole table.

A superuser sees everything. Any other staff user sees only the rows of the organizations they are
a member of, and what they may do there follows their membership role. Scoping `get_queryset` is
what turns a foreign row's change page, history and autocomplete results into a 404 or nothing.
"""

from functools import cached_property
from typing import Any

from django import forms
from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections, models
from django.http import Http404, HttpRequest

from .models import Membership, Organization

VIEW, ADD, CHANGE, DELETE = "view", "add", "change", "delete"
ALL_ACTIONS = frozenset({VIEW, ADD, CHANGE, DELETE})
Role = Membership.Role


def membership_roles(request: HttpRequest) -> dict[int, str]:
    """{organization id: role} of the requesting user, read once per request."""
    cached = getattr(request, "_taskhub_roles", None)
    if cached is None:
        user = request.user
        rows = Membership.objects.filter(user_id=user.pk).values_list("organization_id", "role") if user.pk else []
        cached = dict(rows)
        request._taskhub_roles = cached  # type: ignore[attr-defined]
    return cached


def org_lookup(model: type[models.Model]) -> str | None:
    """The ORM path from `model` to its Organization, or None when it has none."""
    if model is Organization:
        return "pk"
    names = {field.name for field in model._meta.get_fields()}
    if "organization" in names:
        return "organization"
    if "task" in names:  # TaskAddress belongs to its task's organization
        return "task__organization"
    return None


def org_id_of(obj: models.Model, lookup: str) -> int | None:
    if lookup == "pk":
        return obj.pk
    *hops, last = lookup.split("__")
    for hop in hops:
        obj = getattr(obj, hop, None)
        if obj is None:
            return None
    return getattr(obj, f"{last}_id", None)


def scope(queryset: models.QuerySet, org_ids: set[int]) -> models.QuerySet:
    lookup = org_lookup(queryset.model)
    if lookup is None:
        return queryset
    return queryset.filter(**{f"{lookup}__in": org_ids})


def table_estimate(queryset: models.QuerySet) -> int | None:
    """PostgreSQL's planner estimate of the table's rows; None elsewhere or before the first ANALYZE."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        table = queryset.model._meta.db_table
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table])
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] >= 0 else None


class EstimatedCountPaginator(Paginator):
    """Counts without scanning a big table.

    An unfiltered list on a large PostgreSQL table takes the planner's estimate; anything else is
    counted exactly up to `cap` rows (a COUNT over a LIMITed subquery), beyond which pages are
    approximate — nobody pages through ten thousand rows, they filter.
    """

    cap = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, models.QuerySet):
            return len(queryset)
        if not queryset.query.where:
            estimate = table_estimate(queryset)
            if estimate is not None and estimate > self.cap:
                return estimate
        # Unordered: the database need not sort the rows it only counts.
        return queryset.order_by()[: self.cap + 1].count()


class ScopedFormFieldsMixin:
    """Limit FK / M2M choices to the user's organizations (ModelAdmin and inlines alike)."""

    def formfield_for_foreignkey(self, db_field: models.ForeignKey, request: HttpRequest, **kwargs: Any):
        if not request.user.is_superuser:
            kwargs["queryset"] = self.scoped_choices(db_field, request, kwargs.get("queryset"))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: models.ManyToManyField, request: HttpRequest, **kwargs: Any):
        if not request.user.is_superuser:
            kwargs["queryset"] = self.scoped_choices(db_field, request, kwargs.get("queryset"))
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def scoped_choices(self, db_field: models.Field, request: HttpRequest, queryset=None) -> models.QuerySet:
        related = db_field.related_model
        queryset = queryset if queryset is not None else related._default_manager.all()
        org_ids = set(membership_roles(request))
        if related is Organization and hasattr(self, "org_ids_for"):
            # The row's own organization: only those where this user may create or edit it.
            org_ids = self.org_ids_for(request, ADD) | self.org_ids_for(request, CHANGE)
        return scope(queryset, org_ids)


class SameOrganizationForm(forms.ModelForm):
    """Refuse links to rows of another organization than the edited row's own."""

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        organization = data.get("organization") or getattr(self.instance, "organization", None)
        if isinstance(organization, Organization):
            for name, value in list(data.items()):
                values = value if isinstance(value, (list, models.QuerySet)) else [value]
                if any(self._foreign(item, organization) for item in values):
                    self.add_error(name, f"Choose one that belongs to {organization}.")
        return data

    @staticmethod
    def _foreign(item: Any, organization: Organization) -> bool:
        org_id = getattr(item, "organization_id", None)
        return isinstance(item, models.Model) and org_id is not None and org_id != organization.pk


class ScopedRelatedFilter(admin.RelatedFieldListFilter):
    """A related-object list filter offering only the user's organizations' rows."""

    def field_choices(self, field: models.Field, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        queryset = field.related_model._default_manager.all()
        if not request.user.is_superuser:
            queryset = scope(queryset, set(membership_roles(request)))
        return [(obj.pk, str(obj)) for obj in queryset]


class ScopedInline(ScopedFormFieldsMixin):
    """Inline mixin: permissions are the parent row's — who may edit the task may edit its stops."""

    def parent_admin(self) -> admin.ModelAdmin:
        return self.admin_site.get_model_admin(self.parent_model)

    def has_view_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self.parent_admin().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        parent = self.parent_admin()
        return parent.has_change_permission(request, obj) if obj else parent.has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self.parent_admin().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self.parent_admin().has_change_permission(request, obj)


class OrgScopedAdmin(ScopedFormFieldsMixin, admin.ModelAdmin):
    """A ModelAdmin whose rows, choices and permissions follow the user's memberships.

    `member_permissions` maps a membership role to the admin actions it grants in that
    organization, on top of any Django model permission the user holds.
    """

    form = SameOrganizationForm
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    member_permissions: dict[str, frozenset[str]] = {Role.DISPATCHER: ALL_ACTIONS, Role.ADMIN: ALL_ACTIONS}

    def org_ids_for(self, request: HttpRequest, action: str) -> set[int]:
        roles = membership_roles(request)
        if self._has_django_perm(request, action):
            return set(roles)
        return {org_id for org_id, role in roles.items() if action in self.member_permissions.get(role, ())}

    def _has_django_perm(self, request: HttpRequest, action: str) -> bool:
        return getattr(super(), f"has_{action}_permission")(request)

    def _member_may(self, request: HttpRequest, action: str, obj: models.Model | None) -> bool:
        if request.user.is_superuser or (obj is None and self._has_django_perm(request, action)):
            return True
        allowed = self.org_ids_for(request, action)
        if obj is None:
            return bool(allowed)
        return org_id_of(obj, org_lookup(self.model) or "pk") in allowed

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return scope(queryset, self.org_ids_for(request, VIEW) | self.org_ids_for(request, CHANGE))

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> models.Model:
        # Django redirects to the index for a missing row; a tenant boundary answers 404, as the API does.
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such row.")
        return obj

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        org_ids = self.org_ids_for(request, ADD)
        if "organization" not in initial and len(org_ids) == 1 and org_lookup(self.model) == "organization":
            initial["organization"] = next(iter(org_ids))
        return initial

    def get_readonly_fields(self, request: HttpRequest, obj: models.Model | None = None) -> tuple[str, ...]:
        fields = tuple(super().get_readonly_fields(request, obj))
        # Moving a row to another tenant would orphan everything that links to it.
        if obj is not None and org_lookup(self.model) == "organization" and "organization" not in fields:
            fields += ("organization",)
        return fields

    def has_module_permission(self, request: HttpRequest) -> bool:
        return super().has_module_permission(request) or any(
            self.org_ids_for(request, action) for action in (VIEW, CHANGE)
        )

    def has_view_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self._member_may(request, VIEW, obj) or self._member_may(request, CHANGE, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._member_may(request, ADD, None)

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self._member_may(request, CHANGE, obj)

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self._member_may(request, DELETE, obj)
