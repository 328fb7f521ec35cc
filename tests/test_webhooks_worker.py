"""End to end with a real Celery worker and a real Redis broker: commit -> worker -> signed request."""

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import transaction
from standardwebhooks.webhooks import Webhook

from taskhub.celery import app
from tests.celery_broker import own_broker
from webhooks import services
from webhooks.models import Delivery
from webhooks.tasks import sweep_webhook_deliveries

pytest_plugins = ["tests.webhook_fixtures"]
pytestmark = [pytest.mark.requires_redis, pytest.mark.django_db(transaction=True)]

BROKER_URL = "redis://127.0.0.1:6379/11"


@pytest.fixture
def broker():
    """The webhooks suite's own Redis database, emptied before and after."""
    with own_broker(BROKER_URL) as client:
        yield client


@pytest.fixture
def worker(broker):
    with start_worker(app, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=10) as running:
        yield running


def wait_until(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.05)


def test_an_event_emitted_in_a_transaction_reaches_the_receiver_through_the_worker(org, endpoint, receiver, worker):
    with transaction.atomic():
        event = services.emit(organization=org, type="task.created", data={"identifier": "abc", "version": 1})

    (request,) = receiver.wait_for(1, timeout=15)
    assert Webhook(endpoint.secret).verify(request.body, request.headers)["data"] == {"identifier": "abc", "version": 1}
    assert request.headers["webhook-id"] == event.id
    wait_until(lambda: Delivery.objects.get(event=event).status == Delivery.Status.SUCCEEDED)


def test_nothing_is_sent_for_a_rolled_back_transaction(org, endpoint, receiver, worker):
    def failing_change() -> None:
        with transaction.atomic():
            services.emit(organization=org, type="task.created", data={"identifier": "abc"})
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        failing_change()

    with transaction.atomic():
        services.emit(organization=org, type="task.created", data={"identifier": "after"})
    (request,) = receiver.wait_for(1)
    assert '"after"' in request.body


def test_flushing_redis_after_the_commit_still_delivers_through_the_sweeper(org, endpoint, receiver, broker):
    with transaction.atomic():
        event = services.emit(organization=org, type="task.created", data={"identifier": "lost-enqueue"})
    broker.flushdb()  # the enqueued first attempt is gone; the outbox row is not

    with start_worker(app, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=10):
        sweep_webhook_deliveries.delay()
        (request,) = receiver.wait_for(1, timeout=15)

    assert request.headers["webhook-id"] == event.id
    assert Delivery.objects.get(event=event).status == Delivery.Status.SUCCEEDED


def test_a_failed_attempt_is_retried_by_the_sweeper_on_the_worker(org, endpoint, receiver, worker):
    receiver.reply(500, "busy")
    with transaction.atomic():
        event = services.emit(organization=org, type="task.created", data={"identifier": "retry"})
    wait_until(lambda: Delivery.objects.get(event=event).status == Delivery.Status.FAILED)

    Delivery.objects.filter(event=event).update(next_attempt_at=Delivery.objects.get(event=event).created_at)
    sweep_webhook_deliveries.delay()

    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == event.id
    wait_until(lambda: Delivery.objects.get(event=event).status == Delivery.Status.SUCCEEDED)
