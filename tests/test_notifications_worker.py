"""End to end with a real Celery worker, Redis, a real SMTP server and a fake Twilio over HTTP."""

import pytest
from celery.contrib.testing.worker import start_worker
from django.utils import timezone

from notifications.models import Notification, Suppression
from notifications.tasks import send_notification, sweep_notifications
from taskhub.celery import app
from tasks.models import Person, Task, TaskStatus
from tests.celery_broker import own_broker

from .test_notifications_fixtures import CUSTOMER_MOBILE, FROM_NUMBER, signed_post, wait_until

pytest_plugins = ["tests.test_notifications_fixtures"]
pytestmark = [pytest.mark.requires_redis, pytest.mark.django_db(transaction=True)]

BROKER_URL = "redis://127.0.0.1:6379/8"
UPSERT = "/api/express/tasks/upsert/{}"
assert send_notification.name == "notifications.tasks.send_notification"  # registered with the app


@pytest.fixture
def broker():
    """The notification suite's own Redis database, emptied before and after."""
    with own_broker(BROKER_URL) as client:
        yield client


@pytest.fixture
def worker(broker, smtp_server, fake_twilio, no_quiet_hours):
    # Every queue named: a worker started earlier in this process for fewer queues narrows the default.
    with start_worker(
        app,
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=10,
        queues=["default", "webhooks", "notifications"],
    ) as running:
        yield running


def statuses(**filters) -> list[str]:
    return sorted(Notification.objects.filter(**filters).values_list("status", flat=True))


def new_task_payload(**extra) -> dict:
    return {
        "title": "Install dishwasher",
        "start_datetime": "2026-12-01T09:00:00",
        "end_datetime": "2026-12-01T11:00:00",
        "customer_first_name": "Ada",
        "customer_last_name": "Lovelace",
        "customer_email": "ada@example.com",
        "customer_mobile_number": "+1 212 555 0142",
        **extra,
    }


def test_creating_a_task_through_the_api_emails_and_texts_the_customer_the_tracker_link(
    api, worker, smtp_server, fake_twilio
):
    response = api.put(UPSERT.format("ord-1"), new_task_payload(), format="json")
    assert response.status_code == 201, response.json()
    tracker_url = response.json()["tracker_url"]
    assert tracker_url.startswith("https://taskhub.test/t/")

    (mail,) = smtp_server.wait_for(1)
    (sms,) = fake_twilio.wait_for(1)
    assert mail.recipients == ["ada@example.com"]
    assert tracker_url in mail.content
    assert "Subject: Acme Field Services: Install dishwasher is booked" in mail.content
    assert sms.to == CUSTOMER_MOBILE
    assert sms.sender == FROM_NUMBER
    assert tracker_url in sms.body
    assert "Tue 1 Dec, 09:00–11:00" in sms.body  # in the organization's zone
    assert sms.status_callback == "https://taskhub.test/hooks/twilio/status"
    assert sms.authorization.startswith("Basic ")
    wait_until(lambda: statuses(task__external_id="ord-1") == ["sent", "sent"])
    assert Notification.objects.get(channel="sms").provider_message_id.startswith("SM")


def test_a_repeated_upsert_sends_nothing_more(api, worker, smtp_server, fake_twilio):
    api.put(UPSERT.format("ord-1"), new_task_payload(), format="json")
    fake_twilio.wait_for(1)
    api.put(UPSERT.format("ord-1"), new_task_payload(), format="json")
    sweep_notifications.delay()
    wait_until(lambda: statuses() == ["sent", "sent"])
    assert len(fake_twilio.messages) == 1
    assert len(smtp_server.messages) == 1


