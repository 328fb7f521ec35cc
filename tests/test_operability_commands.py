"""Operator commands: outbox backlog, redrive of failures in a time range, pruning past retention."""

import re
from datetime import datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from notifications.models import Notification
from taskhub.models import IdempotencyRecord
from taskhub.tasks import prune_old_records
from webhooks.models import Attempt, Delivery, Endpoint, Event

pytestmark = pytest.mark.django_db

S = Delivery.Status
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.UTC)


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def crm(org) -> Endpoint:
    return Endpoint.objects.create(organization=org, url="https://crm.example.com/hooks", description="CRM")


def delivery(endpoint: Endpoint, status: str, created_at: datetime, **fields) -> Delivery:
    event = Event.objects.create(organization=endpoint.organization, type="task.created", payload={})
    row = Delivery.objects.create(event=event, endpoint=endpoint, status=status, **fields)
    Event.objects.filter(pk=event.pk).update(created_at=created_at)
    Delivery.objects.filter(pk=row.pk).update(created_at=created_at)
    return row


def notification(org, status: str, created_at: datetime, channel: str = "sms") -> Notification:
    return Notification.objects.create(
        organization=org,
        event="created",
        channel=channel,
        to="+12125550142",
        body="Your crew is booked.",
        status=status,
        idempotency_key=f"test:{status}:{created_at.isoformat()}:{channel}",
        created_at=created_at,
        next_attempt_at=None if status == Notification.Status.FAILED else created_at,
    )


# --- redrive --------------------------------------------------------------------------------


def test_redrive_requeues_exactly_the_failed_and_dead_deliveries_in_the_range(org, other_org, crm):
    failed = delivery(crm, S.FAILED, NOON, attempts=3, next_attempt_at=NOON + timedelta(days=1))
    dead = delivery(crm, S.DEAD, NOON + timedelta(hours=1), attempts=9, next_attempt_at=None)
    untouched = {
        "succeeded in range": delivery(crm, S.SUCCEEDED, NOON, next_attempt_at=None),
        "pending in range": delivery(crm, S.PENDING, NOON, next_attempt_at=NOON),
        "dead before": delivery(crm, S.DEAD, NOON - timedelta(seconds=1), next_attempt_at=None),
        "dead at until": delivery(crm, S.DEAD, NOON + timedelta(hours=2), next_attempt_at=None),
    }
    before = {name: (d.status, d.next_attempt_at) for name, d in untouched.items()}

    out = run("redrive", "--since", "2026-03-10T12:00:00Z", "--until", "2026-03-10T14:00:00Z", "--kind", "webhooks")

    assert "2 re-queued" in out
    for row in (failed, dead):
        row.refresh_from_db()
        assert (row.status, row.attempts) == (S.PENDING, 0)
        assert timezone.now() - row.next_attempt_at < timedelta(seconds=10)
    for name, row in untouched.items():
        row.refresh_from_db()
        assert (row.status, row.next_attempt_at) == before[name], name


def test_redrive_narrows_to_an_organization_and_an_endpoint(org, other_org, crm):
    other_endpoint = Endpoint.objects.create(organization=org, url="https://erp.example.com/hooks")
    globex = Endpoint.objects.create(organization=other_org, url="https://globex.example.com/hooks")
    mine = delivery(crm, S.DEAD, NOON, next_attempt_at=None)
    same_org_other_endpoint = delivery(other_endpoint, S.DEAD, NOON, next_attempt_at=None)
    other_org_row = delivery(globex, S.DEAD, NOON, next_attempt_at=None)

    out = run("redrive", "--since", "2026-03-10", "--until", "2026-03-11", "--org", "acme", "--endpoint", str(crm.pk))

    assert "1 re-queued" in out
    rows = (mine, same_org_other_endpoint, other_org_row)
    assert [Delivery.objects.get(pk=row.pk).status for row in rows] == [S.PENDING, S.DEAD, S.DEAD]


def test_redrive_leaves_deliveries_to_a_disabled_endpoint_and_says_so(crm):
    Endpoint.objects.filter(pk=crm.pk).update(enabled=False)
    row = delivery(crm, S.DEAD, NOON, next_attempt_at=None)

    out = run("redrive", "--since", "2026-03-10", "--until", "2026-03-11", "--kind", "webhooks")

    assert "0 re-queued" in out
    assert "1 left alone" in out
    assert Delivery.objects.get(pk=row.pk).status == S.DEAD


