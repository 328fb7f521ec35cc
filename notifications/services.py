"""Notification services: plan messages in the caller's transaction, resend them, manage opt-outs."""

import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import cache
from typing import Any

from django.db import transaction
from django.db.models import Case, Q, Subquery, When
from django.utils import timezone

from taskhub.configcache import StampedCache
from taskhub.inserting import insert_all
from taskhub.models import Organization
from taskhub.oncommit import CommitBatch
from tasks.models import Person, Task

from .defaults import create_default_set
from .models import (
    EVENTS,
    Audience,
    Channel,
    Notification,
    NotificationSettings,
    Suppression,
    TemplateRule,
    TemplateSet,
)
from .policy import quiet_hours_end
from .rendering import SMS_MAX_LENGTH, RenderError, digest_context, render, task_context

logger = logging.getLogger(__name__)


def settings_for(organization: Organization) -> NotificationSettings:
    """The organization's notification settings, created with the defaults on first use."""
    found, _ = NotificationSettings.objects.get_or_create(organization=organization)
    return found


def default_set_for(organization: Organization) -> TemplateSet:
    """The organization's default template set, created with the default rules on first use."""
    found = TemplateSet.objects.filter(organization=organization, is_default=True).first()
    return found or create_default_set(organization.pk, TemplateSet, TemplateRule)


def template_set_for(task: Task) -> TemplateSet:
    """The set `task.template` names; the organization's default for an empty or unknown key."""
    return template_set_named(task.organization, task.template)


def template_set_named(organization: Organization, key: str) -> TemplateSet:
    if key:
        found = TemplateSet.objects.filter(organization_id=organization.pk, key=key).first()
        if found:
            return found
    return default_set_for(organization)


def occurrence_of(task: Task, event: str) -> str:
    """What makes one event unique on a task: its version (a status entry's id is passed in instead)."""
    if event == "reminder" and task.reminder_datetime:
        return task.reminder_datetime.isoformat()
    return f"v{task.version}"


@transaction.atomic(savepoint=False)
def plan(
    *, task: Task, event: str, occurrence: str | int | None = None, crew_ids: Iterable[int] | None = None
) -> list[Notification]:
    """Write the messages that `event` on `task` calls for; they are sent after the caller commits.

    One row per recipient and channel, keyed so that planning the same event twice (a retried
    request, a sweep run twice) never writes, let alone sends, a second message.
    """
    return write(task.organization, _rows(task, event, occurrence, crew_ids))


@transaction.atomic(savepoint=False)
def plan_change(task: Task, events: list[tuple[str, Iterable[int] | None]]) -> list[Notification]:
    """The messages of every event one change of the task sends, written at once.

    Each event is keyed by the task's version, which the change has just raised under the task's
    lock (or by a journal entry it has just written), so no row can hold these keys yet: they are
    inserted without the conflict check and read-back that plan() needs.
    """
    names = cache(lambda: task_context(task, task.organization))  # built once, for the first event with rules
    rows = [row for event, crew_ids in events for row in _rows(task, event, None, crew_ids, names)]
    return write(task.organization, rows, fresh=True)


def _rows(
    task: Task,
    event: str,
    occurrence: str | int | None,
    crew_ids: Iterable[int] | None,
    names: Callable[[], dict[str, Any]] | None = None,
) -> list[Notification]:
    if event not in EVENTS or task.is_deleted:
        return []
    rules = rules_for(task, event)
    if not rules:
        return []
    organization = task.organization
    context = names() if names is not None else task_context(task, organization)
    occurrence = str(occurrence if occurrence is not None else occurrence_of(task, event))
    crew = set(crew_ids) if crew_ids is not None else None
    rows = []
    for rule in rules:
        for person in recipients(task, rule.audience, crew):
            to = address_of(person, rule.channel, task, rule.audience)
            if to:
                key = idempotency_key(organization.pk, task.pk, event, occurrence, person.pk, rule.channel)
                rows.append(_build(rule, organization, task, person, to, key, {**context, **_about(person)}))
    return rows


def rules_for(task: Task, event: str) -> list:
    """The task's enabled rules for `event`; read once per task instance, as one change plans several events."""
    template, cache = task.__dict__.get("_notification_rules", (None, None))
    if cache is None or template != task.template:
        cache = {}
        for rule in _enabled_rules.get(task.organization, task.template or ""):
            cache.setdefault(rule.event, []).append(rule)
        task.__dict__["_notification_rules"] = (task.template, cache)
    return cache.get(event, [])


