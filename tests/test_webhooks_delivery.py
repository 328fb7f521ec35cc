"""Delivery: signed with Standard Webhooks, retried on the schedule, endpoints disabled when gone."""

import json
import random
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from webhooks import services
from webhooks.models import Delivery, Endpoint, Event
from webhooks.schedule import RETRY_SCHEDULE, retry_delay
from webhooks.tasks import deliver_webhook, sweep_webhook_deliveries

pytest_plugins = ["tests.webhook_fixtures"]
pytestmark = pytest.mark.django_db

TASK_DATA = {"identifier": "7d5c…", "external_id": "WO-1", "version": 3, "extra_fields": {"crm": "x"}}


def emit(org, django_capture_on_commit_callbacks, type="task.created", data=None, **kwargs) -> Event:
    """Emit as a service would; the enqueue-on-commit is dropped so tests drive delivery themselves."""
    with django_capture_on_commit_callbacks():
        return services.emit(organization=org, type=type, data=data or TASK_DATA, **kwargs)


def make_due(event: Event) -> None:
    Delivery.objects.filter(event=event).update(next_attempt_at=timezone.now())


def verified(endpoint: Endpoint, request) -> dict:
    return Webhook(endpoint.secret).verify(request.body, request.headers)


def test_emit_writes_the_event_and_a_delivery_per_subscribed_endpoint(org, make_endpoint, other_org):
    everything = make_endpoint()
    statuses_only = make_endpoint(event_types=["task.status_changed"])
    make_endpoint(event_types=["task.created"], enabled=False)
    make_endpoint(organization=other_org)

    event = services.emit(organization=org, type="task.created", data=TASK_DATA, request_id="req-1")

    assert event.id.startswith("msg_")
    assert event.payload["type"] == "task.created"
    assert event.payload["data"] == TASK_DATA
    assert [d.endpoint for d in event.deliveries.all()] == [everything]
    assert statuses_only.deliveries.count() == 0


def test_emit_without_a_subscribed_endpoint_writes_nothing(org):
    assert services.emit(organization=org, type="task.created", data=TASK_DATA) is None
    assert Event.objects.count() == 0


def test_emit_costs_the_same_queries_for_one_or_many_endpoints(org, make_endpoint, django_assert_num_queries):
    make_endpoint()
    with django_assert_num_queries(3):
        services.emit(organization=org, type="task.created", data=TASK_DATA)
    for _ in range(20):
        make_endpoint()
    with django_assert_num_queries(3):
        services.emit(organization=org, type="task.created", data=TASK_DATA)


def test_emit_enqueues_the_first_attempt_only_on_commit(org, endpoint, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        services.emit(organization=org, type="task.created", data=TASK_DATA)
    assert len(callbacks) == 1


def test_the_receiver_verifies_the_signature_with_standardwebhooks(
    org, endpoint, receiver, django_capture_on_commit_callbacks
):
    event = emit(org, django_capture_on_commit_callbacks)

    deliver_webhook(event.deliveries.get().pk)

    (request,) = receiver.wait_for(1)
    assert verified(endpoint, request) == {
        "type": "task.created",
        "timestamp": event.payload["timestamp"],
        "data": TASK_DATA,
    }
    assert request.headers["webhook-id"] == event.id
    assert request.headers["content-type"] == "application/json"
    assert event.deliveries.get().status == Delivery.Status.SUCCEEDED


def test_custom_headers_are_sent_but_cannot_replace_the_signature(
    org, make_endpoint, receiver, django_capture_on_commit_callbacks
):
    endpoint = make_endpoint(headers={"X-Api-Key": "k-123", "webhook-signature": "forged"})
    event = emit(org, django_capture_on_commit_callbacks)
    deliver_webhook(event.deliveries.get().pk)
    (request,) = receiver.wait_for(1)
    assert request.headers["x-api-key"] == "k-123"
    assert verified(endpoint, request)


def test_500_then_200_is_delivered_on_the_retry_with_the_same_webhook_id(
    org, endpoint, receiver, django_capture_on_commit_callbacks
):
    receiver.reply(500, "boom")
    event = emit(org, django_capture_on_commit_callbacks)

    sweep_webhook_deliveries()
    delivery = event.deliveries.get()
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.last_status_code == 500
    assert timedelta(seconds=3) <= delivery.next_attempt_at - timezone.now() <= timedelta(seconds=6)
    sweep_webhook_deliveries()
    assert len(receiver.received) == 1, "not due yet"

    make_due(event)
    sweep_webhook_deliveries()

    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == event.id
    assert verified(endpoint, second)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Delivery.Status.SUCCEEDED, 2, 200)
    log = list(delivery.attempt_log.values_list("status_code", "response_body"))
    assert log == [(500, "boom"), (200, "ok")]


