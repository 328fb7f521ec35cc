"""Sending one notification: claim the row, check opt-out, quiet hours and caps, send, record the outcome."""

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from taskhub.models import Organization
from taskhub.prepared import Prepared, columns, from_row
from taskhub.updating import save_fields, update_rows
from webhooks.services import emit

from .models import Channel, Notification
from .policy import quiet_hours_end, retry_delay, start_of_day
from .services import remembered_settings, suppressed_addresses, suppression_add
from .transports import TransportError, transport_for

logger = logging.getLogger(__name__)

NOTIFICATION_FAILED = "notification.failed"


def lease_length() -> timedelta:
    """How long a claimed row stays invisible to other workers: past any transport's timeout."""
    return timedelta(seconds=2 * max(settings.WEBHOOK_TIMEOUT_SECONDS, settings.EMAIL_TIMEOUT_SECONDS) + 30)


def claim(notification_id: int) -> Notification | None:
    """Lease one due notification to this worker; None if it is final, not due, or leased elsewhere."""
    return next(iter(claim_all([notification_id])), None)


def claim_due(limit: int) -> list[Notification]:
    """Lease up to `limit` due notifications: never enqueued, held until now, or due for a retry."""
    return _claim(lambda now: Notification.objects.due(now).order_by("next_attempt_at"), limit)


def claim_all(notification_ids: list[int]) -> list[Notification]:
    """Lease those of these notifications that are due; the rest are final, not due, or leased elsewhere."""
    ids = sorted(set(notification_ids))
    if 0 < len(ids) <= COMPILED_CLAIMS:
        return _claim_compiled(ids)
    return _claim(lambda now: Notification.objects.due(now).filter(pk__in=ids).order_by("pk"))


def _claim(due: Callable[[datetime], QuerySet], limit: int | None = None) -> list[Notification]:
    """Two statements whatever the number of rows: read the due ones as it locks them, then lease them."""
    now = timezone.now()
    with transaction.atomic():
        locked = due(now).select_related("organization").select_for_update(skip_locked=True, of=("self",))
        return _leased(list(locked[:limit]), now)


def _leased(claimed: list[Notification], now: datetime) -> list[Notification]:
    if claimed:
        locked_until = now + lease_length()
        update_rows(Notification, [n.pk for n in claimed], locked_until=locked_until)
        for notification in claimed:
            notification.locked_until = locked_until
    return claimed


# One change's messages are claimed by their ids: the read is compiled once per thread and number
# of ids (taskhub.prepared), as compiling it cost more than running it; more ids are rare.
COMPILED_CLAIMS = 16
NOW_MARK, LEASE_MARK = datetime(2001, 2, 3, 4, 5, 6, 789031, UTC), datetime(2001, 2, 3, 4, 5, 6, 789032, UTC)
NOTIFICATION_COLUMNS, ORGANIZATION_COLUMNS = columns(Notification), columns(Organization)


@functools.cache
def _claim_read(count: int) -> Prepared:
    marks = [-(2**62) + 100 + n for n in range(count)]

    def build(now: datetime, lease_ended_by: datetime, *ids: int) -> QuerySet:
        return (
            Notification.objects.due(now, lease_ended_by)
            .filter(pk__in=ids)
            .order_by("pk")
            .select_for_update(skip_locked=True, of=("self",))
            .values(*NOTIFICATION_COLUMNS, *(f"organization__{name}" for name in ORGANIZATION_COLUMNS))
        )

    return Prepared(build, NOW_MARK, LEASE_MARK, *marks)


def _claim_compiled(ids: list[int]) -> list[Notification]:
    """`_claim` of these ids, with the read compiled once."""
    now = timezone.now()
    read = _claim_read(len(ids))
    with transaction.atomic():
        claimed = []
        for row in read.rows(now, now, *ids):
            notification = from_row(Notification, row, read.db, NOTIFICATION_COLUMNS)
            Notification.organization.field.set_cached_value(
                notification, from_row(Organization, row, read.db, ORGANIZATION_COLUMNS, "organization__")
            )
            claimed.append(notification)
        return _leased(claimed, now)


def send_due(limit: int | None = None) -> int:
    """The sweeper's pass: send every due notification it can claim."""
    claimed = claim_due(limit or settings.NOTIFICATION_SWEEP_BATCH)
    attempt_all(claimed)
    return len(claimed)


def attempt_all(notifications: list[Notification]) -> None:
    """Send claimed notifications, each recorded as it goes; an organization's opt-outs, settings and
    counts toward its daily caps are read once for all of its notifications."""
    now = timezone.now()
    by_organization: dict[int, list[Notification]] = {}
    for notification in notifications:
        by_organization.setdefault(notification.organization_id, []).append(notification)
    for group in by_organization.values():
        checks = Checks(group[0].organization, group, now)
        for notification in group:
            try:
                attempt(notification, now, checks)
            except Exception:
                logger.exception(
                    "Notification %s failed unexpectedly; it is retried when its lease ends.", notification.pk
                )


