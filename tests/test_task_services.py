"""Customer messages and ratings: journal entries and events, with their rules."""

import pytest

from taskhub.errors import Conflict, ValidationFailed
from tasks.models import StatusType, Task, TaskStatus
from tasks.services import task_customer_message, task_rate, task_report_status
from webhooks.models import Endpoint, Event

pytestmark = pytest.mark.django_db


@pytest.fixture
def task(org) -> Task:
    Endpoint.objects.create(organization=org, url="https://hooks.example.com/in")
    return Task.objects.create(organization=org, title="Gutter clean")


def test_a_customer_message_is_a_journal_entry_that_leaves_the_status_alone(task):
    entry = task_customer_message(task=task, text="  Gate code is 4321  ", source=TaskStatus.Source.SMS)
    task.refresh_from_db()
    assert (entry.kind, entry.notes, entry.source) == ("customer_message", "Gate code is 4321", "sms")
    assert (task.status, task.version) == (StatusType.NOTSTARTED, 2)
    event = Event.objects.get(type="task.customer_message")
    assert event.payload["data"]["message"]["text"] == "Gate code is 4321"


@pytest.mark.parametrize("text", ["", "   ", "x" * 2001])
def test_empty_or_overlong_messages_are_refused(task, text):
    with pytest.raises(ValidationFailed):
        task_customer_message(task=task, text=text)
    assert not TaskStatus.objects.filter(kind="customer_message").exists()


def test_a_completed_task_can_be_rated_once(task):
    with pytest.raises(Conflict, match="completed"):
        task_rate(task=task, score=5)
    task_report_status(task=task, type=StatusType.COMPLETE)
    rating = task_rate(task=task, score=4, text="Quick and tidy")
    assert (rating.score, rating.text) == (4, "Quick and tidy")
    assert Event.objects.get(type="task.rated").payload["data"]["rating"]["score"] == 4
    with pytest.raises(Conflict, match="already"):
        task_rate(task=task, score=1)


@pytest.mark.parametrize("score", [0, 6])
def test_ratings_are_from_one_to_five(task, score):
    task_report_status(task=task, type=StatusType.COMPLETE)
    with pytest.raises(ValidationFailed):
        task_rate(task=task, score=score)
