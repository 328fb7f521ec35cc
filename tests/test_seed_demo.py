"""`seed_demo`: a believable demo organization, and the same data however often it runs."""

from io import StringIO

import pytest
from django.core.management import call_command

from taskhub.models import Organization
from taskhub.phones import normalize_phone
from tasks.models import Group, Person, Task, TaskAddress, TaskStatus, Unit

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def snapshot() -> dict:
    models = [Organization, Group, Unit, Person, Task, TaskAddress, TaskStatus, Task.assignees.through]
    return {
        "counts": {model.__name__: model.objects.count() for model in models},
        "tasks": list(
            Task.objects.order_by("external_id").values_list("external_id", "identifier", "status", "version")
        ),
        "journal": list(TaskStatus.objects.order_by("id").values_list("id", "task__external_id", "type", "time")),
        "people": list(Person.objects.order_by("external_ref").values_list("external_ref", "identifier", "phone")),
        "crew": sorted(Task.assignees.through.objects.values_list("task__external_id", "person__external_ref")),
    }


def test_seed_demo_twice_gives_the_same_data():
    first_output = seed()
    first = snapshot()
    second_output = seed()
    assert snapshot() == first
    assert "200 tasks (200 new)" in first_output
    assert "200 tasks (0 new)" in second_output


def test_seed_demo_makes_a_believable_week_with_a_consistent_journal():
    seed()
    org = Organization.objects.get(slug="demo")
    assert org.name == "Demo Field Services"
    tasks = Task.objects.filter(organization=org)
    assert tasks.count() == 200
    assert Group.objects.filter(organization=org).count() == 3
    assert Unit.objects.filter(organization=org).count() == 12
    assert Person.objects.filter(organization=org, is_crew=True).exclude(color="").count() == 8
    assert Person.objects.filter(organization=org, is_customer=True).count() == 40
    assert tasks.filter(unscheduled=True).exists()
    assert tasks.filter(enable_time_window_display=True).exists()
    assert len(set(tasks.values_list("status", flat=True))) >= 5
    assert not tasks.filter(assignees__isnull=True).exists()
    assert not tasks.filter(addresses__isnull=True).exists()
    # Statuses were reached through the journal, and every phone is valid E.164.
    for task in Task.objects.prefetch_related("statuses"):
        journal = [entry.type for entry in task.statuses.all()]
        assert (journal[-1] if journal else "NOTSTARTED") == task.status
    for phone in Person.objects.values_list("phone", flat=True):
        assert normalize_phone(phone) == phone
