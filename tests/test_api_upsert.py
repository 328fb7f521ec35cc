"""Arrivy-style upsert: create or update by the integrator's own id."""

import threading
from unittest import mock

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tasks.models import Group, Person, StatusType, Task

pytestmark = pytest.mark.django_db

URL = "/api/express/tasks/upsert/{}"

FULL = {
    "title": "Install dishwasher",
    "details": "Bring the 60 cm model",
    "start_datetime": "2026-12-01T09:00:00",
    "end_datetime": "2026-12-01 11:00:00",
    "enable_time_window_display": True,
    "time_window_start": 60,
    "customer_first_name": "Ada",
    "customer_last_name": "Lovelace",
    "customer_email": "ada@example.com",
    "customer_mobile_number": "+1 212 555 0142",
    "customer_address_line_1": "1 Main St",
    "customer_city": "New York",
    "customer_zipcode": "10001",
    "customer_exact_location": {"lat": 40.75, "lng": -73.99},
    "additional_addresses": [{"title": "Depot", "address_line_1": "9 Dock Rd", "city": "Newark"}],
    "entities": [{"external_id": "crew-1", "name": "Bob Smith"}, {"external_id": "crew-2", "first_name": "Cy"}],
    "resources": [{"external_id": "van-7", "name": "Van 7", "type": "vehicle"}],
    "extra_fields": {"order_no": "A-1"},
    "notifications": {"sms": True, "email": False},
    "external_url": "https://crm.example.com/orders/A-1",
}


