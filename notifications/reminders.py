"""Reminders at a task's reminder time, and the crew's day-before digest; both driven by beat."""

from collections import defaultdict
from datetime import datetime, time, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from taskhub.models import Organization
from tasks.models import Person, StatusType, Task

from .models import Notification, NotificationSettings
from .services import digest_plan, plan, settings_for

# A reminder whose time passed longer ago than this (beat was down) is no longer sent.
REMINDER_LOOKBACK = timedelta(days=1)
CLOSED = (StatusType.COMPLETE, StatusType.CANCELLED)


def due_reminders(now: datetime):
    """Live, open tasks whose reminder time has come and that have no reminder planned since."""
    reminded = Notification.objects.filter(
        task=OuterRef("pk"), event="reminder", created_at__gte=OuterRef("reminder_datetime")
    )
    return (
        Task.objects.alive()
        .filter(reminder_datetime__lte=now, reminder_datetime__gt=now - REMINDER_LOOKBACK)
        .exclude(status__in=CLOSED)
        .exclude(Exists(reminded))
        .select_related("organization", "customer", "creator")
        .prefetch_related("assignees", "addresses")
    )


def plan_due_reminders(now: datetime | None = None) -> int:
    """Plan the reminders that are due; keyed by task and reminder time, so each is sent once."""
    now = now or timezone.now()
    planned = 0
    for task in due_reminders(now)[:500]:
        with transaction.atomic():
            planned += len(plan(task=task, event="reminder", occurrence=task.reminder_datetime.isoformat()))
    return planned


def plan_due_digests(now: datetime | None = None) -> int:
    """For each organization past its digest hour, plan tomorrow's digest once."""
    now = now or timezone.now()
    planned = 0
    for organization in Organization.objects.all():
        settings_for(organization)  # created with the defaults on first use
        planned += organization_digest(organization, now)
    return planned


@transaction.atomic
def organization_digest(organization: Organization, now: datetime) -> int:
    """Tomorrow's digest for each crew member of the organization, if its hour has come and it is not done."""
    org_settings = NotificationSettings.objects.select_for_update().get(organization=organization)
    local = timezone.localtime(now, organization.tz)
    tomorrow = local.date() + timedelta(days=1)
    if local.hour < org_settings.digest_hour or (
        org_settings.last_digest_date and org_settings.last_digest_date >= tomorrow
    ):
        return 0
    planned = 0
    for person, tasks in crew_tasks_on(organization, tomorrow).items():
        planned += len(digest_plan(organization=organization, person=person, day=tomorrow, tasks=tasks))
    org_settings.last_digest_date = tomorrow
    org_settings.save(update_fields=["last_digest_date"])
    return planned


def crew_tasks_on(organization: Organization, day) -> dict[Person, list[Task]]:
    """Each crew member's live, open tasks starting on `day` in the organization's zone, by start time."""
    start = datetime.combine(day, time(0), tzinfo=organization.tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=organization.tz)
    tasks = (
        Task.objects.alive()
        .for_org(organization)
        .starting_between(start, end)
        .exclude(status__in=CLOSED)
        .order_by("start_datetime", "pk")
        .select_related("customer")
        .prefetch_related("assignees", "addresses")
    )
    by_person: dict[Person, list[Task]] = defaultdict(list)
    for task in tasks:
        for person in task.assignees.all():
            by_person[person].append(task)
    return by_person
