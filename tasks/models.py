"""The task domain: property hierarchy, people, resources, tasks and their status journal."""

import secrets
import uuid
from datetime import datetime
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Upper
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from taskhub.models import Organization
from taskhub.phones import normalize_phone, validate_e164


def attachment_path(instance: "Attachment", filename: str) -> str:
    """A random name: stored files are never found by guessing or listing."""
    suffix = "".join(Path(filename).suffixes[-1:]).lower()[:10]
    return f"attachments/{instance.organization_id}/{secrets.token_urlsafe(16)}{suffix}"


def new_tracker_token() -> str:
    """128 bits from `secrets`, URL-safe: 22 characters."""
    return secrets.token_urlsafe(16)


class OrgOwned(models.Model):
    """Abstract base: a row that belongs to one organization."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")

    class Meta:
        abstract = True


def unique_per_org(field: str, name: str) -> models.UniqueConstraint:
    return models.UniqueConstraint(
        fields=["organization", field], condition=Q(**{f"{field}__isnull": False}), name=name
    )


class Group(OrgOwned):
    """A property or portfolio grouping units (Travtus' group)."""

    identifier = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200)
    external_ref = models.CharField(max_length=255, null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [unique_per_org("external_ref", "group_external_ref_unique")]

    def __str__(self) -> str:
        return self.name


class Unit(OrgOwned):
    """A rentable unit of a group (Travtus' unit)."""

    identifier = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    group = models.ForeignKey(Group, on_delete=models.PROTECT, related_name="units")
    unit_number = models.CharField(max_length=64)
    external_ref = models.CharField(max_length=255, null=True, blank=True)
    address_line_1 = models.CharField(max_length=255, blank=True)
    address_line_2 = models.CharField(max_length=255, blank=True)
    city = models.CharField(max_length=128, blank=True)
    state = models.CharField(max_length=128, blank=True)
    country = models.CharField(max_length=128, blank=True)
    zipcode = models.CharField(max_length=32, blank=True)
    bedrooms = models.PositiveSmallIntegerField(null=True, blank=True)
    bathrooms = models.DecimalField(max_digits=4, decimal_places=1, null=True, blank=True)
    sqft = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["group__name", "unit_number"]
        constraints = [unique_per_org("external_ref", "unit_external_ref_unique")]

    def __str__(self) -> str:
        return f"{self.group} · {self.unit_number}"


class Person(OrgOwned):
    """Anyone a task names: customer or resident, crew member, or staff creator."""

    identifier = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    external_ref = models.CharField(max_length=255, null=True, blank=True)
    first_name = models.CharField(max_length=128, blank=True)
    last_name = models.CharField(max_length=128, blank=True)
    company_name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=20, blank=True, validators=[validate_e164], help_text="E.164")
    mobile_number = models.CharField(max_length=20, blank=True, validators=[validate_e164], help_text="E.164")
    notes = models.TextField(blank=True)
    is_customer = models.BooleanField(_("customer / resident"), default=False)
    is_crew = models.BooleanField(_("crew"), default=False)
    is_staff_member = models.BooleanField(_("staff"), default=False)
    photo = models.ImageField(upload_to="crew/", blank=True)
    color = models.CharField(
        max_length=7, blank=True, validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use a hex colour.")]
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["last_name", "first_name"]
        constraints = [unique_per_org("external_ref", "person_external_ref_unique")]
        indexes = [
            models.Index(fields=["organization", "email"], name="person_org_email"),
            # Customers are matched by email case-insensitively (email__iexact is UPPER(email) = UPPER(%s)).
            models.Index(F("organization"), Upper("email"), name="person_org_email_ci"),
            models.Index(fields=["organization", "phone"], name="person_org_phone"),
        ]
        verbose_name_plural = "people"

    def __str__(self) -> str:
        return self.full_name or self.email or self.phone or str(self.identifier)

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)

    @property
    def sms_number(self) -> str:
        return self.mobile_number or self.phone

    def clean_fields(self, exclude=None) -> None:
        # Accept national formats ("(212) 555-0101") in forms and store E.164: normalise before
        # the field validators, which insist on E.164, look at the values.
        errors = {}
        for name in ("phone", "mobile_number"):
            if exclude and name in exclude:
                continue
            try:
                setattr(self, name, normalize_phone(getattr(self, name)))
            except ValidationError as exc:
                errors[name] = exc.messages
        try:
            super().clean_fields(exclude=[*(exclude or []), *errors])
        except ValidationError as exc:
            errors.update(exc.message_dict)
        if errors:
            raise ValidationError(errors)


