"""The dispatcher admin: find, assign, reschedule and follow tasks.

Status changes, crew assignment and deletion go through `tasks.services`, exactly as the API's do,
so the journal, the task's version and every side effect stay consistent whichever route acted.
"""

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from notifications.admin import NotificationInline
from taskhub.admin_dates import RangeDateHierarchy
from taskhub.admin_scoping import (
    VIEW,
    OrgScopedAdmin,
    Role,
    SameOrganizationForm,
    ScopedInline,
    ScopedRelatedFilter,
)
from taskhub.errors import Conflict
from taskhub.phones import normalize_phone

from .models import Attachment, Group, Person, Rating, Resource, StatusType, Task, TaskAddress, TaskStatus, Unit
from .services import task_assign, task_delete, task_record_edit, task_report_status
from .tracker import tracker_rotate_token


def staff_name(request: HttpRequest) -> str:
    return request.user.get_full_name() or request.user.get_username()


# --- Property hierarchy, people, resources ---------------------------------------------------


@admin.register(Group)
class GroupAdmin(OrgScopedAdmin):
    list_display = ["name", "external_ref", "organization"]
    list_select_related = ["organization"]
    search_fields = ["name", "external_ref"]


@admin.register(Unit)
class UnitAdmin(OrgScopedAdmin):
    list_display = ["unit_number", "group", "address_line_1", "city", "bedrooms", "bathrooms", "sqft", "external_ref"]
    list_select_related = ["group", "organization"]
    search_fields = ["unit_number", "external_ref", "address_line_1", "group__name"]
    autocomplete_fields = ["group"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # A unit's name includes its group's, in autocomplete results too.
        return super().get_queryset(request).select_related("group")


class PersonForm(SameOrganizationForm):
    """Accept national phone formats from dispatchers; store E.164."""

    def clean_phone(self) -> str:
        return normalize_phone(self.cleaned_data.get("phone", ""))

    def clean_mobile_number(self) -> str:
        return normalize_phone(self.cleaned_data.get("mobile_number", ""))


@admin.register(Person)
class PersonAdmin(OrgScopedAdmin):
    form = PersonForm
    list_display = ["__str__", "email", "phone", "roles", "swatch", "external_ref", "organization"]
    list_filter = ["is_customer", "is_crew", "is_staff_member"]
    list_select_related = ["organization"]
    search_fields = ["first_name", "last_name", "company_name", "email", "phone", "mobile_number", "external_ref"]

    @admin.display(description="roles")
    def roles(self, obj: Person) -> str:
        flags = {"customer": obj.is_customer, "crew": obj.is_crew, "staff": obj.is_staff_member}
        return ", ".join(name for name, on in flags.items() if on)

    @admin.display(description="colour")
    def swatch(self, obj: Person) -> str:
        if not obj.color:
            return ""
        return format_html('<span style="display:inline-block;width:1em;height:1em;background:{}"></span>', obj.color)


@admin.register(Resource)
class ResourceAdmin(OrgScopedAdmin):
    list_display = ["name", "type", "external_id", "organization"]
    list_select_related = ["organization"]
    search_fields = ["name", "type", "external_id"]


# --- Task actions ----------------------------------------------------------------------------


class ReportStatusForm(forms.Form):
    type = forms.ChoiceField(label="Status", choices=StatusType.choices)
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), required=False)
    visible_to_customer = forms.BooleanField(required=False, initial=True)


