"""task.late: an ETA reported on the way that falls after the promised window is announced."""

from datetime import UTC, datetime, timedelta

import pytest

from tasks.models import Task
from tasks.services import task_report_status
from webhooks.models import Endpoint, Event

pytestmark = pytest.mark.django_db
START = datetime(2030, 3, 5, 14, 0, tzinfo=UTC)


@pytest.fixture
def task(org) -> Task:
    Endpoint.objects.create(organization=org, url="https://hooks.example.com/in")
    return Task.objects.create(organization=org, title="Boiler", start_datetime=START,
                               end_datetime=START + timedelta(hours=2), enable_time_window_display=True)  # fmt: skip


def late_events() -> list[dict]:
    return [e.payload["data"] for e in Event.objects.filter(type="task.late")]


def test_an_eta_after_the_window_is_late(task):
    eta = START + timedelta(hours=2, minutes=30)
    task_report_status(task=task, type="ENROUTE", time=START, extra_fields={"eta": eta.isoformat()})
    (late,) = late_events()
    assert late["expected_arrival"] == eta.isoformat()
    assert late["window_end"] == (START + timedelta(hours=2)).isoformat()
    assert late["external_id"] == task.external_id


def test_an_eta_inside_the_window_or_no_eta_is_not(task):
    task_report_status(task=task, type="ENROUTE", time=START, extra_fields={"eta_minutes": 30})
    task_report_status(task=task, type="STARTED")
    assert late_events() == []


def test_an_unscheduled_task_is_never_late(org, task):
    Task.objects.filter(pk=task.pk).update(unscheduled=True)
    task.refresh_from_db()
    task_report_status(task=task, type="ENROUTE", time=START, extra_fields={"eta_minutes": 600})
    assert late_events() == []
