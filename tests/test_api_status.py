"""Status reports on the journal, by the integrator's id; transitions decided in one place."""

import pytest

from tasks.models import StatusType, Task

pytestmark = pytest.mark.django_db


@pytest.fixture
def task(api, org) -> Task:
    api.put("/api/express/tasks/upsert/job-1", {"title": "Job"}, format="json")
    return Task.objects.get(external_id="job-1")


def report(api, payload: dict, external_id: str = "job-1"):
    return api.post(f"/api/express/tasks/{external_id}/status/new", payload, format="json")


def test_reporting_a_status_writes_the_journal_and_moves_the_task(api, task):
    response = report(
        api,
        {
            "type": "ENROUTE",
            "reporter_name": "Bob",
            "extra_fields": {"notes": "10 min away", "visible_to_customer": True},
        },
    )
    assert response.status_code == 201, response.json()
    assert response.json()["notes"] == "10 min away"
    task.refresh_from_db()
    assert (task.status, task.version) == (StatusType.ENROUTE, 2)
    journal = api.get("/api/express/tasks/job-1/status").json()["results"]
    assert [entry["type"] for entry in journal] == ["NOTSTARTED", "ENROUTE"]


def test_not_started_is_accepted_for_notstarted(api, task):
    assert report(api, {"type": "NOT_STARTED"}).json()["type"] == "NOTSTARTED"


def test_nothing_but_a_reopen_follows_complete(api, task):
    assert report(api, {"type": "COMPLETE"}).status_code == 201
    refused = report(api, {"type": "ENROUTE"})
    assert refused.status_code == 409
    assert "reopen" in refused.json()["error"]["message"]
    assert report(api, {"type": "NOTSTARTED"}).status_code == 201
    assert report(api, {"type": "ENROUTE"}).status_code == 201


@pytest.mark.parametrize(
    ("payload", "field"), [({"type": "FLYING"}, "type"), ({}, "type"), ({"type": "STARTED", "time": "x"}, "time")]
)
def test_bad_status_reports_name_the_field(api, task, payload, field):
    response = report(api, payload)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert task.statuses.count() == 1


def test_status_on_a_foreign_or_unknown_task_is_a_404(other_api, task):
    assert report(other_api, {"type": "STARTED"}).status_code == 404
