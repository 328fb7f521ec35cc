"""Travtus-style "Create Task" and its update, exactly per the spec, with the request log."""

import uuid

import pytest
from rest_framework.test import APIClient

from tasks.models import Group, Person, StatusType, Task, TaskRequest, Unit
from webhooks.models import Endpoint, Event

pytestmark = pytest.mark.django_db


@pytest.fixture
def group(org) -> Group:
    return Group.objects.create(organization=org, name="Riverside", external_ref="group-1")


def test_the_spec_curl_example_sent_verbatim_succeeds(token, group, org):
    client = APIClient()
    response = client.generic(
        "Post",
        "/api/task/",
        '{\n    "group_external_ref": "group-1",\n    "due_datetime": "2023-11-11 20:00:00",\n'
        '    "notes": "Some notes"\n}',
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"request_id", "identifier"}
    task = Task.objects.get(identifier=body["identifier"])
    assert task.group == group
    assert task.notes == "Some notes"
    # Naive means the organization's zone: 20:00 in New York is 01:00 UTC the next day.
    assert task.due_datetime.isoformat() == "2023-11-12T01:00:00+00:00"
    entry = TaskRequest.objects.get(request_id=body["request_id"])
    assert entry.outcome == "completed"
    assert entry.task == task


def test_create_resolves_people_units_and_importance(api, org, group):
    unit = Unit.objects.create(organization=org, group=group, unit_number="4B", external_ref="unit-4b")
    crew = Person.objects.create(organization=org, first_name="Bo", external_ref="crew-bo", is_crew=True)
    response = api.post(
        "/api/task/",
        {
            "group_id": str(group.identifier),
            "external_ref": "wo-17",
            "due_datetime": "2026-12-03T10:00:00+00:00",
            "reminder_datetime": "2026-12-02T10:00:00Z",
            "importance": "very_high",
            "relevant_conversation": "Resident called about a leak",
            "creator": {"email_address": "pm@riverside.test", "first_name": "Pat"},
            "assignee": {"external_ref": "crew-bo"},
            "resident": {"phone_number": "+1 646 555 0100", "last_name": "Nguyen"},
            "unit_external_ref": "unit-4b",
            "title": "Leak under sink",
            "description": "Water under the kitchen sink",
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    task = Task.objects.get(identifier=response.json()["identifier"])
    assert (task.external_id, task.importance, task.unit, task.details) == (
        "wo-17",
        "very_high",
        unit,
        "Water under the kitchen sink",
    )
    assert list(task.assignees.all()) == [crew]
    assert task.customer.phone == "+16465550100"
    assert task.customer.is_customer
    assert task.creator.email == "pm@riverside.test"
    # The same contact details find the same person next time.
    api.post(
        "/api/task/",
        {"group_id": str(group.pk), "resident": {"phone_number": "+16465550100", "first_name": "Lee"}},
        format="json",
    )
    assert Person.objects.filter(phone="+16465550100").count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "group_id"),
        ({"group_id": "1", "group_external_ref": "group-1"}, "group_external_ref"),
        ({"group_external_ref": "nope"}, "group_external_ref"),
        ({"group_external_ref": "group-1", "importance": "urgent"}, "importance"),
        ({"group_external_ref": "group-1", "due_datetime": "11/11/2023"}, "due_datetime"),
        ({"group_external_ref": "group-1", "creator": {"first_name": "Pat"}}, "creator"),
        ({"group_external_ref": "group-1", "assignee": {"email_address": "a@b.test"}}, "assignee"),
        ({"group_external_ref": "group-1", "resident": {"identifier": str(uuid.uuid4())}}, "resident.identifier"),
        ({"group_external_ref": "group-1", "resident": {"external_ref": "ghost"}}, "resident.external_ref"),
        ({"group_external_ref": "group-1", "unit_external_ref": "ghost"}, "unit_external_ref"),
        ({"group_external_ref": "group-1", "priority": "high"}, "priority"),
    ],
)
def test_bad_create_is_a_400_naming_the_field_logged_and_nothing_written(api, org, group, payload, field):
    response = api.post("/api/task/", payload, format="json")
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["error"]["type"] == "validation_error"
    assert field in body["error"]["fields"]
    assert not Task.objects.exists()
    assert Person.objects.count() == 0
    failed = TaskRequest.objects.get(request_id=body["request_id"])
    assert failed.outcome == "failed"
    assert field in failed.errors["fields"]
    assert api.get(f"/api/requests/{body['request_id']}").json()["outcome"] == "failed"