class Resource(OrgOwned):
    """Equipment or a vehicle that can be assigned to tasks."""

    identifier = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    external_id = models.CharField(max_length=255, null=True, blank=True)
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=64, blank=True)
    details = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [unique_per_org("external_id", "resource_external_id_unique")]

    def __str__(self) -> str:
        return self.name


class Importance(models.TextChoices):
    LOW = "low", _("Low")
    NORMAL = "normal", _("Normal")
    HIGH = "high", _("High")
    VERY_HIGH = "very_high", _("Very high")


class StatusType(models.TextChoices):
    """Arrivy's task status types."""

    NOTSTARTED = "NOTSTARTED", _("Not started")
    PREPARING = "PREPARING", _("Preparing")
    CONFIRMED = "CONFIRMED", _("Confirmed")
    ORDER = "ORDER", _("Order")
    READYFORPICKUP = "READYFORPICKUP", _("Ready for pickup")
    ENROUTE = "ENROUTE", _("On the way")
    STARTED = "STARTED", _("In progress")
    COMPLETE = "COMPLETE", _("Complete")
    EXCEPTION = "EXCEPTION", _("Exception")
    CUSTOMER_EXCEPTION = "CUSTOMER_EXCEPTION", _("Customer exception")
    CANCELLED = "CANCELLED", _("Cancelled")
    RESCHEDULED = "RESCHEDULED", _("Rescheduled")
    RECOMMENDED = "RECOMMENDED", _("Recommended")
    CUSTOM = "CUSTOM", _("Custom")

    @classmethod
    def parse(cls, raw: str) -> "StatusType":
        """Accept Arrivy's spellings: NOT_STARTED, not started, notstarted."""
        key = (raw or "").strip().upper().replace(" ", "_")
        key = {"NOT_STARTED": "NOTSTARTED", "READY_FOR_PICKUP": "READYFORPICKUP"}.get(key, key)
        return cls(key)


# Travtus' coarse status, derived from the journal's latest type.
COARSE_STATUS = {
    StatusType.STARTED: "in_progress",
    StatusType.ENROUTE: "in_progress",
    StatusType.EXCEPTION: "in_progress",
    StatusType.CUSTOMER_EXCEPTION: "in_progress",
    StatusType.COMPLETE: "completed",
    StatusType.CANCELLED: "deleted",
}


class TaskQuerySet(models.QuerySet):
    def alive(self) -> "TaskQuerySet":
        return self.filter(deleted_at__isnull=True)

    def for_org(self, organization: Organization) -> "TaskQuerySet":
        return self.filter(organization=organization)

    def starting_between(self, start: datetime, end: datetime) -> "TaskQuerySet":
        return self.filter(start_datetime__gte=start, start_datetime__lt=end)


