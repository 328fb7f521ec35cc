"""Hostile and malformed input: each a clear 4xx in the envelope, and nothing written."""

import json

import pytest

from taskhub.models import IdempotencyRecord
from tasks.models import Group, Person, Resource, Task, TaskStatus, Unit
from tasks.services import TaskChanges, task_upsert
from webhooks.models import Endpoint

pytestmark = pytest.mark.django_db

UPSERT = "/api/express/tasks/upsert/job-1"
WRITTEN = (Task, TaskStatus, Person, Group, Unit, Resource, Endpoint, IdempotencyRecord)


@pytest.fixture
def group(org) -> Group:
    return Group.objects.create(organization=org, name="North")


@pytest.fixture
def existing(org) -> Task:
    return task_upsert(organization=org, external_id="job-0", changes=TaskChanges(fields={"title": "Boiler"})).task


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in WRITTEN}


def assert_refused(response, status: int, type_: str, before: dict[str, int], field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["type"] == type_, error
    assert error["message"]
    if field is not None:
        assert field in error.get("fields", {}), error
    assert counts() == before, "nothing is written"
    return error


def test_an_oversize_body_is_413_before_anything_is_parsed(api, settings):
    before = counts()
    body = json.dumps({"title": "x", "details": "y" * (settings.API_MAX_BODY_BYTES + 1)})

    response = api.put(UPSERT, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="big-1")

    assert_refused(response, 413, "payload_too_large", before)


@pytest.mark.parametrize("depth", [10_000, 50_000])
def test_deeply_nested_json_is_a_400_not_a_recursion_error(api, depth):
    before = counts()
    nested = "[" * depth + "]" * depth
    body = '{"title": "deep", "extra_fields": {"a": ' + nested + "}}"

    response = api.put(UPSERT, body, content_type="application/json")

    assert_refused(response, 400, "malformed_request", before)


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/x-www-form-urlencoded"])
def test_a_wrong_content_type_is_415_naming_the_accepted_one(api, content_type):
    before = counts()
    response = api.generic("PUT", UPSERT, "title=x", content_type=content_type)

    error = assert_refused(response, 415, "unsupported_media_type", before)
    assert "application/json" in error["message"]


def test_invalid_utf8_is_a_400(api):
    before = counts()
    response = api.put(UPSERT, b'{"title": "caf\xe9 \xff"}', content_type="application/json")
    assert_refused(response, 400, "malformed_request", before)


def test_a_nul_character_is_refused_naming_the_field(api):
    before = counts()
    response = api.put(UPSERT, {"title": "a\u0000b"}, format="json")
    assert_refused(response, 400, "validation_error", before, field="title")


def test_a_lone_surrogate_is_refused_naming_the_field(api):
    before = counts()
    response = api.put(UPSERT, b'{"title": "a\\ud800b"}', content_type="application/json")
    assert_refused(response, 400, "validation_error", before, field="title")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "x" * 256}, "title"),
        ({"details": "x" * 20_001}, "details"),
        ({"customer_first_name": "x" * 129}, "customer_first_name"),
        ({"external_url": "https://example.com/" + "x" * 1000}, "external_url"),
        ({"entity_ids": list(range(1, 102))}, "entity_ids"),
        ({"resource_ids": ["1"] * 101}, "resource_ids"),
        ({"additional_addresses": [{"city": "x"}] * 101}, "additional_addresses"),
        ({"entities": [{"external_id": f"e{i}"} for i in range(101)]}, "entities"),
        ({"entity_ids": ["9" * 65]}, "entity_ids"),
        ({"customer_phone": "+1" + "5" * 60}, "customer_phone"),
    ],
)
def test_huge_strings_and_arrays_are_refused_naming_the_field(api, body, field):
    before = counts()
    assert_refused(api.put(UPSERT, body, format="json"), 400, "validation_error", before, field=field)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/task/", {"group_id": "{group}", "importance": "urgent"}, "importance"),
        ("/api/express/tasks/job-0/status/new", {"type": "FLYING"}, "type"),
        ("/api/express/tasks/job-0/status/new", {"type": "STARTED", "source": "pigeon"}, "source"),
        ("/api/tasks/?status=FLYING", None, "status"),
        ("/api/webhooks/endpoints/", {"url": "https://hooks.example.com/a", "event_types": ["task.exploded"]},
         "event_types"),
    ],
)  # fmt: skip
def test_unknown_enum_values_are_refused_naming_the_field(api, group, existing, path, body, field):
    before = counts()
    if body is None:
        response = api.get(path)
    else:
        body = {key: value.format(group=group.identifier) if isinstance(value, str) else value
                for key, value in body.items()}  # fmt: skip
        response = api.post(path, body, format="json")
    assert_refused(response, 400, "validation_error", before, field=field)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (UPSERT, {"start_datetime": "9999-12-31T23:59:59"}, "start_datetime"),
        (UPSERT, {"start_datetime": "0001-01-01T00:00:00+05:00"}, "start_datetime"),
        (UPSERT, {"end_datetime": "1900-01-01 00:00:00"}, "end_datetime"),
        (UPSERT, {"start_datetime": "2030-01-01T00:00:00+25:00"}, "start_datetime"),
        ("/api/task/", {"group_id": "{group}", "due_datetime": "2201-01-01T00:00:00Z"}, "due_datetime"),
        ("/api/task/", {"group_id": "{group}", "reminder_datetime": "1969-12-31 23:59:59"}, "reminder_datetime"),
        ("/api/express/tasks/job-0/status/new", {"type": "STARTED", "time": "10000-01-01T00:00:00"}, "time"),
    ],
)
def test_far_future_and_far_past_dates_are_refused_naming_the_field(api, group, existing, path, body, field):
    before = counts()
    body = {key: value.format(group=group.identifier) for key, value in body.items()}
    response = api.post(path, body, format="json")
    assert_refused(response, 400, "validation_error", before, field=field)