def _read_enabled_rules(organization: Organization, template: str) -> tuple[TemplateRule, ...]:
    """The enabled rules of the set `template` names (else the default set): one query, unless the set has no rules."""
    sets = TemplateSet.objects.filter(organization_id=organization.pk)
    if template:  # the keyed set when it exists, else the default
        sets = sets.filter(Q(is_default=True) | Q(key=template))
        order = [Case(When(is_default=True, then=1), default=0), "pk"]
    else:
        sets, order = sets.filter(is_default=True), ["pk"]
    chosen = sets.order_by(*order).values("pk")[:1]
    # The rules of one set in the model's order, without the joins its set-level ordering brings.
    rules = list(TemplateRule.objects.filter(template_set=Subquery(chosen)).order_by("event", "audience", "channel"))
    if not rules:  # an empty set, or no default set yet: template_set_named creates it
        rules = list(template_set_named(organization, template).rules.all())
    return tuple(rule for rule in rules if rule.enabled)


# Read on every change of every task: kept per process until the organization's configuration changes.
_enabled_rules = StampedCache(_read_enabled_rules)


def recipients(task: Task, audience: str, crew: set[int] | None = None) -> list[Person]:
    """The people a rule's audience names on this task; `crew` narrows the crew to those just assigned."""
    assigned = [p for p in task.assignees.all() if crew is None or p.pk in crew]
    if audience == Audience.CUSTOMER:
        return [task.customer] if task.customer else []
    if audience == Audience.CREW:
        return assigned
    if audience == Audience.CREATOR:
        return [task.creator] if task.creator else []
    if audience == Audience.CREW_OR_CREATOR:
        return assigned or ([task.creator] if task.creator else [])
    return []


def address_of(person: Person, channel: str, task: Task | None = None, audience: str = "") -> str:
    """SMS to the mobile number, else the phone; email to the email.

    A task's `notify_sms` / `notify_email` (Arrivy's `notifications`) are the customer's
    preferences: they switch the customer's messages off, never the crew's.
    """
    if task is not None and audience == Audience.CUSTOMER and not customer_wants(task, channel):
        return ""
    if channel == Channel.SMS:
        return person.sms_number
    return person.email.strip().lower() if person.email else ""


def customer_wants(task: Task, channel: str) -> bool:
    return task.notify_sms if channel == Channel.SMS else task.notify_email


def idempotency_key(org_id: int, task_id: int | None, event: str, occurrence: str, person_id: int, channel: str) -> str:
    return f"{org_id}:{task_id or '-'}:{event}:{occurrence}:{person_id}:{channel}"


def _about(person: Person) -> dict[str, Any]:
    return {"recipient_name": person.first_name or person.full_name or person.company_name}


def _build(
    rule: TemplateRule,
    organization: Organization,
    task: Task | None,
    person: Person,
    to: str,
    key: str,
    context: dict[str, Any],
) -> Notification:
    row = Notification(
        organization=organization, task=task, event=rule.event, rule=rule, recipient=person, channel=rule.channel,
        to=to, urgent=rule.urgent, idempotency_key=key,
    )  # fmt: skip
    try:
        row.subject = render(rule.subject, context)[:255] if rule.channel == Channel.EMAIL else ""
        row.body = render(rule.body, context)
    except RenderError as exc:
        row.status, row.error, row.next_attempt_at = Notification.Status.FAILED, f"Template error: {exc}", None
        return row
    if rule.channel == Channel.SMS:
        row.body = row.body[:SMS_MAX_LENGTH]
    if not row.body:
        row.status, row.error, row.next_attempt_at = Notification.Status.FAILED, "The template rendered empty.", None
    return row


def write(
    organization: Organization, rows: list[Notification], now: datetime | None = None, fresh: bool = False
) -> list[Notification]:
    """Insert the rows not already there (by idempotency key); queued ones are enqueued after commit.

    `fresh`: the caller knows no row holds these keys, so they are inserted as they are.
    """
    if not rows:
        return []
    now = now or timezone.now()
    _set_initial_state(organization, rows, now)
    if fresh:
        written = insert_all(rows)
    else:
        Notification.objects.bulk_create(rows, ignore_conflicts=True)
        # ignore_conflicts leaves the primary keys unset: read back what the keys now hold.
        stored = Notification.objects.in_bulk([row.idempotency_key for row in rows], field_name="idempotency_key")
        written = [stored[row.idempotency_key] for row in rows if row.idempotency_key in stored]
    enqueue_on_commit(row.pk for row in written if row.status == Notification.Status.QUEUED)
    return written


def _set_initial_state(organization: Organization, rows: list[Notification], now: datetime) -> None:
    pending = [row for row in rows if row.status == Notification.Status.QUEUED]
    suppressed = suppressed_addresses(organization, {(row.channel, row.to) for row in pending})
    for row in pending:
        row.created_at, row.next_attempt_at = now, now
        if (row.channel, row.to) in suppressed:
            row.status, row.next_attempt_at = Notification.Status.SUPPRESSED, None
            row.error = "Not sent: the recipient opted out."
        elif row.channel == Channel.SMS and not row.urgent:
            found = remembered_settings(organization)
            opening = quiet_hours_end(now, organization.tz, found.quiet_hours_start, found.quiet_hours_end)
            if opening is not None:
                row.status, row.next_attempt_at = Notification.Status.HELD, opening


