"""Liveness, readiness, metrics and request ids in logs, against real PostgreSQL and Redis."""

import json
import logging
import socket
import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from taskhub.celery import app
from taskhub.health import HEARTBEAT_KEY, record_beat_heartbeat
from taskhub.logs import RequestIdFilter, bound_request_id, json_formatter
from tasks.models import Group
from webhooks.models import Delivery, Endpoint, Event

pytestmark = pytest.mark.requires_redis


@pytest.fixture
def beat_alive(db):
    record_beat_heartbeat()
    yield
    cache.delete(HEARTBEAT_KEY)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def samples(text: str, name: str) -> dict[tuple, float]:
    """{sorted label items: value} of one metric in a Prometheus text exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


# --- liveness and readiness -------------------------------------------------------------------


def test_healthz_answers_without_touching_the_database(client):
    response = client.get("/healthz")  # no db fixture: any query would raise

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_answers_any_host_over_plain_http(client, settings):
    settings.ALLOWED_HOSTS = ["taskhub.example.com"]
    settings.SECURE_SSL_REDIRECT = True

    assert client.get("/healthz", HTTP_HOST="10.0.0.7:8000").status_code == 200


def test_readyz_is_200_when_every_component_is_fine(client, beat_alive):
    response = client.get("/readyz")

    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["failing"] == []
    assert set(body["components"]) == {"database", "redis", "broker", "beat", "webhooks", "notifications"}
    assert body["components"]["beat"]["age_seconds"] < 60
    assert not any(name.startswith("X-RateLimit") for name in response.headers)


def test_readyz_names_redis_when_it_is_unreachable_and_recovers_when_it_returns(
    client, settings, beat_alive, closed_port
):
    real_redis, real_broker = settings.REDIS_URL, settings.CELERY_BROKER_URL
    settings.REDIS_URL = settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port}/7"

    down = client.get("/readyz")

    assert down.status_code == 503
    assert down.json()["failing"] == ["redis", "broker"]
    assert down.json()["components"]["redis"] == {"ok": False, "error": "unreachable"}
    assert str(closed_port) not in down.content.decode(), "no addresses in an unauthenticated body"

    settings.REDIS_URL, settings.CELERY_BROKER_URL = real_redis, real_broker
    assert client.get("/readyz").status_code == 200


def test_readyz_is_503_when_beats_heartbeat_is_stale(client, db):
    record_beat_heartbeat(now=time.time() - 90)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["beat"]
    assert response.json()["components"]["beat"]["age_seconds"] >= 90


def test_readyz_is_503_when_no_worker_has_run_beats_heartbeat(client, db):
    cache.delete(HEARTBEAT_KEY)

    assert client.get("/readyz").json()["failing"] == ["beat"]


def test_readyz_is_503_when_a_due_webhook_delivery_waits_too_long(client, org, beat_alive, settings):
    settings.READY_WEBHOOK_MAX_DUE_AGE_SECONDS = 300
    endpoint = Endpoint.objects.create(organization=org, url="https://crm.example.com/hooks")
    event = Event.objects.create(organization=org, type="task.created", payload={})
    Delivery.objects.create(event=event, endpoint=endpoint, next_attempt_at=timezone.now() - timedelta(minutes=10))

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["webhooks"]
    assert response.json()["components"]["webhooks"]["due"] == 1
    assert response.json()["components"]["webhooks"]["oldest_due_age_seconds"] >= 600


# --- metrics access -------------------------------------------------------------------------


def test_metrics_answer_loopback_by_default(client):
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")


def test_metrics_refuse_other_networks_without_the_token(client, settings):
    settings.METRICS_TOKEN = "scrape-me-0123456789"
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    outside = {"REMOTE_ADDR": "192.0.2.10"}

    assert client.get("/metrics", **outside).status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong", **outside).status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me-0123456789", **outside).status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.20.30.40").status_code == 200


def test_metrics_are_forbidden_when_neither_token_nor_network_matches(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = []

    assert client.get("/metrics").status_code == 403


def test_request_latency_is_labelled_by_route_not_by_path(api, client):
    api.get("/api/requests/0b6f6f3e-2a4c-4d55-8f3e-6b0f8c1d2e3f")

    text = client.get("/metrics").content.decode()

    routes = {dict(labels)["route"] for labels in samples(text, "taskhub_http_request_duration_seconds_count")}
    assert "api/requests/<uuid:request_id>" in routes
    assert not any("0b6f6f3e" in route for route in routes)


def test_metrics_expose_endpoint_health_and_queue_lengths(client, org):
    Endpoint.objects.create(organization=org, url="https://a.example.com/hooks")
    Endpoint.objects.create(organization=org, url="https://b.example.com/hooks", failing_since=timezone.now())
    Endpoint.objects.create(organization=org, url="https://c.example.com/hooks", enabled=False)

    text = client.get("/metrics").content.decode()

    endpoints = samples(text, "taskhub_webhook_endpoints")
    assert endpoints == {(("state", "healthy"),): 1, (("state", "failing"),): 1, (("state", "disabled"),): 1}
    queues = {dict(labels)["queue"] for labels in samples(text, "taskhub_celery_queue_length")}
    assert queues == {"default", "webhooks", "notifications"}
    assert set(samples(text, "taskhub_metrics_source_error").values()) == {0}


# --- logs -----------------------------------------------------------------------------------


def test_log_lines_are_json_with_the_request_id_and_extra_fields():
    record = logging.LogRecord("webhooks.delivery", logging.INFO, __file__, 1, "sent %s", ("msg_1",), None)
    record.delivery_id = 7
    with bound_request_id("req-json-1"):
        RequestIdFilter().filter(record)

    line = json.loads(json_formatter().format(record))

    assert line["message"] == "sent msg_1"
    assert line["request_id"] == "req-json-1"
    assert line["delivery_id"] == 7
    assert line["level"] == "INFO"


def test_logging_is_json_unless_debug(settings):
    handler = settings.LOGGING["handlers"]["console"]

    assert handler["filters"] == ["request_id"]
    assert handler["formatter"] in ("json", "text")


def test_a_sane_incoming_request_id_is_kept_and_returned(client, caplog):
    caplog.set_level(logging.INFO, logger="taskhub.request")
    caplog.handler.addFilter(RequestIdFilter())

    response = client.get("/api/me", HTTP_X_REQUEST_ID="lb-2f1c.77")

    assert response["X-Request-Id"] == "lb-2f1c.77"
    (line,) = [r for r in caplog.records if r.name == "taskhub.request"]
    assert line.request_id == "lb-2f1c.77"
    assert line.status == 401


def test_a_travtus_request_keeps_its_own_request_id_and_logs_both(api, org, caplog):
    Group.objects.create(organization=org, name="Riverside", external_ref="group-1")
    caplog.set_level(logging.INFO, logger="taskhub.request")
    caplog.handler.addFilter(RequestIdFilter())

    response = api.post("/api/task/", {"group_external_ref": "group-1"}, format="json", HTTP_X_REQUEST_ID="lb-9")

    travtus_id = response.json()["request_id"]
    assert response["X-Request-Id"] == travtus_id, "the Travtus contract: the header carries its request_id"
    (line,) = [r for r in caplog.records if r.name == "taskhub.request"]
    assert (line.request_id, line.travtus_request_id, line.route) == ("lb-9", travtus_id, "api/task/")


def test_an_insane_incoming_request_id_is_replaced(client):
    response = client.get("/api/me", HTTP_X_REQUEST_ID="two words <script>")

    assert response["X-Request-Id"] != "two words <script>"
    assert len(response["X-Request-Id"]) == 32


# --- queues ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("webhooks.tasks.deliver_webhook", "webhooks"),
        ("webhooks.tasks.deliver_endpoint", "webhooks"),
        ("webhooks.tasks.deliver_endpoints", "webhooks"),
        ("webhooks.tasks.sweep_webhook_deliveries", "webhooks"),
        ("notifications.tasks.send_notification", "notifications"),
        ("notifications.tasks.send_notifications", "notifications"),
        ("taskhub.tasks.beat_heartbeat", "default"),
        ("taskhub.tasks.prune_old_records", "default"),
    ],
)
def test_each_kind_of_work_has_its_own_queue(task, queue):
    route = app.amqp.router.route({}, task)["queue"]

    assert (route.name, route.exchange.name, route.routing_key) == (queue, queue, queue)
    assert app.amqp.queues[queue].routing_key == queue, "every queue is bound by its own key only"


def test_beat_runs_the_heartbeat_and_a_daily_prune(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    assert {"taskhub.tasks.beat_heartbeat", "taskhub.tasks.prune_old_records"} <= tasks
    assert settings.CELERY_BEAT_SCHEDULE["beat-heartbeat"]["schedule"] <= 15
