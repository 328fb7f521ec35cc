"""The messages one change plans go to the worker as one task, after commit, and not at all on rollback."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import transaction

from notifications.models import Notification
from tests.celery_broker import own_broker, queued

pytestmark = [pytest.mark.requires_redis, pytest.mark.django_db]

BROKER_URL = "redis://127.0.0.1:6379/14"
UPSERT = "/api/express/tasks/upsert/{}"
PAYLOAD = {
    "title": "Install dishwasher",
    "start_datetime": "2026-12-01T09:00:00",
    "customer_first_name": "Ada",
    "customer_email": "ada@example.com",
    "customer_mobile_number": "+1 212 555 0142",
}


@pytest.fixture(autouse=True)
def _daytime():
    """Noon in the organization's zone: outside its quiet hours, so the SMS is queued, not held."""
    with time_machine.travel(datetime(2026, 11, 30, 12, 0, tzinfo=ZoneInfo("America/New_York")), tick=True):
        yield


@pytest.fixture
def broker():
    """This suite's own Redis database, emptied before and after: the queue is read, no worker runs."""
    with own_broker(BROKER_URL) as client:
        yield client


def test_a_change_that_plans_several_messages_enqueues_one_task_for_all(
    api, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert api.put(UPSERT.format("ord-1"), PAYLOAD, format="json").status_code == 201
    planned = sorted(Notification.objects.filter(status=Notification.Status.QUEUED).values_list("pk", flat=True))
    assert len(planned) >= 2  # the customer's email and SMS
    ((task, (ids,)),) = queued(broker, "notifications")
    assert task == "notifications.tasks.send_notifications"
    assert sorted(ids) == planned


def test_a_rolled_back_change_enqueues_no_message(api, org, broker, django_capture_on_commit_callbacks):
    from notifications.services import plan
    from tasks.models import Person, Task

    customer = Person.objects.create(organization=org, first_name="Ada", email="ada@example.com", is_customer=True)
    task = Task.objects.create(organization=org, title="Job", customer=customer)
    planned = []

    def change_that_fails() -> None:
        with transaction.atomic():
            planned.extend(plan(task=task, event="created"))
            raise RuntimeError

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        change_that_fails()
    assert planned  # it did plan a message, then rolled it back
    assert queued(broker, "notifications") == []
