"""Idempotency-Key: replays without a second effect, conflicts, expiry, and parallel duplicates."""

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connections
from django.utils import timezone
from rest_framework.test import APIClient

from taskhub.idempotency import prune_idempotency_records
from taskhub.models import AccessToken, IdempotencyRecord
from tasks.models import Group
from tests import idempotency_urls

pytestmark = pytest.mark.urls("tests.idempotency_urls")


def create_group(api, key: str | None, name: str = "North", **data):
    headers = {"Idempotency-Key": key} if key else {}
    return api.post("/api/groups", {"name": name, **data}, format="json", headers=headers)


def client_for(org) -> APIClient:
    return APIClient(HTTP_AUTHORIZATION=f"Bearer {AccessToken.issue(org)[1]}")


@pytest.mark.django_db
def test_a_retry_replays_the_first_response_without_a_second_effect(api):
    first = create_group(api, "key-1")
    again = create_group(api, "key-1")
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Group.objects.count() == 1


@pytest.mark.django_db
def test_without_a_key_every_request_has_its_effect(api):
    create_group(api, None)
    create_group(api, None)
    assert Group.objects.count() == 2


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_a_conflict(api):
    create_group(api, "key-1", name="North")
    response = create_group(api, "key-1", name="South")
    assert response.status_code == 409
    assert response.json()["error"]["type"] == "conflict"
    assert "different request body" in response.json()["error"]["message"]
    assert list(Group.objects.values_list("name", flat=True)) == ["North"]


@pytest.mark.django_db
def test_keys_are_scoped_to_the_organization_and_the_route(api, other_org):
    create_group(api, "shared")
    other = create_group(client_for(other_org), "shared")
    assert other.status_code == 201
    assert "Idempotent-Replayed" not in other
    assert Group.objects.count() == 2


@pytest.mark.django_db
def test_a_client_error_is_stored_and_replayed_too(api):
    first = create_group(api, "key-1", name="")
    again = create_group(api, "key-1", name="")
    assert first.status_code == again.status_code == 400
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_a_server_error_is_not_stored_and_its_writes_are_rolled_back(api):
    idempotency_urls.FAILURES_LEFT["count"] = 1
    crashing = APIClient(raise_request_exception=False, HTTP_AUTHORIZATION=api._credentials["HTTP_AUTHORIZATION"])
    assert create_group(crashing, "key-1").status_code == 500
    assert not Group.objects.exists()
    assert not IdempotencyRecord.objects.exists()
    retry = create_group(api, "key-1")
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry
    assert Group.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "k" * 256, "naïve"])
def test_a_malformed_key_is_a_validation_error(api, key):
    response = api.post("/api/groups", {"name": "North"}, format="json", headers={"Idempotency-Key": key})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"Idempotency-Key": [response.json()["error"]["message"]]}
    assert not Group.objects.exists()


@pytest.mark.django_db
def test_keys_expire_after_24_hours_and_are_pruned(org):
    api = client_for(org)  # a token that outlives the trip through time
    create_group(api, "key-1")
    with time_machine.travel(timezone.now() + timedelta(hours=24, minutes=1)):
        later = create_group(api, "key-1")
        assert later.status_code == 201
        assert "Idempotent-Replayed" not in later
        assert Group.objects.count() == 2
        assert create_group(api, "key-1")["Idempotent-Replayed"] == "true"
    with time_machine.travel(timezone.now() + timedelta(hours=49)):
        assert prune_idempotency_records() == 1
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db
def test_a_key_within_24_hours_still_replays(api):
    create_group(api, "key-1")
    with time_machine.travel(timezone.now() + timedelta(hours=23)):
        assert prune_idempotency_records() == 0
    assert IdempotencyRecord.objects.count() == 1


def in_threads(count: int, target) -> list:
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = target()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.requires_postgres  # concurrent writers and row locks: SQLite serializes writers
@pytest.mark.django_db(transaction=True)
def test_ten_parallel_requests_with_one_key_have_one_effect(org):
    header = f"Bearer {AccessToken.issue(org)[1]}"
    responses = in_threads(10, lambda: create_group(APIClient(HTTP_AUTHORIZATION=header), "parallel"))
    assert [response.status_code for response in responses] == [201] * 10
    assert len({response.content for response in responses}) == 1
    assert sum("Idempotent-Replayed" not in response for response in responses) == 1
    assert Group.objects.count() == 1


@pytest.mark.requires_postgres  # concurrent writers and row locks: SQLite serializes writers
@pytest.mark.django_db(transaction=True)
def test_a_duplicate_of_a_slow_request_gets_in_progress_then_the_replay(org, settings):
    settings.IDEMPOTENCY_WAIT_SECONDS = 0.3
    header = f"Bearer {AccessToken.issue(org)[1]}"
    idempotency_urls.ENTERED.clear()
    idempotency_urls.RELEASE.clear()
    first: list = []

    def slow() -> None:
        try:
            first.append(create_group(APIClient(HTTP_AUTHORIZATION=header), "slow", hold=True))
        finally:
            connections.close_all()

    thread = threading.Thread(target=slow)
    thread.start()
    try:
        assert idempotency_urls.ENTERED.wait(timeout=10)
        busy = create_group(APIClient(HTTP_AUTHORIZATION=header), "slow", hold=True)
        assert busy.status_code == 409
        assert "in progress" in busy.json()["error"]["message"]
    finally:
        idempotency_urls.RELEASE.set()
        thread.join(timeout=10)
    assert first[0].status_code == 201
    replay = create_group(APIClient(HTTP_AUTHORIZATION=header), "slow", hold=True)
    assert replay["Idempotent-Replayed"] == "true"
    assert Group.objects.count() == 1