@pytest.mark.parametrize("query", ["from=0001-01-01T00:00:00", "to=99999-01-01", "from=2030-01-01T00:00:00%2B30:00"])
def test_far_dates_in_list_filters_are_a_400_not_a_server_error(api, query):
    response = api.get(f"/api/express/tasks?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "validation_error"


def test_a_refused_write_with_an_idempotency_key_can_be_retried_fixed(api):
    before = counts()
    refused = api.put(UPSERT, {"title": "x" * 300}, format="json", HTTP_IDEMPOTENCY_KEY="fix-1")
    assert refused.status_code == 400
    assert counts()["Task"] == before["Task"]

    accepted = api.put(UPSERT, {"title": "fixed"}, format="json", HTTP_IDEMPOTENCY_KEY="fix-2")
    assert accepted.status_code == 201


def test_deleting_a_group_still_in_use_is_a_conflict_not_a_server_error(api, org, group):
    Unit.objects.create(organization=org, group=group, unit_number="1A")

    response = api.delete(f"/api/groups/{group.identifier}")

    assert response.status_code == 409, response.content
    assert response.json()["error"]["type"] == "conflict"
    assert Group.objects.filter(pk=group.pk).exists()


def test_deleting_a_person_a_task_names_is_a_conflict_not_a_server_error(api, org):
    person = Person.objects.create(organization=org, first_name="Pat", is_customer=True)
    task_upsert(organization=org, external_id="job-9", changes=TaskChanges(customer=person))

    response = api.delete(f"/api/persons/{person.identifier}")

    assert response.status_code == 409, response.content
    assert Person.objects.filter(pk=person.pk).exists()


@pytest.mark.parametrize("value", ["%s", "100%", "%(x)s", "2030-01-01T00:00:00%25"])
def test_a_percent_sign_in_a_date_filter_is_a_400_naming_the_filter(api, value):
    response = api.get("/api/tasks/", {"updated_since": value})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "validation_error"
    assert "updated_since" in response.json()["error"]["fields"]