class Checks:
    """What decides whether an organization's notifications may go now, read once for a batch of them."""

    def __init__(self, organization: Organization, notifications: list[Notification], now: datetime) -> None:
        self.organization, self.now = organization, now
        # As planning reads them: kept per process while the organization's configuration stamp,
        # read with the claimed rows just now, stays the same (taskhub.configcache).
        self.suppressed = suppressed_addresses(organization, {(n.channel, n.to) for n in notifications})
        self.settings = remembered_settings(organization)
        self._sent_today: dict[str, int] = {}

    def over_cap(self, channel: str) -> int | None:
        """The channel's daily cap when today's sends have reached it, else None."""
        cap = self.settings.cap_for(channel)
        if not cap:
            return None
        if channel not in self._sent_today:
            # Counted without a lock: concurrent workers may overshoot by a message or two.
            self._sent_today[channel] = sent_today.count(self.organization, channel, self.now)
        return cap if self._sent_today[channel] >= cap else None

    def sent(self, channel: str) -> None:
        if channel in self._sent_today:
            self._sent_today[channel] += 1


# A send's row is written in the statement right after its `sent_at` is taken: sends older than
# this have surely committed, and no later write can add one before it.
SETTLE_AFTER = timedelta(seconds=10)


class SentToday:
    """Per process: what an organization sent on a channel since the start of its day, counted once.

    A batch used to count the whole day's sends, a scan that grew with every message sent (4 ms
    at 4,800 SMS; 36 ms at 200,000). Now each process keeps the count of the sends that have
    settled (older than SETTLE_AFTER) and reads only the newer ones: other workers' sends among
    them. The count starts again with a new local day, and from scratch when the organization's
    configuration stamp changes. A message that changes after it settled still counts as it did
    (reported failed: once; resent: once more when it goes again), which can only stop sending
    early, never late.
    """

    SIZE = 4096

    def __init__(self) -> None:
        self._settled: OrderedDict[tuple, tuple[int, datetime]] = OrderedDict()
        self._lock = threading.Lock()

    def count(self, organization: Organization, channel: str, now: datetime) -> int:
        since = start_of_day(now, organization.tz)
        key = (organization.pk, organization.config_stamp, channel, since)
        with self._lock:
            settled, until = self._settled.get(key, (0, since))
        settle_by = max(until, now - SETTLE_AFTER)
        found = SENT_SINCE.first(organization.pk, channel, until, settle_by) or {"settling": 0, "newer": 0}
        with self._lock:  # a thread that counted meanwhile stored a pair as true as this one
            self._settled[key] = (settled + found["settling"], settle_by)
            self._settled.move_to_end(key)
            while len(self._settled) > self.SIZE:
                self._settled.popitem(last=False)
        return settled + found["newer"]


sent_today = SentToday()
# The count, compiled once per thread (taskhub.prepared): compiling it cost more than running it.
ORGANIZATION_MARK, CHANNEL_MARK = -(2**62) + 21, "\x00channel\x00"
SINCE_MARK, SETTLE_MARK = datetime(2001, 2, 3, 4, 5, 6, 789021, UTC), datetime(2001, 2, 3, 4, 5, 6, 789022, UTC)
SENT_SINCE = Prepared(
    lambda organization_id, channel, since, settle_by: (
        Notification.objects.sent_since(organization_id, channel, since)
        .order_by()
        .values("organization_id")
        .annotate(settling=Count("pk", filter=Q(sent_at__lt=settle_by)), newer=Count("pk"))
    ),
    ORGANIZATION_MARK,
    CHANNEL_MARK,
    SINCE_MARK,
    SETTLE_MARK,
)


def attempt(notification: Notification, now: datetime | None = None, checks: Checks | None = None) -> Notification:
    """Send a claimed notification unless something says not to, and record what happened."""
    now = now or timezone.now()
    checks = checks or Checks(notification.organization, [notification], now)
    if _refused_before_sending(notification, now, checks):
        return notification
    try:
        message_id = transport_for(notification.channel).send(notification)
    except TransportError as exc:
        _record_failure(notification, exc)
        return notification
    checks.sent(notification.channel)
    notification.status, notification.provider_message_id = Notification.Status.SENT, message_id[:100]
    notification.sent_at, notification.error = timezone.now(), ""
    _finish(notification, attempted=True)
    return notification


def _refused_before_sending(notification: Notification, now: datetime, checks: Checks) -> bool:
    """Opted out, quiet hours or the daily cap: record the outcome and say so."""
    organization = notification.organization
    if (notification.channel, notification.to) in checks.suppressed:
        notification.status, notification.error = Notification.Status.SUPPRESSED, "Not sent: the recipient opted out."
        _finish(notification)
        return True
    org_settings = checks.settings
    if notification.channel == Channel.SMS and not notification.urgent:
        opening = quiet_hours_end(now, organization.tz, org_settings.quiet_hours_start, org_settings.quiet_hours_end)
        if opening is not None:
            notification.status, notification.next_attempt_at = Notification.Status.HELD, opening
            notification.locked_until = None
            notification.save(update_fields=["status", "next_attempt_at", "locked_until", "updated_at"])
            return True
    cap = checks.over_cap(notification.channel)
    if cap:
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


FINISHED_FIELDS = ["status", "provider_message_id", "error", "attempts", "next_attempt_at", "locked_until", "sent_at",
                   "updated_at"]  # fmt: skip


def _finish(notification: Notification, *, attempted: bool = False, final: bool = True, failed: bool = False) -> None:
    """Record the outcome: one UPDATE; with the notification.failed event in the same transaction when it failed."""
    if attempted:
        notification.attempts += 1
    if final:
        notification.next_attempt_at = None
    notification.locked_until = None
    if not failed:
        save_fields(notification, FINISHED_FIELDS)
        return
    with transaction.atomic():
        save_fields(notification, FINISHED_FIELDS)
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
