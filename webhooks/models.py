"""Outgoing webhooks: endpoints, the event outbox, one delivery per endpoint, and every attempt."""

import base64
import os
import secrets
import threading
import time
from datetime import datetime, timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone

from taskhub.configcache import ConfigQuerySet
from taskhub.models import Organization

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
PREVIOUS_SECRET_TTL = timedelta(hours=24)
RESPONSE_BODY_LIMIT = 20 * 1024
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

# The event catalogue (docs/webhooks.md); an endpoint's `event_types` filter picks from it.
EVENT_TYPES = (
    "task.created",
    "task.updated",
    "task.status_changed",
    "task.assigned",
    "task.unassigned",
    "task.rescheduled",
    "task.deleted",
    "task.rated",
    "task.customer_message",
    "task.late",
    "request.completed",
    "request.failed",
    "notification.failed",
    "endpoint.disabled",
    "webhook.test",
)


def new_secret() -> str:
    """`whsec_` + base64 of 32 random bytes, as the Standard Webhooks libraries expect."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


_last_message_id = 0
_message_id_lock = threading.Lock()


def new_message_id() -> str:
    """`msg_` + a ULID: 48 bits of milliseconds then 80 random bits, so ids sort by time.

    Monotonic within a process, as the ULID spec allows: an id made in the same millisecond as
    the last one is that one plus one, so the events of one change keep their order.
    """
    global _last_message_id
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10))
    with _message_id_lock:
        value = _last_message_id = max(value, _last_message_id + 1)
    chars = [_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5)]
    return "msg_" + "".join(chars)


class EndpointQuerySet(ConfigQuerySet):
    operational_fields = frozenset({"failing_since", "updated_at"})  # the failure clock, kept by deliveries


class Endpoint(models.Model):
    """A URL of an organization's that receives signed events."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=1000)
    description = models.CharField(max_length=255, blank=True)
    event_types = models.JSONField(default=list, blank=True, help_text="Event types to send; empty means all.")
    enabled = models.BooleanField(default=True)
    headers = models.JSONField(default=dict, blank=True, help_text="Extra HTTP headers sent with every delivery.")
    rate_limit = models.PositiveIntegerField(null=True, blank=True, help_text="At most this many messages a second.")
    secret = models.CharField(max_length=80, default=new_secret, editable=False)
    previous_secret = models.CharField(max_length=80, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=255, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True, help_text="Start of the current run of failures.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EndpointQuerySet.as_manager()

    class Meta:
        ordering = ["organization", "id"]
        indexes = [models.Index(fields=["organization", "enabled"], name="webhook_endpoint_org_enabled")]

    def __str__(self) -> str:
        return self.description or self.url

    def subscribes_to(self, type: str) -> bool:
        return not self.event_types or type in self.event_types

    def signing_secrets(self, now: datetime | None = None) -> list[str]:
        """The current secret, and the rotated-out one while it is still live."""
        now = now or timezone.now()
        live = [self.secret]
        if self.previous_secret and self.previous_secret_expires_at and self.previous_secret_expires_at > now:
            live.append(self.previous_secret)
        return live


class EventQuerySet(models.QuerySet):
    def for_org(self, organization: Organization) -> "EventQuerySet":
        return self.filter(organization=organization)


class Event(models.Model):
    """One message: its payload is frozen when emitted and its id is the `webhook-id` of every attempt."""

    id = models.CharField(primary_key=True, max_length=40, default=new_message_id, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="webhook_events")
    type = models.CharField(max_length=64)
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    task = models.ForeignKey(
        "tasks.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="webhook_events"
    )
    request_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = EventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["organization", "-id"], name="webhook_event_org_id"),
            models.Index(fields=["organization", "type", "-id"], name="webhook_event_org_type"),
            models.Index(
                fields=["organization", "request_id"], condition=~Q(request_id=""), name="webhook_event_org_request"
            ),
        ]
        verbose_name = "webhook message"

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class DeliveryQuerySet(models.QuerySet):
    def due(self, now: datetime, lease_ended_by: datetime | None = None) -> "DeliveryQuerySet":
        """Waiting for an attempt that is due, and not leased by a worker right now.

        `lease_ended_by` is `now` unless given: a compiled query binds each of its values once.
        """
        return self.filter(status__in=Delivery.RETRYING, next_attempt_at__lte=now).filter(
            Q(locked_until__isnull=True) | Q(locked_until__lt=now if lease_ended_by is None else lease_ended_by)
        )

    def in_flight(self, now: datetime) -> "DeliveryQuerySet":
        return self.filter(status__in=Delivery.RETRYING, locked_until__gte=now)


class Delivery(models.Model):
    """One event on its way to one endpoint; retried on the schedule until it succeeds or dies."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed, retrying"
        DEAD = "dead", "Dead"

    RETRYING = (Status.PENDING, Status.FAILED)

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="Attempts since it was (re)sent.")
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=timezone.now, db_index=True)
    # A worker's lease on the row while it sends; expires so a lost worker's delivery is retried.
    locked_until = models.DateTimeField(null=True, blank=True, editable=False)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due"),
            models.Index(fields=["endpoint", "status", "created_at"], name="webhook_delivery_endpoint"),
            # An endpoint's queue, oldest first: what its sender claims next and what it holds in flight.
            models.Index(
                fields=["endpoint", "next_attempt_at", "id"],
                condition=Q(status__in=["pending", "failed"]),
                name="webhook_delivery_endpoint_due",
            ),
        ]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.event_id} → {self.endpoint_id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status not in self.RETRYING


class Attempt(models.Model):
    """One HTTP request of a delivery, as the receiver answered it."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    started_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    response_body = models.TextField(blank=True, help_text="The first 20 KB of the response.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery", "started_at", "id"]

    def __str__(self) -> str:
        return f"{self.status_code or self.error[:40]} at {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
