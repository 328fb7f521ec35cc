"""Webhook services: emit events into the outbox, manage endpoints, resend and recover messages."""

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from taskhub.errors import Conflict, ValidationFailed
from taskhub.inserting import insert_all
from taskhub.models import Organization
from taskhub.oncommit import CommitBatch

from . import doorbell
from .models import PREVIOUS_SECRET_TTL, Delivery, Endpoint, Event, new_secret

logger = logging.getLogger(__name__)

RECOVER_WINDOW = timedelta(days=30)
ENDPOINT_DISABLED = "endpoint.disabled"
WEBHOOK_TEST = "webhook.test"


def enabled_endpoints(organization: Organization) -> list[Endpoint]:
    """The organization's enabled endpoints: read once and passed to emit() when one change sends several events.

    Ordered by id alone: the model's default ordering would join the organization for its name.
    """
    return list(Endpoint.objects.filter(organization=organization, enabled=True).order_by("pk"))


def emit(
    *,
    organization: Organization,
    type: str,
    data: dict[str, Any] | Callable[[], dict[str, Any]],
    task=None,
    request_id: str | None = None,
    endpoints: Sequence[Endpoint] | None = None,
) -> Event | None:
    """Write an event and one delivery per subscribed endpoint, in the caller's transaction.

    Returns None and writes nothing when no enabled endpoint of the organization subscribes to
    `type`: the message log is the log of what was sent. Three queries whatever the fan-out
    (two when the caller passes `endpoints` from enabled_endpoints()).
    `data` may be a callable, so a payload nobody subscribes to is never built.
    """
    written = emit_many(
        organization=organization, events=[(type, data)], task=task, request_id=request_id, endpoints=endpoints
    )
    return written[0] if written else None


def emit_many(
    *,
    organization: Organization,
    events: Sequence[tuple[str, dict[str, Any] | Callable[[], dict[str, Any]]]],
    task=None,
    request_id: str | None = None,
    endpoints: Sequence[Endpoint] | None = None,
) -> list[Event]:
    """The events of one change, as emit() writes one: all of them in one INSERT, their deliveries in another."""
    candidates = enabled_endpoints(organization) if endpoints is None else endpoints
    now = timezone.now()
    written: list[tuple[Event, list[Endpoint]]] = []
    for type_, data in events:
        subscribed = [endpoint for endpoint in candidates if endpoint.subscribes_to(type_)]
        if subscribed:
            data = data() if callable(data) else data
            written.append((_event(organization, type_, data, now, task=task, request_id=request_id), subscribed))
    _write(written, now)
    return [event for event, _ in written]


def _emit_to(
    endpoints: Iterable[Endpoint], *, organization: Organization, type: str, data: dict, task=None, request_id=None
) -> Event:
    """One event to these endpoints, whatever they subscribe to (the endpoint test)."""
    now = timezone.now()
    event = _event(organization, type, data, now, task=task, request_id=request_id)
    _write([(event, list(endpoints))], now)
    return event


def _event(organization: Organization, type_: str, data: dict, now: datetime, *, task=None, request_id=None) -> Event:
    payload = {"type": type_, "timestamp": now.isoformat().replace("+00:00", "Z"), "data": data}
    return Event(organization=organization, type=type_, payload=payload, task=task, request_id=request_id or "",
                 created_at=now)  # fmt: skip


def _write(written: list[tuple[Event, list[Endpoint]]], now: datetime) -> None:
    """The events in one INSERT, their deliveries in another; the first attempts queued for the commit."""
    if not written:
        return
    insert_all([event for event, _ in written])
    deliveries = insert_all(
        [Delivery(event=event, endpoint=endpoint, next_attempt_at=now) for event, endpoints in written
         for endpoint in endpoints]
    )  # fmt: skip
    enqueue_on_commit(delivery for delivery in deliveries if delivery.endpoint.rate_limit is None)


def enqueue_on_commit(deliveries: Iterable[Delivery]) -> None:
    """First attempt right after commit: one task per endpoint sends all of the transaction's deliveries to it.

    A change that emits several events still enqueues each endpoint once. Rate-limited endpoints
    are metered by the sweeper instead.
    """
    _endpoints_to_send.add({delivery.endpoint_id for delivery in deliveries})


def enqueue_endpoints(endpoint_ids: Iterable[int]) -> None:
    """What one commit wrote: one task for all its endpoints (a batch each, sent together), or a drain for one.

    Endpoints a worker is sending to get no task: their bells ring, and the worker claims again
    before it lets go (see webhooks.doorbell).
    """
    from .tasks import deliver_endpoint, deliver_endpoints

    endpoint_ids = doorbell.ring(sorted(endpoint_ids))
    if len(endpoint_ids) > 1:
        _enqueue(endpoint_ids, lambda: deliver_endpoints.delay(endpoint_ids))
    elif endpoint_ids:
        _enqueue(endpoint_ids, lambda: deliver_endpoint.delay(endpoint_ids[0]))


def enqueue_drains(endpoint_ids: Iterable[int]) -> None:
    """A drain task per endpoint: for backlogs, which each keep their own worker thread busy."""
    from .tasks import deliver_endpoint

    endpoint_ids = sorted(endpoint_ids)
    _enqueue(endpoint_ids, lambda: [deliver_endpoint.delay(endpoint_id) for endpoint_id in endpoint_ids])


