"""Tasks saved in the admin get the journal, versions and webhooks the API would give them."""

import pytest
from django.urls import reverse

from tasks.models import Task
from webhooks.models import Endpoint, Event

pytestmark = pytest.mark.django_db

EMPTY_INLINES = {
    f"{prefix}-{name}": 0
    for prefix in ("addresses", "statuses", "notifications")
    for name in ("TOTAL_FORMS", "INITIAL_FORMS")
}


@pytest.fixture
def endpoint(org) -> Endpoint:
    return Endpoint.objects.create(organization=org, url="https://hooks.example.com/in")


def test_a_task_added_in_the_admin_is_journalled_and_announced(admin_client, org, endpoint):
    data = {"organization": org.pk, "title": "Walk-in job", "importance": "normal", "extra_fields": "{}",
            **EMPTY_INLINES}  # fmt: skip
    response = admin_client.post(reverse("admin:tasks_task_add"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    task = Task.objects.get(title="Walk-in job")
    assert [(s.type, s.source) for s in task.statuses.all()] == [("NOTSTARTED", "admin")]
    assert Event.objects.get(task=task).type == "task.created"


def test_a_task_edited_in_the_admin_is_announced_with_what_changed(admin_client, org, endpoint):
    task = Task.objects.create(organization=org, title="Old title")
    data = {"organization": org.pk, "title": "New title", "importance": "high", "extra_fields": "{}",
            **EMPTY_INLINES}  # fmt: skip
    response = admin_client.post(reverse("admin:tasks_task_change", args=[task.pk]), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    task.refresh_from_db()
    assert (task.title, task.version) == ("New title", 2)
    event = Event.objects.get(task=task, type="task.updated")
    assert {"title", "importance"} <= set(event.payload["data"]["changed"])
    assert event.payload["data"]["version"] == 2
