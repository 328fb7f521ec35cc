"""Delivering one attempt: claim the row, sign, POST through the guarded seam, record the outcome."""

import json
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from . import http
from .models import RESPONSE_BODY_LIMIT, Attempt, Delivery, Endpoint, Event
from .schedule import retry_delay
from .services import endpoint_disable
from .signing import signed_headers

logger = logging.getLogger(__name__)

DISABLE_AFTER = timedelta(days=5)
THROTTLED_CODES = frozenset({429, 502, 504})
RESERVED_HEADERS = frozenset({"webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "host"})


def lease_length() -> timedelta:
    """How long a claimed row stays invisible to other workers: past any attempt's timeout."""
    return timedelta(seconds=2 * settings.WEBHOOK_TIMEOUT_SECONDS + 30)


def claim(delivery_id: int) -> Delivery | None:
    """Lease one due delivery to this worker; None if it is final, not due, or leased elsewhere."""
    now = timezone.now()
    claimed = Delivery.objects.due(now).filter(pk=delivery_id).update(locked_until=now + lease_length())
    if not claimed:
        return None
    return Delivery.objects.select_related("event", "endpoint").get(pk=delivery_id)


def claim_due(limit: int) -> list[Delivery]:
    """Lease up to `limit` due deliveries, at most the in-flight allowance of each endpoint."""
    now = timezone.now()
    with transaction.atomic():
        candidates = list(
            Delivery.objects.due(now)
            .select_related("endpoint")
            .order_by("next_attempt_at")
            .select_for_update(skip_locked=True, of=("self",))[: limit * 2]
        )
        busy = Counter(
            dict(
                Delivery.objects.in_flight(now)
                .filter(endpoint__in={d.endpoint_id for d in candidates})
                .values_list("endpoint")
                .annotate(n=Count("id"))
            )
        )
        chosen = []
        for delivery in candidates:
            if busy[delivery.endpoint_id] < endpoint_allowance(delivery.endpoint) and len(chosen) < limit:
                busy[delivery.endpoint_id] += 1
                chosen.append(delivery)
        Delivery.objects.filter(pk__in=[d.pk for d in chosen]).update(locked_until=now + lease_length())
    return list(Delivery.objects.select_related("event", "endpoint").filter(pk__in=[d.pk for d in chosen]))


def claim_next_for_endpoint(endpoint_id: int) -> Delivery | None:
    """Lease the endpoint's oldest due delivery: a slot that frees up drains the endpoint's backlog."""
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            Delivery.objects.due(now)
            .filter(endpoint_id=endpoint_id)
            .order_by("next_attempt_at")
            .select_for_update(skip_locked=True)
            .first()
        )
        if delivery is None:
            return None
        Delivery.objects.filter(pk=delivery.pk).update(locked_until=now + lease_length())
    return Delivery.objects.select_related("event", "endpoint").get(pk=delivery.pk)


def endpoint_allowance(endpoint: Endpoint) -> int:
    """In-flight attempts one endpoint may hold, so a slow one cannot take every worker."""
    allowance = settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT
    if endpoint.rate_limit:
        # The sweeper runs every 5 s; a rate-limited endpoint gets at most its share of that window.
        allowance = min(allowance, endpoint.rate_limit * 5)
    return allowance


def endpoint_has_room(delivery: Delivery) -> bool:
    in_flight = Delivery.objects.in_flight(timezone.now()).filter(endpoint_id=delivery.endpoint_id).count()
    return in_flight <= endpoint_allowance(delivery.endpoint)  # this claimed row is one of them


def release(delivery: Delivery) -> None:
    """Give a claimed delivery back untouched."""
    Delivery.objects.filter(pk=delivery.pk).update(locked_until=None)


def deliver_due(limit: int | None = None) -> int:
    """The sweeper's pass: claim due deliveries and attempt them on a small thread pool."""
    deliveries = claim_due(limit or settings.WEBHOOK_SWEEP_BATCH)
    if not deliveries:
        return 0
    if settings.WEBHOOK_SWEEP_THREADS <= 1 or connection.vendor == "sqlite":  # SQLite: one writer at a time
        for delivery in deliveries:
            attempt_delivery(delivery)
        return len(deliveries)
    with ThreadPoolExecutor(max_workers=settings.WEBHOOK_SWEEP_THREADS) as pool:
        list(pool.map(_attempt_in_thread, deliveries))
    return len(deliveries)


def _attempt_in_thread(delivery: Delivery) -> None:
    try:
        attempt_delivery(delivery)
    except Exception:
        logger.exception("Webhook delivery %s failed unexpectedly; it is retried when its lease ends.", delivery.pk)
    finally:
        connection.close()


def request_body(event: Event) -> str:
    payload = event.payload
    ordered = {"type": payload["type"], "timestamp": payload["timestamp"], "data": payload["data"]}
    return json.dumps(ordered, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False)


def request_headers(delivery: Delivery, body: str, now: datetime) -> dict[str, str]:
    endpoint = delivery.endpoint
    custom = {k: str(v) for k, v in (endpoint.headers or {}).items() if k.lower() not in RESERVED_HEADERS}
    signed = signed_headers(msg_id=delivery.event_id, timestamp=now, body=body, secrets=endpoint.signing_secrets(now))
    return {**custom, **signed, "content-type": "application/json", "user-agent": "TaskHub-Webhooks/1.0"}


def attempt_delivery(delivery: Delivery) -> Attempt | None:
    """Send one attempt of a claimed delivery and record its outcome and the next step."""
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        delivery.status, delivery.next_attempt_at, delivery.locked_until = Delivery.Status.DEAD, None, None
        delivery.last_error = "Not sent: the endpoint is disabled."
        delivery.save(update_fields=["status", "next_attempt_at", "locked_until", "last_error", "updated_at"])
        log_outcome(delivery, None)
        return None
    started = timezone.now()
    body = request_body(delivery.event)
    response = http.post(
        endpoint.url,
        content=body.encode(),
        headers=request_headers(delivery, body, started),
        max_body=RESPONSE_BODY_LIMIT,
    )
    attempt = Attempt(
        delivery=delivery,
        started_at=started,
        status_code=response.status_code,
        latency_ms=response.latency_ms,
        response_body=response.body,
        error=response.error or _describe(response.status_code),
    )
    _record(delivery, attempt, response)
    log_outcome(delivery, attempt)
    return attempt


def log_outcome(delivery: Delivery, attempt: Attempt | None) -> None:
    """One line per attempt with the ids a grep needs: message, delivery, endpoint, Travtus request."""
    fields = {
        "webhook_id": delivery.event_id,
        "delivery_id": delivery.pk,
        "endpoint_id": delivery.endpoint_id,
        "event_type": delivery.event.type,
        "outcome": delivery.status,
        "attempt": delivery.attempts,
        "status_code": attempt.status_code if attempt else None,
        "latency_ms": attempt.latency_ms if attempt else None,
    }
    if delivery.event.request_id:
        fields["travtus_request_id"] = delivery.event.request_id
    level = logging.WARNING if delivery.status == Delivery.Status.DEAD else logging.INFO
    logger.log(
        level,
        "Webhook %s (delivery %s) to endpoint %s: %s, status %s, %s ms.",
        delivery.event_id,
        delivery.pk,
        delivery.endpoint_id,
        delivery.status,
        fields["status_code"],
        fields["latency_ms"],
        extra=fields,
    )


def _describe(status_code: int | None) -> str:
    if status_code is None or 200 <= status_code < 300:
        return ""
    if 300 <= status_code < 400:
        return f"Redirect ({status_code}) not followed: point the endpoint at the final URL."
    return f"The endpoint answered {status_code}."


@transaction.atomic
def _record(delivery: Delivery, attempt: Attempt, response: http.Response) -> None:
    attempt.save()
    now = timezone.now()
    delivery.attempts += 1
    delivery.last_status_code = attempt.status_code
    delivery.last_error = attempt.error
    delivery.locked_until = None
    if attempt.succeeded:
        delivery.status, delivery.next_attempt_at = Delivery.Status.SUCCEEDED, None
        if delivery.endpoint.failing_since is not None:  # read with the claim: most successes need no write
            Endpoint.objects.filter(pk=delivery.endpoint_id, failing_since__isnull=False).update(failing_since=None)
    else:
        disabled = _note_failure(delivery.endpoint, attempt, now)
        delay = None if disabled else _next_delay(delivery.attempts, response)
        delivery.status = Delivery.Status.DEAD if delay is None else Delivery.Status.FAILED
        delivery.next_attempt_at = None if delay is None else now + delay
    delivery.save(
        update_fields=[
            "status",
            "attempts",
            "next_attempt_at",
            "locked_until",
            "last_status_code",
            "last_error",
            "updated_at",
        ]
    )


def _next_delay(failures: int, response: http.Response | None) -> timedelta | None:
    if response is not None and response.blocked:
        return None  # the address will not become public by waiting
    throttled = response is not None and (response.timed_out or response.status_code in THROTTLED_CODES)
    retry_after = _retry_after(response.headers) if response is not None and response.headers else None
    return retry_delay(failures, throttled=throttled, retry_after=retry_after)


def _retry_after(headers) -> timedelta | None:
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        return parsedate_to_datetime(value) - timezone.now()
    except (TypeError, ValueError):
        return None


def _note_failure(endpoint: Endpoint, attempt: Attempt, now: datetime) -> bool:
    """Start or extend the endpoint's run of failures; True if that disabled it."""
    Endpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=now)
    endpoint.failing_since = endpoint.failing_since or now
    if attempt.status_code == 410:
        endpoint_disable(endpoint=endpoint, reason="The endpoint answered 410 Gone.")
        return True
    if now - endpoint.failing_since >= DISABLE_AFTER:
        endpoint_disable(endpoint=endpoint, reason="Every delivery failed for 5 days.")
        return True
    return False
