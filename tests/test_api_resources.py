"""TaskHub's own resources: tasks by identifier, people, groups, units, resources."""

import pytest

from tasks.models import Group, Person, Task

pytestmark = pytest.mark.django_db


@pytest.fixture
def task(api) -> dict:
    body = {"title": "Boiler service", "customer_email": "cy@example.com", "customer_first_name": "Cy",
            "customer_address_line_1": "2 Elm St", "start_datetime": "2026-12-05T08:00:00"}  # fmt: skip
    return api.put("/api/express/tasks/upsert/b-1", body, format="json").json()


def test_tasks_list_filters_and_expands(api, task):
    listed = api.get("/api/tasks/", {"status": "NOTSTARTED"}).json()
    assert [t["identifier"] for t in listed["results"]] == [task["identifier"]]
    assert "customer" not in listed["results"][0]
    expanded = api.get("/api/tasks/", {"expand": "customer,addresses"}).json()["results"][0]
    assert expanded["customer"]["email"] == "cy@example.com"
    assert expanded["addresses"][0]["address_line_1"] == "2 Elm St"
    assert api.get("/api/tasks/", {"status": "COMPLETE"}).json()["results"] == []
    assert api.get("/api/tasks/", {"start_after": "2026-12-06T00:00:00Z"}).json()["results"] == []


def test_task_patch_statuses_and_soft_delete(api, other_api, task):
    url = f"/api/tasks/{task['identifier']}"
    assert other_api.get(url).status_code == 404
    patched = api.patch(url, {"title": "Boiler service (annual)"}, format="json").json()
    assert (patched["title"], patched["version"]) == ("Boiler service (annual)", 2)
    assert api.post(f"{url}/statuses", {"type": "STARTED"}, format="json").status_code == 201
    journal = api.get(f"{url}/statuses").json()["results"]
    assert {entry["type"] for entry in journal} == {"NOTSTARTED", "STARTED"}
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404
    assert Task.objects.get(identifier=task["identifier"]).deleted_at is not None


def test_people_crud_lookup_and_find(api, other_api, org):
    created = api.post("/api/persons/", {"first_name": "Dana", "email": "Dana@Example.com", "phone": "(212) 555-0199",
                                         "external_ref": "p-1", "is_crew": True}, format="json")  # fmt: skip
    assert created.status_code == 201, created.json()
    assert created.json()["phone"] == "+12125550199"
    duplicate = api.post("/api/persons/", {"external_ref": "p-1"}, format="json")
    assert duplicate.status_code == 400
    assert "external_ref" in duplicate.json()["error"]["fields"]
    assert api.post("/api/persons/", {"phone": "555"}, format="json").json()["error"]["fields"].keys() == {"phone"}
    assert [p["first_name"] for p in api.get("/api/persons/", {"external_ref": "p-1"}).json()["results"]] == ["Dana"]
    found = api.get("/api/persons/find", {"email": "dana@example.com"}).json()["results"]
    assert [p["external_ref"] for p in found] == ["p-1"]
    assert other_api.get("/api/persons/find", {"email": "dana@example.com"}).json()["results"] == []
    assert other_api.get(f"/api/persons/{created.json()['identifier']}").status_code == 404
    assert Person.objects.filter(organization=org).count() == 1


def test_groups_and_units_stay_within_the_organization(api, other_api, other_org):
    group = api.post("/api/groups/", {"name": "Riverside", "external_ref": "g-1"}, format="json").json()
    unit = api.post("/api/units/", {"group": group["identifier"], "unit_number": "4B"}, format="json")
    assert unit.status_code == 201, unit.json()
    foreign = Group.objects.create(organization=other_org, name="Theirs")
    refused = api.post("/api/units/", {"group": str(foreign.identifier), "unit_number": "1"}, format="json")
    assert refused.status_code == 400
    assert "group" in refused.json()["error"]["fields"]
    assert [g["name"] for g in other_api.get("/api/groups/").json()["results"]] == ["Theirs"]
    resource = api.post("/api/resources/", {"name": "Van", "external_id": "van-1"}, format="json")
    assert resource.status_code == 201
    assert api.get("/api/resources/", {"external_id": "van-1"}).json()["results"][0]["name"] == "Van"