def _enqueue(endpoint_ids: list[int], publish: Callable[[], Any]) -> None:
    try:
        publish()
    except Exception:
        # The rows are committed: the sweeper delivers them when the broker is back.
        logger.warning(
            "Could not enqueue webhook deliveries for endpoints %s; the sweeper will pick them up.",
            endpoint_ids,
            exc_info=True,
        )


_endpoints_to_send = CommitBatch(lambda endpoint_ids: enqueue_endpoints(set(endpoint_ids)))


def endpoint_rotate_secret(*, endpoint: Endpoint) -> str:
    """Give the endpoint a new secret; the old one keeps signing alongside it for 24 h."""
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = timezone.now() + PREVIOUS_SECRET_TTL
    endpoint.secret = new_secret()
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    return endpoint.secret


@transaction.atomic
def endpoint_send_test(*, endpoint: Endpoint) -> Event:
    """Send a `webhook.test` event to this endpoint only, whatever its filter."""
    if not endpoint.enabled:
        raise Conflict("The endpoint is disabled; enable it before sending a test.", {"enabled": ["false"]})
    data = {"endpoint_id": endpoint.pk, "message": "This is a test event from TaskHub."}
    return _emit_to([endpoint], organization=endpoint.organization, type=WEBHOOK_TEST, data=data)


@transaction.atomic
def endpoint_disable(*, endpoint: Endpoint, reason: str) -> None:
    """Stop sending to the endpoint and tell the organization's other endpoints why."""
    updated = Endpoint.objects.filter(pk=endpoint.pk, enabled=True).update(
        enabled=False, disabled_at=timezone.now(), disabled_reason=reason[:255], updated_at=timezone.now()
    )
    endpoint.refresh_from_db()
    if updated:
        data = {
            "endpoint_id": endpoint.pk,
            "url": endpoint.url,
            "reason": endpoint.disabled_reason,
            "failing_since": endpoint.failing_since,
            "disabled_at": endpoint.disabled_at,
        }
        emit(organization=endpoint.organization, type=ENDPOINT_DISABLED, data=data)
        from .tasks import notify_endpoint_disabled  # tasks import this module

        # robust: a broker outage costs the email (logged), never the caller that disabled the endpoint.
        transaction.on_commit(lambda: notify_endpoint_disabled.delay(endpoint.pk), robust=True)


@transaction.atomic
def message_resend(*, event: Event) -> list[Delivery]:
    """Send the message again, with the same id and payload, to each of its still-enabled endpoints."""
    deliveries = list(event.deliveries.select_related("endpoint").filter(endpoint__enabled=True))
    if not deliveries:
        raise Conflict("None of this message's endpoints is enabled.")
    return _reschedule(deliveries)


@transaction.atomic
def endpoint_recover(*, endpoint: Endpoint, since: datetime) -> list[Delivery]:
    """Re-send the endpoint's messages that did not get through since `since` (at most 30 days back)."""
    if since < timezone.now() - RECOVER_WINDOW:
        raise ValidationFailed("Messages can be recovered up to 30 days back.", {"since": ["more than 30 days ago"]})
    if not endpoint.enabled:
        raise Conflict("The endpoint is disabled; enable it before recovering its messages.", {"enabled": ["false"]})
    deliveries = endpoint.deliveries.select_related("endpoint").filter(
        created_at__gte=since, status__in=[Delivery.Status.FAILED, Delivery.Status.DEAD]
    )
    return _reschedule(list(deliveries))


@transaction.atomic
def deliveries_resend(*, deliveries: Iterable[Delivery]) -> list[Delivery]:
    """Send these deliveries again; those whose endpoint is disabled are left as they are."""
    return _reschedule([delivery for delivery in deliveries if delivery.endpoint.enabled])


def _reschedule(deliveries: list[Delivery]) -> list[Delivery]:
    now = timezone.now()
    for delivery in deliveries:
        delivery.status = Delivery.Status.PENDING
        delivery.attempts = 0
        delivery.next_attempt_at = now
        delivery.locked_until = None
    Delivery.objects.bulk_update(deliveries, ["status", "attempts", "next_attempt_at", "locked_until"])
    enqueue_on_commit(d for d in deliveries if d.endpoint.rate_limit is None)
    return deliveries


ENDPOINT_FIELDS = ("url", "description", "event_types", "enabled", "headers", "rate_limit")


def endpoint_create(*, organization: Organization, **fields: Any) -> Endpoint:
    """A new endpoint with a fresh secret; the caller shows the secret once."""
    return Endpoint.objects.create(organization=organization, **_only(fields))


def endpoint_update(*, endpoint: Endpoint, **fields: Any) -> Endpoint:
    """Change an endpoint; enabling it again clears why it was disabled and its failure clock."""
    was_enabled = endpoint.enabled
    for name, value in _only(fields).items():
        setattr(endpoint, name, value)
    if endpoint.enabled and not was_enabled:
        endpoint.disabled_at, endpoint.disabled_reason, endpoint.failing_since = None, "", None
    elif was_enabled and not endpoint.enabled:
        endpoint.disabled_at, endpoint.disabled_reason = timezone.now(), "Disabled by the organization."
    endpoint.save()
    return endpoint


def _only(fields: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if name in ENDPOINT_FIELDS}