class Task(OrgOwned):
    """A unit of work for a customer: an order, delivery, service call or maintenance request."""

    identifier = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    external_id = models.CharField(max_length=255, null=True, blank=True, help_text="The integrator's own id.")
    url_safe_id = models.CharField(max_length=32, unique=True, default=new_tracker_token, editable=False)
    title = models.CharField(max_length=255, blank=True)
    details = models.TextField(blank=True, help_text="Arrivy details / Travtus description.")
    notes = models.TextField(blank=True)
    importance = models.CharField(max_length=16, choices=Importance.choices, default=Importance.NORMAL)
    relevant_conversation = models.TextField(blank=True)

    start_datetime = models.DateTimeField(null=True, blank=True)
    end_datetime = models.DateTimeField(null=True, blank=True)
    enable_time_window_display = models.BooleanField(default=False)
    time_window_start = models.PositiveIntegerField(
        null=True, blank=True, help_text="Minutes before the start time that the customer's window opens."
    )
    unscheduled = models.BooleanField(default=False)
    due_datetime = models.DateTimeField(null=True, blank=True)
    reminder_datetime = models.DateTimeField(null=True, blank=True)
    completed_datetime = models.DateTimeField(null=True, blank=True)

    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.PROTECT, related_name="tasks")
    unit = models.ForeignKey(Unit, null=True, blank=True, on_delete=models.PROTECT, related_name="tasks")
    creator = models.ForeignKey(Person, null=True, blank=True, on_delete=models.PROTECT, related_name="created_tasks")
    customer = models.ForeignKey(
        Person,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="customer_tasks",
        help_text="Customer or resident.",
    )
    assignees = models.ManyToManyField(Person, blank=True, related_name="assigned_tasks")
    resources = models.ManyToManyField(Resource, blank=True, related_name="tasks")

    notify_sms = models.BooleanField(default=True)
    notify_email = models.BooleanField(default=True)
    extra_fields = models.JSONField(default=dict, blank=True)
    external_url = models.URLField(max_length=1000, blank=True)
    template = models.CharField(max_length=100, blank=True, help_text="Notification template set (Arrivy template).")

    status = models.CharField(max_length=32, choices=StatusType.choices, default=StatusType.NOTSTARTED)
    status_changed_at = models.DateTimeField(default=timezone.now)
    eta = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Expected arrival, from the latest ENROUTE report."
    )
    version = models.PositiveBigIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = TaskQuerySet.as_manager()

    class Meta:
        ordering = ["-start_datetime", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "external_id"],
                condition=Q(external_id__isnull=False, deleted_at__isnull=True),
                name="task_external_id_unique",
                violation_error_message="This organization already has a task with this external id.",
            ),
        ]
        indexes = [
            # The lists sort by -start_datetime, -id: (start, id) indexes serve them scanned backwards,
            # with no sort of the whole table (per organization for dispatchers, global for superusers).
            models.Index(fields=["organization", "start_datetime", "id"], name="task_org_start_id"),
            models.Index(fields=["start_datetime", "id"], name="task_start_id"),
            models.Index(fields=["organization", "status"], name="task_org_status"),
            models.Index(fields=["organization", "due_datetime"], name="task_org_due"),
            models.Index(fields=["organization", "updated_at"], name="task_org_updated"),
            models.Index(fields=["organization", "external_id"], name="task_org_external_id"),
        ]

    def __str__(self) -> str:
        return self.title or self.external_id or str(self.identifier)

    def get_status_display(self) -> str:
        """The status's label in the active language, or the value itself if it is none of StatusType's.

        Django's own builds a dict of every choice, made hashable, on each call; a change's
        messages and the admin's changelist ask for it once or more per task.
        """
        try:
            return str(StatusType(self.status).label)
        except ValueError:
            return str(self.status)

    @property
    def coarse_status(self) -> str:
        if self.deleted_at is not None:
            return "deleted"
        return COARSE_STATUS.get(self.status, "created")

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class TaskAddress(models.Model):
    """One stop of a task, in order: the customer's address first, then any additional ones."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="addresses")
    position = models.PositiveSmallIntegerField(default=0)
    title = models.CharField(max_length=200, blank=True)
    address_line_1 = models.CharField(max_length=255, blank=True)
    address_line_2 = models.CharField(max_length=255, blank=True)
    city = models.CharField(max_length=128, blank=True)
    state = models.CharField(max_length=128, blank=True)
    country = models.CharField(max_length=128, blank=True)
    zipcode = models.CharField(max_length=32, blank=True)
    lat = models.FloatField(null=True, blank=True, validators=[MinValueValidator(-90), MaxValueValidator(90)])
    lng = models.FloatField(null=True, blank=True, validators=[MinValueValidator(-180), MaxValueValidator(180)])

    class Meta:
        ordering = ["task_id", "position"]  # by the column: "task" would join the task for its ordering
        verbose_name_plural = "task addresses"

    def __str__(self) -> str:
        return ", ".join(p for p in (self.address_line_1, self.city, self.zipcode) if p) or self.title


class TaskStatus(OrgOwned):
    """One entry of a task's status journal."""

    class Source(models.TextChoices):
        API = "api", _("API")
        ADMIN = "admin", _("Admin")
        TRACKER = "tracker", _("Tracker")
        SMS = "sms", _("SMS reply")
        SYSTEM = "system", _("System")

    class Kind(models.TextChoices):
        STATUS = "status", _("Status report")
        CUSTOMER_MESSAGE = "customer_message", _("Message from the customer")

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="statuses")
    type = models.CharField(max_length=32, choices=StatusType.choices)
    kind = models.CharField(
        max_length=20, choices=Kind.choices, default=Kind.STATUS,
        help_text="Only status reports move the task's status; messages are journal entries alone.",
    )  # fmt: skip
    time = models.DateTimeField(default=timezone.now)
    reporter = models.ForeignKey(Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reporter_name = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.API)
    notes = models.TextField(blank=True)
    visible_to_customer = models.BooleanField(default=True)
    extra_fields = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["task_id", "time", "id"]
        indexes = [models.Index(fields=["task", "time"], name="taskstatus_task_time")]
        verbose_name = "status entry"
        verbose_name_plural = "status journal"

    def __str__(self) -> str:
        return f"{self.get_type_display()} at {self.time:%Y-%m-%d %H:%M}"