# Read for every change that plans an SMS and every batch of messages sent: kept per process until the
# organization's configuration changes. Shared between threads: read it, never change it.
_settings = StampedCache(settings_for)


def remembered_settings(organization: Organization) -> NotificationSettings:
    """The organization's notification settings, as of its configuration stamp."""
    return _settings.get(organization)


# An organization's opt-outs are remembered per process when there are at most this many.
REMEMBERED_SUPPRESSIONS = 1000


def _read_suppressions(organization: Organization) -> frozenset[tuple[str, str]] | None:
    """All the organization's opt-outs, or None when there are too many to keep in every process."""
    rows = Suppression.objects.filter(organization=organization).order_by().values_list("channel", "address")
    found = list(rows[: REMEMBERED_SUPPRESSIONS + 1])
    return frozenset(found) if len(found) <= REMEMBERED_SUPPRESSIONS else None


_suppressions = StampedCache(_read_suppressions)


def suppressed_addresses(organization: Organization, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The (channel, address) pairs of `pairs` that opted out: from the per-process copy when the
    organization has at most REMEMBERED_SUPPRESSIONS opt-outs, else from the database.

    Planning reads them for every change and sending for every batch; each has just read the
    organization's row (with the task, with the claimed messages), so an opt-out committed before
    that read is seen.
    """
    if not pairs:
        return set()
    known = _suppressions.get(organization)
    if known is not None:
        return pairs & known
    rows = Suppression.objects.filter(organization=organization, address__in={to for _, to in pairs})
    return {(channel, address) for channel, address in rows.values_list("channel", "address")} & pairs


def enqueue_on_commit(ids: Iterable[int]) -> None:
    """Send right after commit, one task for all the transaction planned; the sweeper sends what this misses."""
    _to_send.add(ids)


def _enqueue(ids: list[int]) -> None:
    from .tasks import send_notifications

    try:
        send_notifications.delay(ids)
    except Exception:
        # The rows are committed: the sweeper sends them when the broker is back.
        logger.warning("Could not enqueue notifications %s; the sweeper will pick them up.", ids, exc_info=True)


_to_send = CommitBatch(_enqueue)


@transaction.atomic
def withdraw(*, task: Task) -> int:
    """A deleted task's messages not yet sent are not sent; returns how many were withdrawn."""
    return Notification.objects.filter(task=task, status__in=Notification.PENDING).update(
        status=Notification.Status.FAILED, error="Not sent: the task was deleted.", next_attempt_at=None,
        updated_at=timezone.now(),
    )  # fmt: skip


@transaction.atomic
def digest_plan(*, organization: Organization, person: Person, day, tasks: list[Task]) -> list[Notification]:
    """One crew member's digest of `day`'s tasks, by the channels the default set's digest rules name."""
    rules = default_set_for(organization).rules.filter(event="digest", enabled=True, audience=Audience.CREW)
    context = digest_context(organization, person, day, tasks)
    rows = []
    for rule in rules:
        to = address_of(person, rule.channel)
        if to:
            key = idempotency_key(organization.pk, None, "digest", day.isoformat(), person.pk, rule.channel)
            rows.append(_build(rule, organization, None, person, to, key, context))
    return write(organization, rows)


@transaction.atomic
def notification_resend(*, notification: Notification) -> Notification:
    """Send the same message again as a new row (its own key), so the log keeps both."""
    copy = Notification(
        organization_id=notification.organization_id, task_id=notification.task_id, event=notification.event,
        rule_id=notification.rule_id, recipient_id=notification.recipient_id, channel=notification.channel,
        to=notification.to, subject=notification.subject, body=notification.body, urgent=notification.urgent,
        idempotency_key=f"{notification.idempotency_key}:resend:{uuid.uuid4().hex[:12]}"[-255:],
    )  # fmt: skip
    (written,) = write(notification.organization, [copy])
    return written


@transaction.atomic
def suppression_add(*, organization: Organization, channel: str, address: str, reason: str) -> Suppression:
    """Never send to this address on this channel for this organization, until lifted."""
    found, _ = Suppression.objects.get_or_create(
        organization=organization, channel=channel, address=address, defaults={"reason": reason[:255]}
    )
    return found


@transaction.atomic
def suppression_lift(*, organization: Organization, channel: str, address: str) -> int:
    deleted, _ = Suppression.objects.filter(organization=organization, channel=channel, address=address).delete()
    return deleted
