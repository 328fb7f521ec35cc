"""Notifications: template sets and their rules, one row per message sent, opt-outs, per-org settings."""

from datetime import datetime, time

from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from taskhub.configcache import ConfigQuerySet
from taskhub.models import Organization
from tasks.models import StatusType


class Channel(models.TextChoices):
    SMS = "sms", _("SMS")
    EMAIL = "email", _("Email")


class Audience(models.TextChoices):
    CUSTOMER = "customer", _("Customer")
    CREW = "crew", _("Assigned crew")
    CREATOR = "creator", _("Creator")
    CREW_OR_CREATOR = "crew_or_creator", _("Assigned crew, else the creator")


def event_choices() -> list[tuple[str, str]]:
    """created, assigned, status:<TYPE> for every status type, rescheduled, reminder, digest."""
    statuses = [(f"status:{value}", f"Status: {label}") for value, label in StatusType.choices]
    return [
        ("created", "Task created"),
        ("assigned", "Crew assigned"),
        *statuses,
        ("rescheduled", "Rescheduled"),
        ("reminder", "Reminder"),
        ("digest", "Day-before digest"),
    ]


EVENTS = frozenset(value for value, _label in event_choices())


class TemplateRuleQuerySet(ConfigQuerySet):
    organization_field = "template_set__organization_id"


class TemplateSet(models.Model):
    """A named set of rules (Arrivy's template); `Task.template` picks one by key."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="template_sets")
    key = models.CharField(
        max_length=100, blank=True, help_text="The value of a task's `template` that picks this set."
    )
    name = models.CharField(max_length=200)
    is_default = models.BooleanField(default=False, help_text="Used for tasks with no template or an unknown one.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ConfigQuerySet.as_manager()

    class Meta:
        ordering = ["organization", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "key"], name="template_set_key_unique"),
            models.UniqueConstraint(
                fields=["organization"], condition=Q(is_default=True), name="template_set_one_default"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class TemplateRule(models.Model):
    """Who hears about one event, by which channel, and what the message says."""

    template_set = models.ForeignKey(TemplateSet, on_delete=models.CASCADE, related_name="rules")
    event = models.CharField(max_length=40, choices=event_choices())
    audience = models.CharField(max_length=20, choices=Audience.choices)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    subject = models.CharField(max_length=255, blank=True, help_text="Email only; Django template syntax.")
    body = models.TextField(help_text="Django template syntax; see the context in docs/notifications.md.")
    enabled = models.BooleanField(default=True)
    urgent = models.BooleanField(default=False, help_text="Sent during quiet hours too (e.g. crew on the way).")

    objects = TemplateRuleQuerySet.as_manager()

    class Meta:
        ordering = ["template_set_id", "event", "audience", "channel"]
        constraints = [
            models.UniqueConstraint(
                fields=["template_set", "event", "audience", "channel"], name="template_rule_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_event_display()} → {self.get_audience_display()} by {self.get_channel_display()}"


class NotificationQuerySet(models.QuerySet):
    def due(self, now: datetime, lease_ended_by: datetime | None = None) -> "NotificationQuerySet":
        """Waiting to be sent, due, and not leased by a worker right now.

        `lease_ended_by` is `now` unless given: a compiled query binds each of its values once.
        """
        return self.filter(status__in=Notification.PENDING, next_attempt_at__lte=now).filter(
            Q(locked_until__isnull=True) | Q(locked_until__lt=now if lease_ended_by is None else lease_ended_by)
        )

    def sent_since(self, organization_id: int, channel: str, since: datetime) -> "NotificationQuerySet":
        return self.filter(
            organization_id=organization_id,
            channel=channel,
            status__in=[Notification.Status.SENT, Notification.Status.DELIVERED],
            sent_at__gte=since,
        )


class Notification(models.Model):
    """One message to one address: written when planned, then sent by a worker."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        HELD = "held", _("Held (quiet hours)")
        SENT = "sent", _("Sent")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")
        SUPPRESSED = "suppressed", _("Suppressed (opted out)")

    PENDING = (Status.QUEUED, Status.HELD)

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="notifications")
    task = models.ForeignKey(
        "tasks.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    event = models.CharField(max_length=40)
    rule = models.ForeignKey(TemplateRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    recipient = models.ForeignKey(
        "tasks.Person", null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    channel = models.CharField(max_length=8, choices=Channel.choices)
    to = models.CharField(max_length=254, help_text="E.164 number or email address.")
    subject = models.CharField(max_length=255, blank=True)
    body = models.TextField()
    urgent = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    provider_message_id = models.CharField(max_length=100, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    # A worker's lease while it sends; expires so a lost worker's message is retried.
    locked_until = models.DateTimeField(null=True, blank=True, editable=False)
    idempotency_key = models.CharField(max_length=255, unique=True, editable=False)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="notification_due"),
            models.Index(fields=["organization", "-created_at"], name="notification_org_created"),
            models.Index(fields=["organization", "channel", "sent_at"], name="notification_org_sent"),
            models.Index(fields=["channel", "to", "-created_at"], name="notification_channel_to"),
            models.Index(fields=["provider_message_id"], name="notification_provider_id"),
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.to} by {self.channel} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status not in self.PENDING


class Suppression(models.Model):
    """An address that must not be sent to on a channel for an organization (STOP, bounce, refusal)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="suppressions")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    address = models.CharField(max_length=254)
    reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ConfigQuerySet.as_manager()  # planning keeps an organization's few opt-outs per process

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "channel", "address"], name="suppression_unique")
        ]

    def __str__(self) -> str:
        return f"{self.address} ({self.channel})"


class NotificationSettingsQuerySet(ConfigQuerySet):
    operational_fields = frozenset({"last_digest_date"})  # the digest's own bookkeeping


class NotificationSettings(models.Model):
    """An organization's quiet hours, daily caps and digest hour."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="notification_settings")
    quiet_hours_start = models.TimeField(default=time(21, 0), help_text="In the organization's time zone.")
    quiet_hours_end = models.TimeField(default=time(8, 0), help_text="Held SMS go out at this time.")
    daily_sms_cap = models.PositiveIntegerField(default=1000, help_text="SMS per day; 0 means no limit.")
    daily_email_cap = models.PositiveIntegerField(default=5000, help_text="Emails per day; 0 means no limit.")
    digest_hour = models.PositiveSmallIntegerField(
        default=17, validators=[MaxValueValidator(23)], help_text="Hour of the day-before digest, 0–23."
    )
    last_digest_date = models.DateField(
        null=True, blank=True, editable=False, help_text="The day the last digest covered."
    )

    objects = NotificationSettingsQuerySet.as_manager()  # planning keeps the quiet hours per process

    class Meta:
        verbose_name = "notification settings"
        verbose_name_plural = "notification settings"

    def __str__(self) -> str:
        return f"Notification settings of {self.organization}"

    def cap_for(self, channel: str) -> int:
        return self.daily_sms_cap if channel == Channel.SMS else self.daily_email_cap
