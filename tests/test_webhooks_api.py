"""The webhooks API: endpoints, secrets, tests, the message log, resend and recover — per organization."""

from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from tasks.models import Task
from webhooks import services
from webhooks.models import Delivery, Endpoint, Event
from webhooks.tasks import sweep_webhook_deliveries

pytest_plugins = ["tests.webhook_fixtures"]
pytestmark = pytest.mark.django_db

ENDPOINTS = "/api/webhooks/endpoints/"
MESSAGES = "/api/webhooks/messages/"


def create_endpoint(api, receiver, **fields):
    response = api.post(ENDPOINTS, {"url": receiver.url, **fields}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_creating_an_endpoint_returns_its_secret_once(api, receiver):
    body = create_endpoint(api, receiver, description="CRM", event_types=["task.created"], headers={"X-Key": "1"})

    assert body["secret"].startswith("whsec_")
    assert body["event_types"] == ["task.created"]
    assert body["enabled"] is True
    fetched = api.get(f"{ENDPOINTS}{body['id']}/").json()
    assert "secret" not in fetched
    assert "secret" not in api.get(ENDPOINTS).json()["results"][0]


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.8/hook", "http://169.254.169.254/latest/meta-data/", "ftp://hooks.example.com/", "http://[::1]/"],
)
def test_an_endpoint_that_can_never_be_delivered_to_is_refused_naming_url(api, url, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    response = api.post(ENDPOINTS, {"url": url}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "validation_error"
    assert list(error["fields"]) == ["url"]


def test_unknown_event_types_and_reserved_headers_are_refused(api, receiver):
    response = api.post(
        ENDPOINTS,
        {"url": receiver.url, "event_types": ["task.exploded"], "headers": {"webhook-id": "x"}},
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"event_types", "headers"}


def test_re_enabling_an_endpoint_clears_why_it_was_disabled(api, endpoint):
    Endpoint.objects.filter(pk=endpoint.pk).update(
        enabled=False, disabled_at=timezone.now(), disabled_reason="410", failing_since=timezone.now()
    )
    body = api.patch(f"{ENDPOINTS}{endpoint.pk}/", {"enabled": True}, format="json").json()
    assert body["enabled"] is True
    assert (body["disabled_at"], body["disabled_reason"], body["failing_since"]) == (None, "", None)


def test_rotate_secret_returns_the_new_secret_and_keeps_the_old_one_for_a_day(api, endpoint):
    old = endpoint.secret
    body = api.post(f"{ENDPOINTS}{endpoint.pk}/rotate-secret/").json()
    endpoint.refresh_from_db()
    assert body["secret"] == endpoint.secret != old
    assert endpoint.signing_secrets() == [endpoint.secret, old]
    assert endpoint.signing_secrets(timezone.now() + timedelta(hours=25)) == [endpoint.secret]


def test_sending_a_test_event_reaches_only_that_endpoint(
    api, make_endpoint, receiver, django_capture_on_commit_callbacks
):
    endpoint = make_endpoint(event_types=["task.created"])
    make_endpoint()
    with django_capture_on_commit_callbacks(execute=False):
        response = api.post(f"{ENDPOINTS}{endpoint.pk}/test/")
    assert response.status_code == 202
    event = Event.objects.get(pk=response.json()["message_id"])
    assert event.type == "webhook.test"
    assert [d.endpoint_id for d in event.deliveries.all()] == [endpoint.pk]

    sweep_webhook_deliveries()

    (request,) = receiver.wait_for(1)
    assert Webhook(endpoint.secret).verify(request.body, request.headers)["type"] == "webhook.test"


def test_another_organizations_endpoint_and_message_are_not_found(other_api, endpoint, org):
    event = services.emit(organization=org, type="task.created", data={"identifier": "x"})
    for method, path in [
        ("get", f"{ENDPOINTS}{endpoint.pk}/"),
        ("patch", f"{ENDPOINTS}{endpoint.pk}/"),
        ("delete", f"{ENDPOINTS}{endpoint.pk}/"),
        ("post", f"{ENDPOINTS}{endpoint.pk}/rotate-secret/"),
        ("post", f"{ENDPOINTS}{endpoint.pk}/test/"),
        ("get", f"{MESSAGES}{event.id}/"),
        ("post", f"{MESSAGES}{event.id}/resend/"),
    ]:
        response = getattr(other_api, method)(path, {}, format="json")
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["type"] == "not_found"
    assert other_api.get(ENDPOINTS).json()["results"] == []
    assert other_api.get(MESSAGES).json()["results"] == []


def test_the_message_log_filters_by_type_task_request_and_delivery_status(api, org, endpoint):
    task = Task.objects.create(organization=org, title="Fix the boiler", external_id="WO-7")
    created = services.emit(organization=org, type="task.created", data={"identifier": str(task.identifier)}, task=task)
    failed = services.emit(organization=org, type="request.failed", data={}, request_id="req-42")
    Delivery.objects.filter(event=failed).update(status=Delivery.Status.DEAD)

    def ids(query: str) -> list[str]:
        return [message["id"] for message in api.get(f"{MESSAGES}?{query}").json()["results"]]

    assert ids("") == [failed.id, created.id]
    assert ids("type=task.created") == [created.id]
    assert ids(f"task={task.identifier}") == [created.id]
    assert ids("request_id=req-42") == [failed.id]
    assert ids("status=dead") == [failed.id]
    assert ids("status=pending") == [created.id]


def test_the_message_log_is_paginated_newest_first(api, org, endpoint):
    emitted = [services.emit(organization=org, type="task.updated", data={"n": n}).id for n in range(5)]
    page = api.get(f"{MESSAGES}?page_size=2").json()
    assert [m["id"] for m in page["results"]] == emitted[::-1][:2]
    second = api.get(page["next"]).json()
    assert [m["id"] for m in second["results"]] == emitted[::-1][2:4]


def test_a_message_shows_its_deliveries_and_attempts(api, org, endpoint, receiver, django_capture_on_commit_callbacks):
    receiver.reply(500, "try later")
    with django_capture_on_commit_callbacks():
        event = services.emit(organization=org, type="task.created", data={"identifier": "x"})
    sweep_webhook_deliveries()
    Delivery.objects.filter(event=event).update(next_attempt_at=timezone.now())
    sweep_webhook_deliveries()

    body = api.get(f"{MESSAGES}{event.id}/").json()

    assert body["payload"]["data"] == {"identifier": "x"}
    (delivery,) = body["deliveries"]
    assert delivery["status"] == "succeeded"
    assert [(a["status_code"], a["response_body"]) for a in delivery["attempt_log"]] == [
        (500, "try later"),
        (200, "ok"),
    ]


def test_resending_a_message_delivers_it_again_with_the_same_id(
    api, org, endpoint, receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks():
        event = services.emit(organization=org, type="task.created", data={"identifier": "x"})
    sweep_webhook_deliveries()

    with django_capture_on_commit_callbacks():
        response = api.post(f"{MESSAGES}{event.id}/resend/")
    assert response.json() == {"resent": 1}
    sweep_webhook_deliveries()

    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == event.id


def test_recover_resends_failed_messages_since_a_date(api, org, endpoint, receiver, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        old = services.emit(organization=org, type="task.created", data={"n": 1})
        dead = services.emit(organization=org, type="task.created", data={"n": 2})
        fine = services.emit(organization=org, type="task.created", data={"n": 3})
    Delivery.objects.filter(event=old).update(
        status=Delivery.Status.DEAD, created_at=timezone.now() - timedelta(days=3)
    )
    Delivery.objects.filter(event=dead).update(status=Delivery.Status.DEAD, next_attempt_at=None)
    Delivery.objects.filter(event=fine).update(status=Delivery.Status.SUCCEEDED, next_attempt_at=None)

    since = (timezone.now() - timedelta(days=1)).isoformat()
    with django_capture_on_commit_callbacks():
        response = api.post(f"{ENDPOINTS}{endpoint.pk}/recover/", {"since": since}, format="json")
    assert response.status_code == 202
    assert response.json() == {"resent": 1}
    sweep_webhook_deliveries()
    (request,) = receiver.wait_for(1)
    assert request.headers["webhook-id"] == dead.id


def test_recover_goes_back_at_most_30_days(api, endpoint):
    since = (timezone.now() - timedelta(days=31)).isoformat()
    response = api.post(f"{ENDPOINTS}{endpoint.pk}/recover/", {"since": since}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["since"]


def test_deleting_an_endpoint_stops_its_deliveries(api, org, endpoint):
    assert api.delete(f"{ENDPOINTS}{endpoint.pk}/").status_code == 204
    assert services.emit(organization=org, type="task.created", data={}) is None


def test_message_ids_made_in_the_same_millisecond_still_sort_in_the_order_they_were_made():
    from webhooks.models import new_message_id

    ids = [new_message_id() for _ in range(2000)]  # many share a millisecond
    assert sorted(ids) == ids
    assert len(set(ids)) == len(ids)
