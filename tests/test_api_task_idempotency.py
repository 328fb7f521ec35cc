"""Idempotency-Key on the task routes: a retry replays the first answer and has no second effect."""

import threading

import pytest
from django.db import connections
from rest_framework.test import APIClient

from tasks.models import Group, Task, TaskRequest, TaskStatus

pytestmark = pytest.mark.django_db


def test_a_retried_travtus_create_replays_the_same_request_id_and_task(api, org):
    group = Group.objects.create(organization=org, name="G")
    first = api.post("/api/task/", {"group_id": group.pk, "title": "Leak"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = api.post("/api/task/", {"group_id": group.pk, "title": "Leak"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Task.objects.count() == 1
    assert TaskRequest.objects.count() == 1
    changed = api.post(
        "/api/task/", {"group_id": group.pk, "title": "Other"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert changed.status_code == 409


def test_a_retried_status_report_is_journalled_once(api):
    api.put("/api/express/tasks/upsert/j-1", {"title": "Job"}, format="json")
    for _ in range(3):
        response = api.post(
            "/api/express/tasks/j-1/status/new", {"type": "STARTED"}, format="json", HTTP_IDEMPOTENCY_KEY="s-1"
        )
        assert response.status_code == 201
    assert TaskStatus.objects.filter(type="STARTED").count() == 1


@pytest.mark.requires_postgres  # concurrent writers and row locks: SQLite serializes writers
@pytest.mark.django_db(transaction=True)
def test_parallel_retries_of_one_create_have_one_effect(org, token):
    group = Group.objects.create(organization=org, name="G")
    bodies: list[dict] = []

    def create() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        try:
            response = client.post("/api/task/", {"group_id": group.pk}, format="json", HTTP_IDEMPOTENCY_KEY="same")
            bodies.append(response.json())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Task.objects.count() == 1
    successes = [body for body in bodies if "identifier" in body]
    assert successes
    assert all(body == successes[0] for body in successes)
