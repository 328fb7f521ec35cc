"""With a real Celery worker and Redis broker: a request's id reaches the worker's delivery logs,
metrics count the delivery, and beat's heartbeat task makes readiness pass."""

import logging
import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.cache import cache
from prometheus_client.parser import text_string_to_metric_families

from taskhub.celery import app
from taskhub.health import HEARTBEAT_KEY, beat_heartbeat_age
from taskhub.logs import RequestIdFilter
from taskhub.tasks import beat_heartbeat
from tests.celery_broker import own_broker
from webhooks.models import Delivery

pytest_plugins = ["tests.webhook_fixtures"]
pytestmark = [pytest.mark.requires_redis, pytest.mark.django_db(transaction=True)]

BROKER_URL = "redis://127.0.0.1:6379/7"


@pytest.fixture
def broker(settings):
    """This suite's own Redis database, emptied before and after."""
    with own_broker(BROKER_URL, settings) as client:
        yield client


@pytest.fixture
def worker(broker):
    with start_worker(
        app, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=10, queues=["default", "webhooks"]
    ) as running:
        yield running


@pytest.fixture
def logs(caplog):
    """Request and delivery records, stamped with the request id as the console handler does.

    Levels are set per logger: a worker starting inside a test sets the root logger's level.
    """
    for name in ("taskhub.request", "webhooks.delivery"):
        caplog.set_level(logging.INFO, logger=name)
    caplog.handler.addFilter(RequestIdFilter())
    return caplog


def wait_until(condition, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.05)
    return result


def delivery_lines(caplog, webhook_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "webhooks.delivery" and getattr(r, "webhook_id", "") == webhook_id]


def metric(text: str, name: str, **labels) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"{name}{labels} not in the scrape")


def test_a_requests_id_is_on_the_worker_log_lines_of_the_deliveries_it_caused(api, endpoint, receiver, worker, logs):
    response = api.post(f"/api/webhooks/endpoints/{endpoint.pk}/test/", HTTP_X_REQUEST_ID="req-ops-4711")
    assert response.status_code in (200, 201, 202), response.content
    (sent,) = receiver.wait_for(1)
    webhook_id = sent.headers["webhook-id"]

    (line,) = wait_until(lambda: delivery_lines(logs, webhook_id))

    assert response["X-Request-Id"] == "req-ops-4711"
    assert line.request_id == "req-ops-4711"
    assert line.threadName != "MainThread" or line.task == "webhooks.tasks.deliver_webhook"
    assert (line.outcome, line.status_code, line.endpoint_id) == ("succeeded", 200, endpoint.pk)
    assert line.delivery_id == Delivery.objects.get(event_id=webhook_id).pk
    request_lines = [r for r in logs.records if r.name == "taskhub.request" and r.request_id == "req-ops-4711"]
    assert [r.route for r in request_lines] == ["api/webhooks/endpoints/(?P<pk>[^/.]+)/test/$"]


def test_deliveries_the_sweeper_claims_log_their_webhook_and_delivery_ids(org, endpoint, receiver, broker, logs):
    from webhooks import services
    from webhooks.tasks import sweep_webhook_deliveries

    event = services.emit(organization=org, type="task.created", data={"identifier": "swept"})
    broker.flushdb()  # the enqueued attempt is lost; the sweeper finds the row
    with start_worker(app, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=10, queues=["webhooks"]):
        # The first worker started in a process sets up logging and drops the root logger's other
        # handlers, caplog's among them: this test's worker starts after its `logs` fixture.
        logging.getLogger().addHandler(logs.handler)
        sweep_webhook_deliveries.delay()
        (line,) = wait_until(lambda: delivery_lines(logs, event.id))

    assert line.delivery_id == Delivery.objects.get(event=event).pk
    assert line.request_id.startswith("task-"), "sweeper work logs under the sweep task's own id"


def test_metrics_count_a_delivery_made_by_the_worker(client, api, endpoint, receiver, worker):
    before = metric(client.get("/metrics").content.decode(), "taskhub_webhook_attempts_recent", outcome="succeeded")
    api.post(f"/api/webhooks/endpoints/{endpoint.pk}/test/")
    receiver.wait_for(1)
    wait_until(lambda: Delivery.objects.filter(status=Delivery.Status.SUCCEEDED).exists())

    text = client.get("/metrics").content.decode()

    assert metric(text, "taskhub_webhook_attempts_recent", outcome="succeeded") == before + 1
    assert metric(text, "taskhub_webhook_attempts_recent", outcome="failed") == 0
    assert metric(text, "taskhub_webhook_deliveries", status="dead") == 0
    assert metric(text, "taskhub_outbox_due", outbox="webhooks") == 0
    assert metric(text, "taskhub_celery_queue_length", queue="webhooks") == 0


def test_the_heartbeat_task_run_by_a_worker_makes_beat_ready(client, worker):
    cache.delete(HEARTBEAT_KEY)  # a heartbeat left by another test must not pass for this one
    beat_heartbeat.delay()

    wait_until(lambda: beat_heartbeat_age() is not None)

    assert client.get("/readyz").json()["components"]["beat"]["ok"] is True
