"""What operators ask of the outboxes: how far behind they are, redrive what failed, prune what is old.

Webhook deliveries and notifications are both outboxes (rows with a status and `next_attempt_at`);
readiness, metrics and the `outbox`, `redrive` and `prune` commands read and change them here.
Notifications are optional: until their table exists every notification figure is left out.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, models
from django.db.models import Count, Min, Q
from django.utils import timezone

from webhooks.models import Attempt, Delivery, Event
from webhooks.services import deliveries_resend

from .idempotency import prune_idempotency_records
from .models import Organization

BATCH = 1000


def notification_model() -> type[models.Model] | None:
    """notifications.models.Notification when the app and its table exist; else None."""
    try:
        from notifications.models import Notification
    except ImportError:
        return None
    if Notification._meta.db_table not in connection.introspection.table_names():
        return None  # migrations not applied yet
    return Notification


@dataclass(frozen=True)
class Backlog:
    """Rows due for an attempt now, and since when the oldest of them has been waiting."""

    due: int
    oldest_due_at: datetime | None

    def oldest_due_age(self, now: datetime) -> float:
        return max(0.0, (now - self.oldest_due_at).total_seconds()) if self.oldest_due_at else 0.0


def webhook_backlog(now: datetime) -> Backlog:
    row = Delivery.objects.due(now).aggregate(due=Count("id"), oldest=Min("next_attempt_at"))
    return Backlog(row["due"], row["oldest"])


def notification_backlog(now: datetime) -> Backlog | None:
    Notification = notification_model()
    if Notification is None:
        return None
    row = Notification.objects.due(now).aggregate(due=Count("id"), oldest=Min("next_attempt_at"))
    return Backlog(row["due"], row["oldest"])


# --- outbox report --------------------------------------------------------------------------


def webhook_outbox(now: datetime) -> list[dict]:
    """Per organization and endpoint: pending, failed (retrying) and dead deliveries, oldest due."""
    S = Delivery.Status
    due = Q(status__in=Delivery.RETRYING, next_attempt_at__lte=now)
    return list(
        Delivery.objects.exclude(status=S.SUCCEEDED)
        .values("endpoint__organization__slug", "endpoint_id", "endpoint__url", "endpoint__enabled")
        .annotate(
            pending=Count("id", filter=Q(status=S.PENDING)),
            failed=Count("id", filter=Q(status=S.FAILED)),
            dead=Count("id", filter=Q(status=S.DEAD)),
            oldest_due=Min("next_attempt_at", filter=due),
        )
        .order_by("endpoint__organization__slug", "endpoint_id")
    )


def notification_outbox(now: datetime) -> list[dict] | None:
    """Per organization and channel: queued, held and failed notifications, oldest due."""
    Notification = notification_model()
    if Notification is None:
        return None
    S = Notification.Status
    due = Q(status__in=Notification.PENDING, next_attempt_at__lte=now)
    return list(
        Notification.objects.filter(status__in=[*Notification.PENDING, S.FAILED])
        .values("organization__slug", "channel")
        .annotate(
            queued=Count("id", filter=Q(status=S.QUEUED)),
            held=Count("id", filter=Q(status=S.HELD)),
            failed=Count("id", filter=Q(status=S.FAILED)),
            oldest_due=Min("next_attempt_at", filter=due),
        )
        .order_by("organization__slug", "channel")
    )


# --- redrive --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Redriven:
    requeued: int
    skipped: int  # left alone: their endpoint is disabled


def webhooks_redrive(
    *, since: datetime, until: datetime, organization: Organization | None = None, endpoint_id: int | None = None
) -> Redriven:
    """Send again the failed and dead deliveries created in [since, until), from their first attempt."""
    deliveries = Delivery.objects.filter(
        status__in=[Delivery.Status.FAILED, Delivery.Status.DEAD], created_at__gte=since, created_at__lt=until
    ).select_related("endpoint")
    if organization is not None:
        deliveries = deliveries.filter(endpoint__organization=organization)
    if endpoint_id is not None:
        deliveries = deliveries.filter(endpoint_id=endpoint_id)
    rows = list(deliveries.order_by("pk"))
    requeued = 0
    for start in range(0, len(rows), BATCH):
        requeued += len(deliveries_resend(deliveries=rows[start : start + BATCH]))
    return Redriven(requeued=requeued, skipped=len(rows) - requeued)


def notifications_redrive(*, since: datetime, until: datetime, organization: Organization | None = None) -> Redriven:
    """Queue the failed notifications created in [since, until) again; the sweeper sends them."""
    Notification = notification_model()
    if Notification is None:
        return Redriven(0, 0)
    failed = Notification.objects.filter(status=Notification.Status.FAILED, created_at__gte=since, created_at__lt=until)
    if organization is not None:
        failed = failed.filter(organization=organization)
    requeued = failed.update(
        status=Notification.Status.QUEUED,
        next_attempt_at=timezone.now(),
        attempts=0,
        locked_until=None,
        updated_at=timezone.now(),
    )
    return Redriven(requeued=requeued, skipped=0)


# --- prune ----------------------------------------------------------------------------------


def prune(*, days: int, now: datetime | None = None) -> Counter:
    """Delete attempts and finished messages older than `days`; anything still being retried stays.

    Returns how many rows of each model went, e.g. {"webhooks.Attempt": 120, "webhooks.Event": 30}.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=days)
    finished = [Delivery.Status.SUCCEEDED, Delivery.Status.DEAD]
    deleted = Counter()
    deleted += _delete_in_batches(Attempt.objects.filter(started_at__lt=cutoff, delivery__status__in=finished))
    deleted += _delete_in_batches(
        Event.objects.filter(created_at__lt=cutoff).exclude(deliveries__status__in=Delivery.RETRYING)
    )
    deleted["taskhub.IdempotencyRecord"] += prune_idempotency_records(now)
    return +deleted


def _delete_in_batches(queryset: models.QuerySet) -> Counter:
    """Short transactions: a big first prune must not hold locks the workers wait for."""
    deleted = Counter()
    while ids := list(queryset.values_list("pk", flat=True)[:BATCH]):
        _, per_model = queryset.model.objects.filter(pk__in=ids).delete()
        deleted.update(per_model)
    return deleted