def test_upsert_creates_a_task_with_everything_sent(api, org):
    response = api.put(URL.format("ord-1"), FULL, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["external_id"] == "ord-1"
    assert body["version"] == 1
    assert body["status"] == "NOTSTARTED"
    assert body["tracker_url"] == f"https://taskhub.test/t/{body['url_safe_id']}"
    assert len(body["url_safe_id"]) == 22
    # Naive datetimes are in the organization's zone (America/New_York: UTC-5 in December).
    assert body["start_datetime"].startswith("2026-12-01T14:00:00")
    assert body["customer"]["mobile_number"] == "+12125550142"
    assert [a["title"] for a in body["addresses"]] == ["", "Depot"]
    assert body["addresses"][0]["lat"] == 40.75
    assert len(body["entity_ids"]) == 2
    assert body["notifications"] == {"sms": True, "email": False}
    task = Task.objects.get(external_id="ord-1")
    assert set(task.assignees.values_list("external_ref", flat=True)) == {"crew-1", "crew-2"}
    assert Person.objects.get(external_ref="crew-1").last_name == "Smith"
    assert task.resources.get().external_id == "van-7"
    assert task.statuses.get().type == StatusType.NOTSTARTED


def test_upsert_twice_updates_the_same_task_with_only_the_fields_sent(api, org):
    api.put(URL.format("ord-1"), FULL, format="json")
    response = api.post(URL.format("ord-1"), {"title": "Install dishwasher (rush)"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["title"] == "Install dishwasher (rush)"
    assert body["details"] == "Bring the 60 cm model"
    assert body["version"] == 2
    assert len(body["entity_ids"]) == 2
    assert Task.objects.count() == 1


def test_an_upsert_that_changes_nothing_keeps_the_version(api, org):
    api.put(URL.format("ord-1"), FULL, format="json")
    assert api.put(URL.format("ord-1"), FULL, format="json").json()["version"] == 1


def test_entity_ids_replace_the_crew(api, org):
    crew = Person.objects.create(organization=org, first_name="Dee", is_crew=True)
    api.put(URL.format("ord-1"), FULL, format="json")
    body = api.put(URL.format("ord-1"), {"entity_ids": [crew.pk]}, format="json").json()
    assert body["entity_ids"] == [crew.pk]
    assert list(Task.objects.get(external_id="ord-1").assignees.all()) == [crew]
    from tasks import services

    assert (Task.assignees.through, "person_id", 2) in services._member_deletes  # the two removed, one DELETE


def test_customer_address_fields_merge_into_the_first_address(api, org):
    api.put(URL.format("ord-1"), FULL, format="json")
    body = api.put(URL.format("ord-1"), {"customer_zipcode": "10002"}, format="json").json()
    assert body["addresses"][0]["address_line_1"] == "1 Main St"
    assert body["addresses"][0]["zipcode"] == "10002"
    assert body["addresses"][1]["title"] == "Depot"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"start_datetime": "tomorrow"}, "start_datetime"),
        ({"start_datetime": "2026-13-01T00:00:00"}, "start_datetime"),
        ({"start_datetime": "9999-01-01T00:00:00"}, "start_datetime"),
        ({"customer_phone": "12"}, "customer_phone"),
        ({"customer_email": "not-an-email"}, "customer_email"),
        ({"entity_ids": [999999]}, "entity_ids"),
        ({"group_id": "424242"}, "group_id"),
        ({"customer_id": "00000000-0000-0000-0000-000000000000"}, "customer_id"),
        ({"colour": "red"}, "colour"),
        ({"time_window_start": -5}, "time_window_start"),
        ({"customer_exact_location": {"lat": 91, "lng": 0}}, "customer_exact_location"),
        ({"start_datetime": "2026-12-02T10:00:00", "end_datetime": "2026-12-02T09:00:00"}, "end_datetime"),
        ({"entities": [{"name": "no id"}]}, "entities"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(api, org, payload, field):
    response = api.put(URL.format("ord-bad"), payload, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["type"] == "validation_error"
    assert field in error["fields"]
    assert not Task.objects.exists()
    assert not Person.objects.exists()


def test_group_and_resources_resolve_within_the_organization_only(api, org, other_org):
    foreign = Group.objects.create(organization=other_org, name="Theirs")
    response = api.put(URL.format("ord-1"), {"group_id": foreign.pk}, format="json")
    assert response.status_code == 400
    assert "group_id" in response.json()["error"]["fields"]
    mine = Group.objects.create(organization=org, name="Mine")
    body = api.put(URL.format("ord-1"), {"group_id": str(mine.identifier)}, format="json").json()
    assert body["group_id"] == mine.pk


def test_the_same_external_id_in_two_organizations_is_two_tasks(api, other_api):
    assert api.put(URL.format("shared"), {"title": "A"}, format="json").status_code == 201
    assert other_api.put(URL.format("shared"), {"title": "B"}, format="json").status_code == 201
    assert sorted(Task.objects.values_list("title", flat=True)) == ["A", "B"]


def test_get_list_and_delete_by_external_id(api, other_api, org):
    api.put(URL.format("ord-1"), FULL, format="json")
    assert api.get("/api/express/tasks/ord-1").json()["title"] == "Install dishwasher"
    assert other_api.get("/api/express/tasks/ord-1").status_code == 404
    listed = api.get("/api/express/tasks", {"from": "2026-12-01", "to": "2026-12-02"}).json()
    assert [t["external_id"] for t in listed["results"]] == ["ord-1"]
    assert other_api.get("/api/express/tasks").json()["results"] == []
    assert other_api.delete("/api/express/tasks/ord-1").status_code == 404
    assert api.delete("/api/express/tasks/ord-1").status_code == 204
    assert api.get("/api/express/tasks/ord-1").status_code == 404
    assert Task.objects.get().deleted_at is not None  # soft delete keeps history


def test_list_filters_by_entity_customer_and_unscheduled(api, org):
    api.put(URL.format("a"), FULL, format="json")
    api.put(URL.format("b"), {"title": "B", "unscheduled": True}, format="json")
    crew = Person.objects.get(external_ref="crew-1")
    by_entity = api.get("/api/express/tasks", {"entity_id": crew.pk}).json()["results"]
    assert [t["external_id"] for t in by_entity] == ["a"]
    unscheduled = api.get("/api/express/tasks", {"unscheduled": "true"}).json()["results"]
    assert [t["external_id"] for t in unscheduled] == ["b"]
    assert api.get("/api/express/tasks", {"from": "soon"}).status_code == 400


def test_upsert_query_count_does_not_grow_with_nested_items(api, org, django_assert_max_num_queries):
    def payload(n: int) -> dict:
        return {
            **FULL,
            "customer_email": f"customer-{n}@example.com",
            "additional_addresses": [{"address_line_1": f"{i} Side St"} for i in range(n)],
            "entities": [{"external_id": f"crew-{n}-{i}", "name": f"Crew {i}"} for i in range(n)],
            "resources": [{"external_id": f"res-{n}-{i}", "name": f"Res {i}"} for i in range(n)],
        }

    # The organization's first task creates its one-time defaults (resources, notification settings).
    api.put(URL.format("warm-up"), {**payload(0), "customer_email": "first@example.com"}, format="json")
    counts = {}
    for n in (1, 20):
        with CaptureQueriesContext(connections["default"]) as ctx:
            assert api.put(URL.format(f"n{n}"), payload(n), format="json").status_code == 201
        counts[n] = len(ctx.captured_queries)
    assert counts[1] == counts[20]
    with django_assert_max_num_queries(counts[1]):
        assert api.put(URL.format("n20"), {**payload(20), "title": "changed"}, format="json").status_code == 200


def test_an_update_writes_only_the_columns_it_changes(api, org):
    assert api.put(URL.format("cols"), FULL, format="json").status_code == 201
    with CaptureQueriesContext(connections["default"]) as ctx:
        assert api.put(URL.format("cols"), {"title": "Install dryer"}, format="json").status_code == 200
    (update,) = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith('UPDATE "tasks_task"')]
    assert update.split(" WHERE ")[0].count("=") == 3  # title, version, updated_at
    task = Task.objects.get(external_id="cols")
    assert (task.title, task.version, task.details) == ("Install dryer", 2, FULL["details"])


@pytest.mark.django_db(transaction=True)  # no test transaction around the request: its own is the outermost
def test_an_upsert_reads_the_notification_rules_once_and_takes_no_savepoint(api, org):
    api.put(URL.format("warm-up"), {**FULL, "customer_email": "first@example.com"}, format="json")
    with CaptureQueriesContext(connections["default"]) as ctx:
        assert (
            api.put(URL.format("fresh"), {**FULL, "customer_email": "c2@example.com"}, format="json").status_code == 201
        )
    statements = [q["sql"] for q in ctx.captured_queries]
    assert not [sql for sql in statements if "SAVEPOINT" in sql]
    assert len([sql for sql in statements if 'FROM "notifications_template' in sql]) == 1


@pytest.mark.requires_postgres  # concurrent writers: SQLite serializes them and refuses the rest
@pytest.mark.django_db(transaction=True)
def test_parallel_upserts_of_one_new_external_id_create_exactly_one_task(org, token):
    results: list[int] = []

    def upsert(i: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        try:
            response = client.put(URL.format("race"), {"title": f"t{i}", "extra_fields": {"i": i}}, format="json")
            results.append(response.status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=upsert, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200] * 19 + [201]
    task = Task.objects.get(external_id="race")
    assert task.version == 20
    assert task.title == f"t{task.extra_fields['i']}"


def test_do_not_send_webhook_notification_silences_webhooks_for_that_change_only(api, org):
    from notifications.models import Notification
    from webhooks.models import Endpoint, Event

    Endpoint.objects.create(organization=org, url="https://hooks.example.com/in")
    quiet = {**FULL, "do_not_send_webhook_notification": True}
    assert api.put(URL.format("ord-q"), quiet, format="json").status_code == 201
    assert not Event.objects.exists()
    assert Notification.objects.filter(event="created").exists()  # the customer still hears about it
    api.put(URL.format("ord-q"), {"title": "Louder"}, format="json")
    assert list(Event.objects.values_list("type", flat=True)) == ["task.updated"]


def test_a_new_tasks_customer_by_email_and_crew_by_id_are_found_in_one_query(api, org):
    customer = Person.objects.create(organization=org, first_name="Ada", email="Ada@Example.com", is_customer=True)
    crew = Person.objects.create(organization=org, first_name="Bob", is_crew=True)
    body = {"title": "Fix", "customer_email": "ada@example.COM", "entity_ids": [crew.pk]}
    with CaptureQueriesContext(connections["default"]) as ctx:
        response = api.put(URL.format("one-lookup"), body, format="json")
    assert response.status_code == 201
    assert response.json()["customer"]["id"] == customer.pk  # matched case-insensitively, not created
    assert response.json()["entity_ids"] == [crew.pk]
    people = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith('SELECT "tasks_person"')]
    assert len(people) == 1
    unknown = api.put(URL.format("one-lookup-2"), {**body, "entity_ids": [crew.pk, 999999]}, format="json")
    assert unknown.status_code == 400
    assert "entity_ids" in unknown.json()["error"]["fields"]


def test_an_existing_tasks_crew_and_resources_are_read_with_the_task(api, org):
    api.put(URL.format("crewed"), FULL, format="json")
    change = {"title": "Changed", "entities": [{"external_id": "crew-1", "name": "Bob Smith"}]}
    with CaptureQueriesContext(connections["default"]) as ctx:
        response = api.put(URL.format("crewed"), change, format="json")
    assert response.status_code == 200
    crew = Person.objects.get(external_ref="crew-1")
    assert response.json()["entity_ids"] == [crew.pk]  # crew-2 left
    assert len(response.json()["resource_ids"]) == 1  # not sent: kept, and shown without asking again
    through = [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].startswith("SELECT") and ("tasks_task_assignees" in q["sql"] or "tasks_task_resources" in q["sql"])
    ]
    assert len(through) == 1  # the locked lookup of the task itself
    assert 'FROM "tasks_task"' in through[0]


def test_the_messages_of_one_change_are_written_in_one_insert_without_a_read_back(api, org):
    from notifications.models import Notification

    crew = {"entities": [{"external_id": "crew-9", "name": "Dee", "mobile_number": "+1 212 555 0199"}]}
    api.put(URL.format("warm-up"), {**FULL, "customer_email": "first@example.com"}, format="json")
    with CaptureQueriesContext(connections["default"]) as ctx:
        response = api.put(
            URL.format("msgs"), {**FULL, **crew, "notifications": {"sms": True, "email": True}}, format="json"
        )
    assert response.status_code == 201
    planned = Notification.objects.filter(task__external_id="msgs")
    assert {row.event for row in planned} == {"created", "assigned"}  # the customer's and the crew's
    touching = [q["sql"] for q in ctx.captured_queries if '"notifications_notification"' in q["sql"]]
    assert len(touching) == 1
    assert touching[0].startswith('INSERT INTO "notifications_notification"')


def test_the_task_shape_is_built_once_and_renders_as_drf_would(api, org):
    from rest_framework import serializers as drf

    from tasks.serializers import TaskOutSerializer

    api.put(URL.format("shape"), {**FULL, "customer_email": "shape@example.com"}, format="json")
    task = Task.objects.get(external_id="shape")
    fresh = TaskOutSerializer()  # DRF's own way: this instance's fields, built from the model
    expected = drf.ModelSerializer.to_representation(fresh, task)
    assert TaskOutSerializer(task).data == expected
    with mock.patch.object(drf.ModelSerializer, "get_fields", side_effect=AssertionError("fields rebuilt")):
        assert TaskOutSerializer(task).data == expected


def test_a_change_reads_addresses_rules_and_endpoints_without_joining_their_parents(api, org):
    """Default orderings name the parent ("task", "organization"): hot reads order by the column instead."""
    from webhooks.models import Endpoint

    Endpoint.objects.create(organization=org, url="https://hooks.example.com/taskhub")
    api.put(URL.format("joins"), FULL, format="json")
    with CaptureQueriesContext(connections["default"]) as ctx:
        response = api.put(URL.format("joins"), {**FULL, "start_datetime": "2026-12-01T08:00:00"}, format="json")
    assert response.status_code == 200
    reads = {
        table: [q["sql"] for q in ctx.captured_queries if q["sql"].startswith(f'SELECT "{table}"')]
        for table in ("tasks_taskaddress", "webhooks_endpoint", "notifications_templaterule")
    }
    assert all(len(sql) == 1 for sql in reads.values()), reads
    for sql in (s for found in reads.values() for s in found):
        assert " JOIN " not in sql, sql


def test_the_events_of_one_change_are_written_in_one_insert_and_their_deliveries_in_another(api, org):
    from webhooks.models import Delivery, Endpoint, Event

    first = Endpoint.objects.create(organization=org, url="https://hooks.example.com/a")
    second = Endpoint.objects.create(organization=org, url="https://hooks.example.com/b", event_types=["task.assigned"])
    api.put(URL.format("many-events"), FULL, format="json")
    change = {**FULL, "start_datetime": "2026-12-01T08:00:00", "entities": [{"external_id": "crew-7", "name": "Cy"}]}
    with CaptureQueriesContext(connections["default"]) as ctx:
        response = api.put(URL.format("many-events"), change, format="json")
    assert response.status_code == 200
    inserts = [q["sql"].split(" (")[0] for q in ctx.captured_queries if q["sql"].startswith('INSERT INTO "webhooks_')]
    assert inserts == ['INSERT INTO "webhooks_event"', 'INSERT INTO "webhooks_delivery"']
    written = Event.objects.filter(task__external_id="many-events").exclude(type="task.created")
    types = ["task.assigned", "task.rescheduled", "task.unassigned", "task.updated"]  # crew-7 in, FULL's crew out
    assert sorted(written.values_list("type", flat=True)) == types
    sent = Delivery.objects.filter(event__in=written)
    assert sent.filter(endpoint=first).count() == 4
    assert list(sent.filter(endpoint=second).values_list("event__type", flat=True)) == ["task.assigned"]


def test_an_update_compares_the_addresses_the_orm_reads_through_a_compiled_query(api, org):
    from tasks import services

    api.put(URL.format("addr"), FULL, format="json")
    api.put(URL.format("addr"), {"customer_zipcode": "10002"}, format="json")  # read, compared, rewritten
    assert getattr(services.ADDRESS_ROWS.local, "compiled", None) is not None
    assert getattr(services.ADDRESSES_OF.local, "compiled", None) is not None  # the old ones removed, compiled
    task = Task.objects.get(external_id="addr")
    columns = services.ADDRESS_COLUMNS
    found = [[getattr(a, name) for name in columns] for a in services.current_addresses(task)]
    assert found == [[getattr(a, name) for name in columns] for a in task.addresses.all()]
    assert [row[columns.index("position")] for row in found] == [0, 1]
    with CaptureQueriesContext(connections["default"]) as ctx:
        loaded = Task.objects.prefetch_related("addresses").get(pk=task.pk)
        services.current_addresses(loaded)
    assert len(ctx.captured_queries) == 2  # the task and its prefetch: the loaded addresses are used


def test_the_response_is_the_task_as_its_events_carry_it_built_once(api, org, monkeypatch):
    from tasks.serializers import TaskOutSerializer
    from webhooks.models import Endpoint, Event

    built = []
    original = TaskOutSerializer.to_representation
    monkeypatch.setattr(TaskOutSerializer, "to_representation", lambda self, task: built.append(task.pk) or
                        original(self, task))  # fmt: skip
    Endpoint.objects.create(organization=org, url="https://hooks.example.com/a")

    created = api.put(URL.format("once"), FULL, format="json")
    updated = api.put(URL.format("once"), {**FULL, "title": "Install two dishwashers"}, format="json")

    assert (created.status_code, updated.status_code) == (201, 200)
    assert len(built) == 2  # one a change: for its events and its response
    for response, type_ in ((created, "task.created"), (updated, "task.updated")):
        data = Event.objects.get(task__external_id="once", type=type_).payload["data"]
        extras = {"changed", "request_id"}
        assert {k: v for k, v in data.items() if k not in extras} == response.json()
    assert updated.json()["title"] == "Install two dishwashers"
    assert updated.json()["version"] == 2

    Endpoint.objects.update(enabled=False)  # no event wants the task: the response builds it
    again = api.put(URL.format("once"), {"title": "Install three dishwashers"}, format="json")
    assert again.json()["title"] == "Install three dishwashers"
    assert len(built) == 3