def test_unit_must_belong_to_the_group(api, org, group):
    other = Group.objects.create(organization=org, name="Other")
    Unit.objects.create(organization=org, group=other, unit_number="1", external_ref="u-other")
    response = api.post("/api/task/", {"group_id": group.pk, "unit_external_ref": "u-other"}, format="json")
    assert response.status_code == 400
    assert "unit_external_ref" in response.json()["error"]["fields"]


def test_external_ref_in_use_is_a_conflict(api, group):
    assert api.post("/api/task/", {"group_id": group.pk, "external_ref": "x"}, format="json").status_code == 200
    response = api.post("/api/task/", {"group_id": group.pk, "external_ref": "x"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["type"] == "conflict"


def test_patch_updates_fields_and_coarse_status(api, org, group):
    identifier = api.post("/api/task/", {"group_id": group.pk, "external_ref": "wo-1"}, format="json").json()[
        "identifier"
    ]
    response = api.patch(
        "/api/task/",
        {"external_ref": "wo-1", "status": "in_progress", "title": "Fix leak", "importance": "high"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert set(response.json()) == {"request_id"}
    task = Task.objects.get(identifier=identifier)
    assert (task.title, task.importance, task.status, task.coarse_status) == (
        "Fix leak",
        "high",
        StatusType.STARTED,
        "in_progress",
    )
    api.patch("/api/task/", {"identifier": identifier, "status": "completed"}, format="json")
    task.refresh_from_db()
    assert task.coarse_status == "completed"
    assert task.completed_datetime is not None
    api.patch("/api/task/", {"identifier": identifier, "status": "deleted"}, format="json")
    task.refresh_from_db()
    assert task.coarse_status == "deleted"
    assert task.statuses.count() == 3  # created, started, complete: history kept


def test_patch_of_an_unknown_or_foreign_task_is_a_404(api, other_api, group):
    identifier = api.post("/api/task/", {"group_id": group.pk}, format="json").json()["identifier"]
    response = other_api.patch("/api/task/", {"identifier": identifier, "title": "x"}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


def test_requests_are_looked_up_only_within_the_organization(api, other_api, group):
    request_id = api.post("/api/task/", {"group_id": group.pk}, format="json").json()["request_id"]
    assert api.get(f"/api/requests/{request_id}").json()["outcome"] == "completed"
    assert other_api.get(f"/api/requests/{request_id}").status_code == 404


def test_request_outcome_is_sent_as_an_event_with_the_same_request_id(api, org, group):
    Endpoint.objects.create(organization=org, url="https://hooks.example.com/taskhub")
    body = api.post("/api/task/", {"group_id": group.pk}, format="json").json()
    types = set(Event.objects.filter(request_id=body["request_id"]).values_list("type", flat=True))
    assert {"task.created", "request.completed"} <= types
    failed = api.post("/api/task/", {"group_id": group.pk, "importance": "urgent"}, format="json").json()
    assert Event.objects.get(request_id=failed["request_id"]).type == "request.failed"


def test_a_create_reads_the_organizations_endpoints_once_for_all_its_events(api, org, group):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    Endpoint.objects.create(organization=org, url="https://hooks.example.com/taskhub")
    with CaptureQueriesContext(connection) as ctx:
        body = api.post("/api/task/", {"group_id": group.pk}, format="json").json()
    types = set(Event.objects.filter(request_id=body["request_id"]).values_list("type", flat=True))
    assert types == {"task.created", "request.completed"}
    reads = [
        q["sql"] for q in ctx.captured_queries if q["sql"].startswith("SELECT") and "webhooks_endpoint" in q["sql"]
    ]
    assert len(reads) == 1
