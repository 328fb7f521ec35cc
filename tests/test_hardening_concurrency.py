"""Real concurrency against PostgreSQL: parallel requests, each thread on its own connection.

Parallel upserts of one external id make one task with a consistent state; parallel status
reports leave a complete journal; parallel retries with one Idempotency-Key have one effect.
"""

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from rest_framework.test import APIClient

from taskhub.models import AccessToken, IdempotencyRecord
from tasks.models import Group, Task, TaskRequest, TaskStatus
from tasks.services import TaskChanges, task_upsert

pytestmark = [pytest.mark.requires_postgres, pytest.mark.django_db(transaction=True)]

THREADS = 20  # connections held at once; well under PostgreSQL's default 100
REQUESTS = 50


@pytest.fixture(autouse=True)
def generous_rate_limit(settings):
    settings.API_RATE_LIMIT = "100000/minute"


@pytest.fixture
def raw_token(org) -> str:
    return AccessToken.issue(org, ttl=3600)[1]


def in_parallel(count: int, request: Callable[[APIClient, int], object], token: str) -> list:
    """Run `request(client, i)` for i in range(count) on THREADS threads released together."""
    start = threading.Barrier(min(count, THREADS))

    def run(i: int):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        try:
            if i < THREADS:
                start.wait(timeout=30)
            return request(client, i)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(run, range(count)))


def test_fifty_parallel_upserts_of_one_external_id_make_one_task_with_one_requests_state(org, raw_token):
    def upsert(client: APIClient, i: int):
        body = {"title": f"Request {i}", "extra_fields": {"request": i}}
        response = client.put("/api/express/tasks/upsert/race-1", body, format="json")
        return i, response.status_code, response.json()

    results = in_parallel(REQUESTS, upsert, raw_token)

    statuses = Counter(status for _, status, _ in results)
    assert statuses == {201: 1, 200: REQUESTS - 1}, results
    versions = [body["version"] for _, _, body in results]
    assert sorted(versions) == list(range(1, REQUESTS + 1)), "each effective upsert is exactly one new version"
    task = Task.objects.get(organization=org, external_id="race-1")
    last, _, _ = max(results, key=lambda result: result[2]["version"])
    assert task.version == REQUESTS
    assert task.title == f"Request {last}"
    assert task.extra_fields == {"request": last}, "title and extra_fields come from the same request"


def test_parallel_status_reports_leave_a_complete_journal_and_the_last_status(org, raw_token):
    task = task_upsert(organization=org, external_id="journal-1", changes=TaskChanges(fields={"title": "Boiler"})).task
    kinds = ["ENROUTE", "STARTED", "EXCEPTION", "PREPARING", "CONFIRMED"]

    def report(client: APIClient, i: int):
        body = {"type": kinds[i % len(kinds)], "notes": f"report {i}"}
        return client.post("/api/express/tasks/journal-1/status/new", body, format="json").status_code

    codes = in_parallel(30, report, raw_token)

    assert codes == [201] * 30
    task.refresh_from_db()
    journal = list(TaskStatus.objects.filter(task=task, source=TaskStatus.Source.API).order_by("time", "id"))
    assert sorted(entry.notes for entry in journal) == sorted(f"report {i}" for i in range(30))
    assert task.status == journal[-1].type
    assert task.status_changed_at == journal[-1].time
    assert task.version == 1 + 30
    assert [entry.id for entry in journal] == sorted(entry.id for entry in journal), "time order is commit order"


def test_parallel_retries_with_one_idempotency_key_have_one_effect(org, raw_token):
    group = Group.objects.create(organization=org, name="Harbour View")
    body = {"group_id": str(group.identifier), "title": "Leaking radiator", "importance": "high"}

    def create(client: APIClient, i: int):
        response = client.post("/api/task/", body, format="json", HTTP_IDEMPOTENCY_KEY="retry-7f3a")
        return response.status_code, response.json(), response.headers.get("Idempotent-Replayed")

    results = in_parallel(THREADS, create, raw_token)

    assert {status for status, _, _ in results} == {200}, results
    assert len({body["identifier"] for _, body, _ in results}) == 1
    assert len({body["request_id"] for _, body, _ in results}) == 1
    assert [replayed for _, _, replayed in results].count(None) == 1, "one request ran; the others were replays"
    assert Task.objects.filter(organization=org).count() == 1
    assert TaskRequest.objects.filter(organization=org).count() == 1
    assert IdempotencyRecord.objects.filter(organization=org, key="retry-7f3a").count() == 1


def test_parallel_creates_with_distinct_external_refs_all_succeed(org, raw_token):
    group = Group.objects.create(organization=org, name="Harbour View")

    def create(client: APIClient, i: int):
        body = {"group_id": str(group.identifier), "external_ref": f"wo-{i}", "title": f"Order {i}"}
        return client.post("/api/task/", body, format="json").status_code

    assert in_parallel(REQUESTS, create, raw_token) == [200] * REQUESTS
    assert Task.objects.filter(organization=org).count() == REQUESTS