def test_assigning_crew_texts_the_crew_member(api, org, crew_member, worker, fake_twilio):
    api.put(UPSERT.format("ord-1"), new_task_payload(notifications={"sms": False, "email": False}), format="json")
    response = api.put(UPSERT.format("ord-1"), {"entity_ids": [crew_member.pk]}, format="json")
    assert response.status_code == 200

    (sms,) = fake_twilio.wait_for(1)
    assert sms.to == crew_member.mobile_number
    assert sms.body.startswith("Acme Field Services: you are on Install dishwasher for Ada Lovelace")
    wait_until(lambda: statuses(recipient=crew_member) == ["sent"])


def test_a_transient_twilio_failure_is_retried_and_the_message_sent_once(api, worker, fake_twilio, smtp_server):
    fake_twilio.fail_next(500, message="Internal error")
    api.put(UPSERT.format("ord-1"), new_task_payload(notifications={"sms": True, "email": False}), format="json")
    wait_until(lambda: Notification.objects.filter(channel="sms", attempts=1).exists())
    row = Notification.objects.get(channel="sms")
    assert row.status == Notification.Status.QUEUED
    assert "Twilio 500" in row.error
    assert 25 <= (row.next_attempt_at - timezone.now()).total_seconds() <= 31  # the first backoff step

    Notification.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())  # as if 30 s had passed
    sweep_notifications.delay()
    sweep_notifications.delay()  # a second sweep, and a stray enqueue, find nothing left to send
    send_notification.delay(row.pk)

    fake_twilio.wait_for(1)
    wait_until(lambda: statuses(channel="sms") == ["sent"])
    assert fake_twilio.requests == 2
    assert len(fake_twilio.messages) == 1
    row.refresh_from_db()
    assert row.attempts == 2
    assert row.error == ""


def test_stop_suppresses_the_next_status_message_and_start_restores_it(
    api, client, org, worker, fake_twilio, twilio_settings
):
    api.put(UPSERT.format("ord-1"), new_task_payload(notifications={"sms": True, "email": False}), format="json")
    fake_twilio.wait_for(1)

    stop = signed_post(client, "hooks:twilio-sms", {"From": CUSTOMER_MOBILE, "To": FROM_NUMBER, "Body": "Stop"})
    assert stop.status_code == 200
    assert Suppression.objects.filter(organization=org, channel="sms", address=CUSTOMER_MOBILE).exists()

    api.post("/api/express/tasks/ord-1/status/new", {"type": "ENROUTE"}, format="json")
    wait_until(lambda: statuses(event="status:ENROUTE") == ["suppressed"])
    sweep_notifications.delay()

    start = signed_post(client, "hooks:twilio-sms", {"From": CUSTOMER_MOBILE, "To": FROM_NUMBER, "Body": "START"})
    assert start.status_code == 200
    assert not Suppression.objects.exists()
    api.post("/api/express/tasks/ord-1/status/new", {"type": "STARTED"}, format="json")
    api.post("/api/express/tasks/ord-1/status/new", {"type": "ENROUTE"}, format="json")

    _, second = fake_twilio.wait_for(2)
    assert "is on the way" in second.body
    wait_until(lambda: statuses(event="status:ENROUTE") == ["sent", "suppressed"])
    assert len(fake_twilio.messages) == 2


def test_a_reply_that_is_no_keyword_lands_on_the_journal_as_a_customer_message(
    api, client, worker, fake_twilio, twilio_settings
):
    api.put(UPSERT.format("ord-1"), new_task_payload(), format="json")
    fake_twilio.wait_for(1)

    reply = signed_post(client, "hooks:twilio-sms", {"From": CUSTOMER_MOBILE, "To": FROM_NUMBER,
                                                     "Body": "Please ring the side door"})  # fmt: skip

    assert reply.status_code == 200
    task = Task.objects.get(external_id="ord-1")
    entry = task.statuses.get(kind=TaskStatus.Kind.CUSTOMER_MESSAGE)
    assert entry.notes == "Please ring the side door"
    assert entry.source == TaskStatus.Source.SMS
    assert Person.objects.filter(mobile_number=CUSTOMER_MOBILE).count() == 1
