"""Inbound SMS and delivery reports from the provider: opt-out keywords, replies, delivery status.

Every organization sends from the same number, so an inbound message is matched to organizations
by its sender: those that sent an SMS to that number in the last 30 days, most recent first, or,
when none did, those with a person whose mobile or phone is that number.
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from taskhub.errors import Conflict, ValidationFailed
from taskhub.models import Organization
from tasks.models import Person, StatusType, Task, TaskStatus
from tasks.services import task_customer_message

from .models import Channel, Notification
from .sending import notification_failed
from .services import suppression_add, suppression_lift
from .transports import TWILIO_OPTED_OUT

logger = logging.getLogger(__name__)

STOP_WORDS = frozenset({"STOP", "UNSUBSCRIBE", "END", "QUIT", "STOPALL", "REVOKE", "OPTOUT", "CANCEL"})
START_WORDS = frozenset({"START", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})
RECENT = timedelta(days=30)
CLOSED = (StatusType.COMPLETE, StatusType.CANCELLED)


def keyword_of(body: str) -> str:
    """The message as a keyword: one word, any case, trailing punctuation ignored."""
    return (body or "").strip().strip(".!").upper()


def organizations_for(number: str) -> list[Organization]:
    """The organizations an inbound number belongs to, most recently in touch first (rule above)."""
    recent = (
        Notification.objects.filter(channel=Channel.SMS, to=number, created_at__gte=timezone.now() - RECENT)
        .values("organization")
        .annotate(last=Max("created_at"))
        .order_by("-last")
    )
    ids = [row["organization"] for row in recent]
    if not ids:
        people = Person.objects.filter(Q(mobile_number=number) | Q(phone=number)).order_by("-created_at")
        ids = list(dict.fromkeys(people.values_list("organization_id", flat=True)))
    found = Organization.objects.in_bulk(ids)
    return [found[pk] for pk in ids if pk in found]


def handle_inbound(*, sender: str, body: str) -> str:
    """Act on one inbound SMS; returns the text to answer with, or "" for no answer."""
    organizations = organizations_for(sender)
    keyword = keyword_of(body)
    if keyword in STOP_WORDS:
        for organization in organizations:
            suppression_add(organization=organization, channel=Channel.SMS, address=sender, reason=f"Replied {keyword}")
        return ""
    if keyword in START_WORDS:
        for organization in organizations:
            suppression_lift(organization=organization, channel=Channel.SMS, address=sender)
        return ""
    if keyword in HELP_WORDS:
        name = organizations[0].name if organizations else "TaskHub"
        return f"{name}: messages about your appointments. Reply STOP to opt out, START to opt back in."
    reply_to_task(organizations, sender, body)
    return ""


def open_task_of(organization: Organization, number: str) -> Task | None:
    """The customer's most recent open task in the organization."""
    return (
        Task.objects.alive()
        .for_org(organization)
        .filter(Q(customer__mobile_number=number) | Q(customer__phone=number))
        .exclude(status__in=CLOSED)
        .order_by("-updated_at", "-pk")
        .first()
    )


def reply_to_task(organizations: list[Organization], sender: str, body: str) -> TaskStatus | None:
    """Any other text becomes a customer message on the sender's most recent open task."""
    for organization in organizations:
        task = open_task_of(organization, sender)
        if task is None:
            continue
        try:
            return task_customer_message(task=task, text=body[:2000], source=TaskStatus.Source.SMS)
        except (ValidationFailed, Conflict) as exc:
            logger.info("SMS reply from %s not recorded: %s", sender, exc)
            return None
    logger.info("SMS reply from %s matches no open task; dropped.", sender)
    return None


PROVIDER_STATUSES = {
    "delivered": Notification.Status.DELIVERED,
    "undelivered": Notification.Status.FAILED,
    "failed": Notification.Status.FAILED,
}


@transaction.atomic
def handle_status(*, message_id: str, status: str, error_code: str = "") -> Notification | None:
    """A delivery report: delivered, or undelivered/failed (which raises notification.failed once)."""
    new = PROVIDER_STATUSES.get((status or "").lower())
    if not message_id or new is None:
        return None
    notification = (
        Notification.objects.select_for_update(of=("self",))
        .select_related("organization")
        .filter(provider_message_id=message_id)
        .first()
    )
    if notification is None or notification.status in (new, Notification.Status.SUPPRESSED):
        return notification
    if notification.status == Notification.Status.DELIVERED and new == Notification.Status.FAILED:
        return notification  # a late report never takes back a delivery
    notification.status = new
    if new == Notification.Status.FAILED:
        notification.error = f"The provider reports the message {status.lower()}" + (
            f" (error {error_code})." if error_code else "."
        )
    notification.save(update_fields=["status", "error", "updated_at"])
    if new == Notification.Status.FAILED:
        if error_code == str(TWILIO_OPTED_OUT):
            suppression_add(
                organization=notification.organization, channel=notification.channel, address=notification.to,
                reason="The provider reports the recipient opted out.",
            )  # fmt: skip
        notification_failed(notification)
    return notification