class Attachment(OrgOwned):
    """A file, picture or note on a task or on one of its status entries."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="attachments")
    status = models.ForeignKey(TaskStatus, null=True, blank=True, on_delete=models.SET_NULL, related_name="attachments")
    file = models.FileField(upload_to=attachment_path, blank=True, max_length=200)
    filename = models.CharField(max_length=255, blank=True, help_text="The name it was uploaded with.")
    content_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveIntegerField(default=0)
    note = models.TextField(blank=True)
    visible_to_customer = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["task_id", "created_at"]

    def __str__(self) -> str:
        return self.filename or self.note[:40] or f"attachment {self.pk}"


class Rating(OrgOwned):
    """The customer's 1–5 rating of a completed task; one per task."""

    task = models.OneToOneField(Task, on_delete=models.CASCADE, related_name="rating")
    score = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(5)])
    text = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.score}/5 for {self.task}"


class TaskRequest(OrgOwned):
    """One Travtus-style request: its id, what it asked, and how it ended."""

    class Outcome(models.TextChoices):
        COMPLETED = "completed", _("Completed")
        FAILED = "failed", _("Failed")

    request_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    method = models.CharField(max_length=8)
    route = models.CharField(max_length=200)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    status_code = models.PositiveSmallIntegerField()
    task = models.ForeignKey(Task, null=True, blank=True, on_delete=models.SET_NULL, related_name="requests")
    errors = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.method} {self.route} {self.outcome} ({self.request_id})"


def member_ids(task: Task, relation: str) -> set[int]:
    """The ids of the task's members of `relation`: from what is loaded with it, else one query."""
    loaded = getattr(task, "_prefetched_objects_cache", {}).get(relation)
    if loaded is not None:
        return {obj.pk for obj in loaded}
    known = task.__dict__.get(f"_{relation}_ids")
    if known is not None:
        return set(known)
    return set(getattr(task, relation).values_list("pk", flat=True))