def test_redrive_requeues_failed_notifications_in_the_range(org):
    failed = notification(org, Notification.Status.FAILED, NOON)
    outside = notification(org, Notification.Status.FAILED, NOON - timedelta(days=1))
    sent = notification(org, Notification.Status.SENT, NOON)

    out = run("redrive", "--since", "2026-03-10", "--until", "2026-03-11", "--kind", "notifications")

    assert "Notifications created 2026-03-10T00:00:00+00:00 to 2026-03-11T00:00:00+00:00: 1 re-queued." in out
    failed.refresh_from_db()
    assert failed.status == Notification.Status.QUEUED
    assert timezone.now() - failed.next_attempt_at < timedelta(seconds=10)
    assert Notification.objects.get(pk=outside.pk).status == Notification.Status.FAILED
    assert Notification.objects.get(pk=sent.pk).status == Notification.Status.SENT


def test_redrive_refuses_an_empty_range():
    with pytest.raises(Exception, match="before"):
        run("redrive", "--since", "2026-03-11", "--until", "2026-03-10")


# --- prune ----------------------------------------------------------------------------------


def test_prune_deletes_old_finished_messages_and_keeps_recent_and_pending_ones(org, crm):
    now = timezone.now()
    old, recent = now - timedelta(days=31), now - timedelta(days=29)
    old_sent = delivery(crm, S.SUCCEEDED, old, next_attempt_at=None)
    old_dead = delivery(crm, S.DEAD, old, next_attempt_at=None)
    old_retrying = delivery(crm, S.FAILED, old, next_attempt_at=now + timedelta(hours=1))
    recent_sent = delivery(crm, S.SUCCEEDED, recent, next_attempt_at=None)
    for row, started in ((old_sent, old), (old_retrying, old), (recent_sent, recent)):
        Attempt.objects.create(delivery=row, started_at=started, status_code=500)
    IdempotencyRecord.objects.create(organization=org, key="k-old", route="POST /api/task/", fingerprint="x" * 64,
                                     created_at=now - timedelta(days=2))  # fmt: skip

    out = run("prune")

    assert set(Event.objects.values_list("pk", flat=True)) == {old_retrying.event_id, recent_sent.event_id}
    assert not Delivery.objects.filter(pk__in=[old_sent.pk, old_dead.pk]).exists()
    assert set(Attempt.objects.values_list("delivery_id", flat=True)) == {old_retrying.pk, recent_sent.pk}
    assert not IdempotencyRecord.objects.exists()
    assert "webhooks.Event: 2 deleted" in out


def test_prune_keeps_everything_inside_a_longer_window(crm):
    row = delivery(crm, S.SUCCEEDED, timezone.now() - timedelta(days=31), next_attempt_at=None)

    out = run("prune", "--days", "60")

    assert Delivery.objects.filter(pk=row.pk).exists()
    assert "Nothing older than 60 days" in out


def test_the_daily_prune_task_uses_the_retention_setting(crm, settings):
    settings.RETENTION_DAYS = 7
    delivery(crm, S.SUCCEEDED, timezone.now() - timedelta(days=8), next_attempt_at=None)

    deleted = prune_old_records()

    assert deleted["webhooks.Event"] == 1
    assert not Event.objects.exists()


# --- outbox ---------------------------------------------------------------------------------


def test_outbox_shows_the_backlog_per_organization_and_endpoint(org, crm):
    now = timezone.now()
    delivery(crm, S.PENDING, now, next_attempt_at=now - timedelta(minutes=5))
    delivery(crm, S.FAILED, now, next_attempt_at=now + timedelta(minutes=5))
    delivery(crm, S.DEAD, now, next_attempt_at=None)
    delivery(crm, S.SUCCEEDED, now, next_attempt_at=None)
    notification(org, Notification.Status.QUEUED, now - timedelta(minutes=2), channel="email")
    notification(org, Notification.Status.FAILED, now)

    out = run("outbox")

    webhooks, notifications = out.split("\nNotifications\n")
    header, row = webhooks.splitlines()[1:3]
    assert header.split()[:6] == ["organization", "endpoint", "pending", "failed", "dead", "oldest"]
    assert row.split()[:5] == ["acme", str(crm.pk), "1", "1", "1"]
    assert re.fullmatch(r"30\ds", row.split()[5]), "the pending row has waited five minutes"
    assert "https://crm.example.com/hooks" in row
    rows = [line.split() for line in notifications.splitlines()[1:]]
    assert rows[0][:5] == ["acme", "email", "1", "0", "0"]
    assert rows[1] == ["acme", "sms", "0", "0", "1", "-"]


def test_outbox_says_when_nothing_waits(db):
    assert "nothing waiting" in run("outbox")