class AssignCrewForm(forms.Form):
    crew = forms.ModelMultipleChoiceField(queryset=Person.objects.none(), widget=forms.CheckboxSelectMultiple)
    replace = forms.BooleanField(required=False, help_text="Replace the current crew instead of adding to it.")

    def __init__(self, *args: Any, org_ids: set[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        crew = self.fields["crew"]
        crew.queryset = Person.objects.filter(is_crew=True, organization_id__in=org_ids).select_related("organization")
        if len(org_ids) > 1:
            crew.label_from_instance = lambda person: f"{person} ({person.organization})"


class TaskActionsMixin:
    """The "Report status…" and "Assign crew…" actions: a form page, then one service call per task."""

    action_template = "admin/tasks/task/action_form.html"

    def action_page(self, request: HttpRequest, queryset: QuerySet, form: forms.Form, **context: Any):
        selected = request.POST.getlist(ACTION_CHECKBOX_NAME)
        select_across = request.POST.get("select_across", "0")
        count = queryset.count() if select_across == "1" else len(selected)
        context.update(
            self.admin_site.each_context(request),
            opts=self.model._meta,
            form=form,
            preview=queryset[:20],
            count=count,
            more=max(count - 20, 0),
            selected=selected,
            select_across=select_across,
            checkbox_name=ACTION_CHECKBOX_NAME,
        )
        return TemplateResponse(request, self.action_template, context)

    @admin.action(description="Report status…", permissions=["change"])
    def report_status(self, request: HttpRequest, queryset: QuerySet):
        form = ReportStatusForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self.action_page(
                request, queryset, form, title="Report a status", action="report_status", submit="Report status"
            )
        reported, refused = 0, []
        for task in queryset:
            try:
                # Its own savepoint: a refused task must not spoil the rest of the batch.
                with transaction.atomic():
                    task_report_status(
                        task=task,
                        type=form.cleaned_data["type"],
                        source=TaskStatus.Source.ADMIN,
                        notes=form.cleaned_data["notes"],
                        reporter_name=staff_name(request),
                        visible_to_customer=form.cleaned_data["visible_to_customer"],
                    )
                reported += 1
            except Conflict as exc:
                refused.append(f"{task}: {exc.message}")
        self.summarise(request, f"Reported {form.cleaned_data['type']} on {reported} task(s).", reported, refused)
        return None

    @admin.action(description="Assign crew…", permissions=["change"])
    def assign_crew(self, request: HttpRequest, queryset: QuerySet):
        org_ids = set(queryset.values_list("organization_id", flat=True).distinct())
        data = request.POST if "apply" in request.POST else None
        form = AssignCrewForm(data, org_ids=org_ids)
        if not form.is_valid():
            return self.action_page(request, queryset, form, title="Assign crew", action="assign_crew", submit="Assign")
        crew, assigned, skipped = form.cleaned_data["crew"], 0, []
        for task in queryset:
            if task.is_deleted:
                skipped.append(f"{task}: the task is deleted.")
                continue
            same_org = [person for person in crew if person.organization_id == task.organization_id]
            task_assign(task=task, crew=same_org, replace=form.cleaned_data["replace"])
            assigned += 1
        self.summarise(request, f"Crew assigned on {assigned} task(s).", assigned, skipped)
        return None

    def summarise(self, request: HttpRequest, done_message: str, done: int, refused: list[str]) -> None:
        if done:
            self.message_user(request, done_message, messages.SUCCESS)
        if refused:
            shown = "; ".join(refused[:10]) + (f"; and {len(refused) - 10} more" if len(refused) > 10 else "")
            self.message_user(request, f"Refused for {len(refused)} task(s) — {shown}", messages.ERROR)


# --- Task ------------------------------------------------------------------------------------


class TaskAddressInline(ScopedInline, admin.TabularInline):
    model = TaskAddress
    extra = 0
    fields = ["position", "title", "address_line_1", "address_line_2", "city", "state", "zipcode", "country"]


class TaskStatusInline(ScopedInline, admin.TabularInline):
    """The journal, read-only: new entries come from the "Report status…" action."""

    model = TaskStatus
    extra = 0
    fields = ["time", "type", "source", "reporter_name", "notes", "visible_to_customer"]
    readonly_fields = fields
    ordering = ["time", "id"]

    def has_add_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        return False


class DeletedFilter(admin.SimpleListFilter):
    title = "deleted"
    parameter_name = "deleted"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("no", "Live"), ("yes", "Deleted")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in {"yes", "no"}:
            return queryset.filter(deleted_at__isnull=self.value() == "no")
        return queryset


TASK_FIELDSETS = [
    (None, {"fields": ["organization", "external_id", "title", "details", "notes", "importance"]}),
    (
        "Schedule",
        {
            "fields": [
                ("start_datetime", "end_datetime"),
                ("enable_time_window_display", "time_window_start"),
                "unscheduled",
                ("due_datetime", "reminder_datetime"),
            ]
        },
    ),
    ("Who and where", {"fields": ["group", "unit", "customer", "creator", "assignees", "resources"]}),
    (
        "Status and tracking",
        {
            "fields": [
                "status",
                "status_changed_at",
                "completed_datetime",
                "tracker_link",
                "customer_rating",
                "deleted_at",
                "version",
            ]
        },
    ),
    (
        "Integration",
        {
            "classes": ["collapse"],
            "fields": [
                ("notify_sms", "notify_email"),
                "external_url",
                "extra_fields",
                "relevant_conversation",
                ("identifier", "url_safe_id"),
                ("created_at", "updated_at"),
            ],
        },
    ),
]
TASK_COLUMNS = frozenset(field.name for field in Task._meta.concrete_fields)
TASK_READONLY = [
    "status",
    "status_changed_at",
    "completed_datetime",
    "tracker_link",
    "customer_rating",
    "deleted_at",
    "version",
    "identifier",
    "url_safe_id",
    "created_at",
    "updated_at",
]


@admin.register(Task)
class TaskAdmin(RangeDateHierarchy, TaskActionsMixin, OrgScopedAdmin):
    list_display = ["title_or_id", "status_label", "when", "customer", "crew", "group", "importance"]
    list_filter = [
        "status",
        "importance",
        ("group", ScopedRelatedFilter),
        ("start_datetime", admin.DateFieldListFilter),
        DeletedFilter,
    ]
    list_select_related = ["organization", "customer", "group"]
    search_fields = [
        "external_id",
        "title",
        "customer__first_name",
        "customer__last_name",
        "customer__email",
        "customer__phone",
    ]
    date_hierarchy = "start_datetime"
    show_facets = admin.ShowFacets.NEVER  # facet counts are a COUNT per filter choice
    autocomplete_fields = ["group", "unit", "customer", "creator", "assignees", "resources"]
    fieldsets = TASK_FIELDSETS
    readonly_fields = TASK_READONLY
    inlines = [TaskAddressInline, TaskStatusInline, NotificationInline]
    actions = ["report_status", "assign_crew", "rotate_tracker_token"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # One query for the whole crew column, however many rows.
        return super().get_queryset(request).prefetch_related("assignees")

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        try:
            phone = normalize_phone(search_term)
        except ValidationError:
            return found, may_have_duplicates
        if phone:  # "(212) 555-0101" finds the customer stored as +12125550101
            found |= queryset.filter(Q(customer__phone=phone) | Q(customer__mobile_number=phone))
        return found, may_have_duplicates

    def has_change_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        # A deleted task is history: shown read-only, never edited.
        return not (obj is not None and obj.is_deleted) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        return not (obj is not None and obj.is_deleted) and super().has_delete_permission(request, obj)

    # -- list columns

    @admin.display(description="task", ordering="title")
    def title_or_id(self, obj: Task) -> str:
        return str(obj)

    @admin.display(description="status", ordering="status")
    def status_label(self, obj: Task) -> str:
        if obj.is_deleted:
            label = obj.get_status_display()
            return format_html('<del>{}</del> <strong title="{}">deleted</strong>', label, obj.deleted_at)
        return obj.get_status_display()

    @admin.display(description="start / window", ordering="start_datetime")
    def when(self, obj: Task) -> str:
        if obj.unscheduled or not obj.start_datetime:
            return "unscheduled"
        tz = obj.organization.tz
        start = timezone.localtime(obj.start_datetime, tz)
        text = f"{start:%a %d %b %H:%M}"
        if obj.end_datetime:
            text += f"–{timezone.localtime(obj.end_datetime, tz):%H:%M}"
        if obj.enable_time_window_display and obj.time_window_start:
            text += f" (window opens {obj.time_window_start} min before)"
        return text

    @admin.display(description="crew")
    def crew(self, obj: Task) -> str:
        return format_html_join(
            ", ", '<span style="border-left:4px solid {};padding-left:3px">{}</span>', self._crew_rows(obj)
        )

    @staticmethod
    def _crew_rows(obj: Task) -> list[tuple[str, str]]:
        return [(person.color or "transparent", str(person)) for person in obj.assignees.all()]

    @admin.display(description="tracker link")
    def tracker_link(self, obj: Task) -> str:
        if not obj.pk:
            return "—"
        url = f"{settings.PUBLIC_BASE_URL}/t/{obj.url_safe_id}"
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, url)

    @admin.display(description="customer rating")
    def customer_rating(self, obj: Task) -> str:
        rating = getattr(obj, "rating", None) if obj.pk else None  # a missing one-to-one raises AttributeError
        if rating is None:
            return "—"
        return format_html("{}/5 on {}<br>{}", rating.score, f"{rating.created_at:%Y-%m-%d %H:%M}", rating.text)

    # -- writes

    @admin.action(description="Rotate tracker token", permissions=["change"])
    def rotate_tracker_token(self, request: HttpRequest, queryset: QuerySet) -> None:
        """A new tracker link for each task; the old links answer 404 from now on."""
        rotated = [tracker_rotate_token(task=task) for task in queryset if not task.is_deleted]
        self.message_user(
            request, f"New tracker link for {len(rotated)} task(s); the old links no longer work.", messages.SUCCESS
        )

    def save_model(self, request: HttpRequest, obj: Task, form: forms.ModelForm, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            return
        # Write only what the dispatcher edited, so a status reported meanwhile is not overwritten.
        fields = [name for name in form.changed_data if name in TASK_COLUMNS]
        if fields:
            obj.save(update_fields=[*fields, "updated_at"])

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: list, change: bool) -> None:
        crew = form.cleaned_data.pop("assignees", None)
        super().save_related(request, form, formsets, change)
        if not change:
            task_record_edit(task=form.instance, changed=[], created=True)  # journal, task.created, messages
        if crew is not None:
            task_assign(task=form.instance, crew=crew, replace=True)  # bumps the version if the crew changed
        if change:
            edited = [name for name in form.changed_data if name != "assignees"]
            edited += ["addresses" for formset in formsets if formset.has_changed() and formset.model is TaskAddress]
            task_record_edit(task=form.instance, changed=edited)  # version, task.updated / rescheduled

    def delete_model(self, request: HttpRequest, obj: Task) -> None:
        task_delete(task=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for task in queryset:
            task_delete(task=task)

    def get_deleted_objects(self, objs, request: HttpRequest):
        # Soft delete: the tasks are marked, their addresses and journal stay; nothing cascades.
        objs = list(objs)
        return [str(obj) for obj in objs], {Task._meta.verbose_name_plural: len(objs)}, set(), []


# --- Journal, attachments, ratings -----------------------------------------------------------


@admin.register(TaskAddress)
class TaskAddressAdmin(OrgScopedAdmin):
    list_display = ["__str__", "task", "position", "city", "zipcode"]
    list_select_related = ["task"]
    search_fields = ["address_line_1", "city", "zipcode", "task__title", "=task__external_id"]
    autocomplete_fields = ["task"]


@admin.register(TaskStatus)
class TaskStatusAdmin(OrgScopedAdmin):
    """The journal is written by the services only; here it is read."""

    list_display = ["time", "task", "type", "source", "reporter_name", "visible_to_customer"]
    list_filter = ["type", "source"]
    list_select_related = ["task"]
    search_fields = ["=task__external_id", "task__title", "notes"]
    member_permissions = {Role.DISPATCHER: frozenset({VIEW}), Role.ADMIN: frozenset({VIEW})}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: TaskStatus | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: TaskStatus | None = None) -> bool:
        # Only so that a superuser can still delete a whole organization.
        return request.user.is_superuser


@admin.register(Attachment)
class AttachmentAdmin(OrgScopedAdmin):
    list_display = ["__str__", "task", "content_type", "size", "visible_to_customer", "created_at"]
    list_select_related = ["task"]
    search_fields = ["note", "file", "=task__external_id", "task__title"]
    autocomplete_fields = ["task", "status"]


@admin.register(Rating)
class RatingAdmin(OrgScopedAdmin):
    list_display = ["task", "score", "created_at"]
    list_filter = ["score"]
    list_select_related = ["task"]
    search_fields = ["=task__external_id", "task__title", "text"]
    autocomplete_fields = ["task"]
