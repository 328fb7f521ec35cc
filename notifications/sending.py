"""Sending one notification: claim the row, check opt-out, quiet hours and caps, send, record the outcome."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from webhooks.services import emit

from .models import Channel, Notification
from .policy import quiet_hours_end, retry_delay, start_of_day
from .services import settings_for, suppressed_addresses, suppression_add
from .transports import TransportError, transport_for

logger = logging.getLogger(__name__)

NOTIFICATION_FAILED = "notification.failed"


def lease_length() -> timedelta:
    """How long a claimed row stays invisible to other workers: past any transport's timeout."""
    return timedelta(seconds=2 * max(settings.WEBHOOK_TIMEOUT_SECONDS, settings.EMAIL_TIMEOUT_SECONDS) + 30)


def claim(notification_id: int) -> Notification | None:
    """Lease one due notification to this worker; None if it is final, not due, or leased elsewhere."""
    now = timezone.now()
    claimed = Notification.objects.due(now).filter(pk=notification_id).update(locked_until=now + lease_length())
    if not claimed:
        return None
    return Notification.objects.select_related("organization").get(pk=notification_id)


def claim_due(limit: int) -> list[Notification]:
    """Lease up to `limit` due notifications: never enqueued, held until now, or due for a retry."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            Notification.objects.due(now)
            .order_by("next_attempt_at")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:limit]
        )
        Notification.objects.filter(pk__in=ids).update(locked_until=now + lease_length())
    return list(Notification.objects.select_related("organization").filter(pk__in=ids).order_by("next_attempt_at"))


def send_due(limit: int | None = None) -> int:
    """The sweeper's pass: send every due notification it can claim."""
    claimed = claim_due(limit or settings.NOTIFICATION_SWEEP_BATCH)
    for notification in claimed:
        try:
            attempt(notification)
        except Exception:
            logger.exception("Notification %s failed unexpectedly; it is retried when its lease ends.", notification.pk)
    return len(claimed)


def attempt(notification: Notification, now: datetime | None = None) -> Notification:
    """Send a claimed notification unless something says not to, and record what happened."""
    now = now or timezone.now()
    if _refused_before_sending(notification, now):
        return notification
    try:
        message_id = transport_for(notification.channel).send(notification)
    except TransportError as exc:
        _record_failure(notification, exc)
        return notification
    notification.status, notification.provider_message_id = Notification.Status.SENT, message_id[:100]
    notification.sent_at, notification.error = timezone.now(), ""
    _finish(notification, attempted=True)
    return notification


def _refused_before_sending(notification: Notification, now: datetime) -> bool:
    """Opted out, quiet hours or the daily cap: record the outcome and say so."""
    organization = notification.organization
    if suppressed_addresses(organization, {(notification.channel, notification.to)}):
        notification.status, notification.error = Notification.Status.SUPPRESSED, "Not sent: the recipient opted out."
        _finish(notification)
        return True
    org_settings = settings_for(organization)
    if notification.channel == Channel.SMS and not notification.urgent:
        opening = quiet_hours_end(now, organization.tz, org_settings.quiet_hours_start, org_settings.quiet_hours_end)
        if opening is not None:
            notification.status, notification.next_attempt_at = Notification.Status.HELD, opening
            notification.locked_until = None
            notification.save(update_fields=["status", "next_attempt_at", "locked_until", "updated_at"])
            return True
    cap = org_settings.cap_for(notification.channel)
    # Counted without a lock: concurrent workers may overshoot by a message or two.
    if cap and Notification.objects.sent_since(organization.pk, notification.channel,
                                               start_of_day(now, organization.tz)).count() >= cap:  # fmt: skip
        label = "SMS" if notification.channel == Channel.SMS else "email"
        notification.status = Notification.Status.FAILED
        notification.error = f"Not sent: daily {label} cap reached ({cap} a day for {organization})."
        _finish(notification, failed=True)
        return True
    return False


def _record_failure(notification: Notification, exc: TransportError) -> None:
    notification.error = exc.message[:2000]
    delay = None if exc.permanent else retry_delay(notification.attempts + 1)
    if delay is not None:
        notification.status, notification.next_attempt_at = Notification.Status.QUEUED, timezone.now() + delay
        _finish(notification, attempted=True, final=False)
        return
    notification.status = Notification.Status.FAILED
    if exc.opted_out:
        suppression_add(organization=notification.organization, channel=notification.channel,
                        address=notification.to, reason="The provider reports the recipient opted out.")  # fmt: skip
    _finish(notification, attempted=True, failed=True)


@transaction.atomic
def _finish(notification: Notification, *, attempted: bool = False, final: bool = True, failed: bool = False) -> None:
    if attempted:
        notification.attempts += 1
    if final:
        notification.next_attempt_at = None
    notification.locked_until = None
    notification.save(
        update_fields=["status", "provider_message_id", "error", "attempts", "next_attempt_at", "locked_until",
                       "sent_at", "updated_at"]
    )  # fmt: skip
    if failed:
        notification_failed(notification)


def notification_failed(notification: Notification) -> None:
    """Tell the organization's webhook endpoints that a message did not get through."""
    emit(
        organization=notification.organization,
        type=NOTIFICATION_FAILED,
        data={
            "notification_id": notification.pk,
            "task_identifier": str(notification.task.identifier) if notification.task_id else None,
            "task_external_id": notification.task.external_id if notification.task_id else None,
            "event": notification.event,
            "channel": notification.channel,
            "to": notification.to,
            "status": notification.status,
            "error": notification.error,
            "attempts": notification.attempts,
        },
        task=notification.task if notification.task_id else None,
    )