def test_a_resent_message_keeps_its_webhook_id(org, endpoint, receiver, django_capture_on_commit_callbacks):
    event = emit(org, django_capture_on_commit_callbacks)
    sweep_webhook_deliveries()
    with django_capture_on_commit_callbacks():
        services.message_resend(event=event)
    sweep_webhook_deliveries()
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == event.id
    assert first.body == second.body


def test_410_disables_the_endpoint_at_once_and_emits_endpoint_disabled(
    org, make_endpoint, receiver, django_capture_on_commit_callbacks
):
    gone = make_endpoint(event_types=["task.created"])
    watcher = make_endpoint(event_types=["endpoint.disabled"])
    receiver.reply(410, "gone")
    event = emit(org, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks():
        sweep_webhook_deliveries()

    gone.refresh_from_db()
    assert not gone.enabled
    assert gone.disabled_at is not None
    assert "410" in gone.disabled_reason
    assert event.deliveries.get().status == Delivery.Status.DEAD
    notice = Event.objects.get(type="endpoint.disabled")
    assert notice.payload["data"]["endpoint_id"] == gone.pk
    assert [d.endpoint for d in notice.deliveries.all()] == [watcher]


def test_redirects_are_not_followed(org, endpoint, receiver, django_capture_on_commit_callbacks):
    receiver.reply(302, "", headers={"Location": receiver.url + "/elsewhere"})
    event = emit(org, django_capture_on_commit_callbacks)
    sweep_webhook_deliveries()
    assert len(receiver.received) == 1
    delivery = event.deliveries.get()
    assert (delivery.status, delivery.last_status_code) == (Delivery.Status.FAILED, 302)
    assert "Redirect" in delivery.last_error


def test_a_hanging_receiver_times_out_and_waits_at_least_a_minute(
    org, endpoint, receiver, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    receiver.reply(200, delay=30)
    event = emit(org, django_capture_on_commit_callbacks)

    sweep_webhook_deliveries()

    delivery = event.deliveries.get()
    attempt = delivery.attempt_log.get()
    assert attempt.status_code is None
    assert "Timed out" in attempt.error
    assert attempt.latency_ms < 5000
    assert delivery.next_attempt_at - timezone.now() >= timedelta(seconds=59)


def test_429_honours_retry_after(org, endpoint, receiver, django_capture_on_commit_callbacks):
    receiver.reply(429, "slow down", headers={"Retry-After": "600"})
    event = emit(org, django_capture_on_commit_callbacks)
    sweep_webhook_deliveries()
    wait = event.deliveries.get().next_attempt_at - timezone.now()
    assert timedelta(seconds=590) <= wait <= timedelta(seconds=600)


def test_the_response_log_keeps_only_the_first_20_kb(org, endpoint, receiver, django_capture_on_commit_callbacks):
    receiver.reply(200, "x" * 50_000)
    event = emit(org, django_capture_on_commit_callbacks)
    sweep_webhook_deliveries()
    assert len(event.deliveries.get().attempt_log.get().response_body) == 20 * 1024


def test_five_days_of_failure_disable_the_endpoint_and_a_success_resets_the_clock(
    org, endpoint, receiver, django_capture_on_commit_callbacks
):
    receiver.always(500, "down")
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        emit(org, django_capture_on_commit_callbacks)
        sweep_webhook_deliveries()
    endpoint.refresh_from_db()
    assert endpoint.failing_since == start

    with time_machine.travel(start + timedelta(days=4), tick=False):
        receiver.always(200)
        emit(org, django_capture_on_commit_callbacks)
        sweep_webhook_deliveries()
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None
    assert endpoint.enabled

    receiver.always(500, "down again")
    with time_machine.travel(start + timedelta(days=5), tick=False):
        emit(org, django_capture_on_commit_callbacks)
        sweep_webhook_deliveries()
    with time_machine.travel(start + timedelta(days=10), tick=False):
        emit(org, django_capture_on_commit_callbacks)
        sweep_webhook_deliveries()
    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert "5 days" in endpoint.disabled_reason


def test_the_last_scheduled_failure_makes_the_delivery_dead(
    org, endpoint, receiver, django_capture_on_commit_callbacks
):
    receiver.always(500)
    event = emit(org, django_capture_on_commit_callbacks)
    for _ in RETRY_SCHEDULE:
        make_due(event)
        sweep_webhook_deliveries()
    delivery = event.deliveries.get()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == (Delivery.Status.DEAD, 10, None)


def test_a_delivery_leased_by_one_worker_is_not_sent_by_another(
    org, endpoint, receiver, django_capture_on_commit_callbacks
):
    event = emit(org, django_capture_on_commit_callbacks)
    delivery = event.deliveries.get()
    from webhooks.delivery import claim

    assert claim(delivery.pk) is not None
    assert claim(delivery.pk) is None
    sweep_webhook_deliveries()
    deliver_webhook(delivery.pk)
    assert receiver.received == []


def test_a_final_delivery_is_not_sent_again_by_a_duplicate_task(
    org, endpoint, receiver, django_capture_on_commit_callbacks
):
    event = emit(org, django_capture_on_commit_callbacks)
    delivery_id = event.deliveries.get().pk
    deliver_webhook(delivery_id)
    deliver_webhook(delivery_id)
    assert len(receiver.received) == 1


def test_org_a_endpoint_never_receives_org_b_events(
    org, other_org, make_endpoint, receiver, django_capture_on_commit_callbacks
):
    make_endpoint(organization=org)
    emit(other_org, django_capture_on_commit_callbacks, data={"identifier": "globex-task"})
    sweep_webhook_deliveries()
    assert receiver.received == []
    assert Event.objects.filter(organization=other_org).count() == 0


def test_after_rotation_both_secrets_verify_for_24_hours_then_only_the_new(
    org, endpoint, receiver, django_capture_on_commit_callbacks
):
    old_secret = endpoint.secret
    rotated_at = timezone.now()
    with time_machine.travel(rotated_at, tick=False):
        new_secret = services.endpoint_rotate_secret(endpoint=endpoint)
    assert new_secret != old_secret
    assert new_secret.startswith("whsec_")

    with time_machine.travel(rotated_at + timedelta(hours=23), tick=False):
        emit(org, django_capture_on_commit_callbacks)
        sweep_webhook_deliveries()
        request = receiver.wait_for(1)[-1]
        assert len(request.headers["webhook-signature"].split(" ")) == 2
        assert Webhook(old_secret).verify(request.body, request.headers)
        assert Webhook(new_secret).verify(request.body, request.headers)

    with time_machine.travel(rotated_at + timedelta(hours=25), tick=False):
        emit(org, django_capture_on_commit_callbacks)
        sweep_webhook_deliveries()
        request = receiver.wait_for(2)[-1]
        assert Webhook(new_secret).verify(request.body, request.headers)
        with pytest.raises(Exception, match="No matching signature"):
            Webhook(old_secret).verify(request.body, request.headers)


def test_a_slow_endpoint_holds_at_most_its_in_flight_allowance(
    org, make_endpoint, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = 2
    slow, other = make_endpoint(), make_endpoint()
    for _ in range(5):
        emit(org, django_capture_on_commit_callbacks)
    from webhooks.delivery import claim_due

    claimed = claim_due(100)
    assert sorted(d.endpoint_id for d in claimed) == [slow.pk, slow.pk, other.pk, other.pk]
    assert claim_due(100) == []


def test_the_payload_is_frozen_at_emit_time(org, endpoint, receiver, django_capture_on_commit_callbacks):
    data = {"identifier": "abc", "version": 1}
    event = emit(org, django_capture_on_commit_callbacks, data=data)
    data["version"] = 2
    sweep_webhook_deliveries()
    assert json.loads(receiver.wait_for(1)[0].body)["data"]["version"] == 1
    assert event.deliveries.get().status == Delivery.Status.SUCCEEDED


@pytest.mark.parametrize(
    ("failures", "base_seconds"),
    [(0, 0), (1, 5), (2, 300), (3, 1800), (4, 7200), (5, 18000), (6, 36000), (7, 50400), (8, 72000), (9, 86400)],
)
def test_the_retry_schedule_with_jitter(failures, base_seconds):
    low = retry_delay(failures, rng=_FixedRandom(0.8))
    high = retry_delay(failures, rng=_FixedRandom(1.2))
    assert low == timedelta(seconds=base_seconds * 0.8)
    assert high == timedelta(seconds=base_seconds * 1.2)
    for _ in range(50):
        assert low <= retry_delay(failures) <= high


def test_the_schedule_ends_after_ten_attempts():
    assert retry_delay(10) is None


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        (None, timedelta(seconds=60)),
        (timedelta(seconds=5), timedelta(seconds=60)),
        (timedelta(hours=3), timedelta(hours=3)),
        (timedelta(days=9), timedelta(hours=24)),
    ],
)
def test_throttled_retries_wait_at_least_a_minute_and_retry_after_is_clamped(retry_after, expected):
    assert retry_delay(1, throttled=True, retry_after=retry_after, rng=_FixedRandom(1.0)) == expected


class _FixedRandom(random.Random):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def uniform(self, a: float, b: float) -> float:
        return self.factor


def test_a_delivery_whose_worker_died_mid_attempt_is_sent_when_its_lease_ends(
    org, endpoint, receiver, django_capture_on_commit_callbacks
):
    from webhooks.delivery import claim

    event = emit(org, django_capture_on_commit_callbacks)
    delivery = event.deliveries.get()
    assert claim(delivery.pk) is not None  # a worker took it, then vanished without recording anything
    sweep_webhook_deliveries()
    assert receiver.received == []

    Delivery.objects.filter(pk=delivery.pk).update(locked_until=timezone.now() - timedelta(seconds=1))
    sweep_webhook_deliveries()

    (request,) = receiver.wait_for(1)
    assert request.headers["webhook-id"] == event.id
    assert event.deliveries.get().status == Delivery.Status.SUCCEEDED
