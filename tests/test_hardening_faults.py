"""Crashes and faults: a worker killed mid-delivery, Redis unreachable, a lost enqueue, a dropped database connection.

Each fault is made for real and only to what this suite owns: its own Celery worker process,
its own Redis database, its own PostgreSQL backend. The machine's servers keep running.
"""

import io
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from unittest import mock

import psycopg
import pytest
import time_machine
from celery.contrib.testing.worker import start_worker
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from taskhub.celery import app
from taskhub.models import AccessToken
from taskhub.wsgi import application
from tests.celery_broker import own_broker, use_broker
from webhooks.delivery import deliver_due, lease_length
from webhooks.models import Delivery, Event
from webhooks.tasks import sweep_webhook_deliveries

pytest_plugins = ["tests.webhook_fixtures"]
pytestmark = [pytest.mark.requires_redis, pytest.mark.requires_postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
CLOSED_PORT_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connections are refused at once


def broker_url() -> str:
    """The suite's own Redis database (REDIS_URL's), never another one."""
    return os.environ["REDIS_URL"]


@pytest.fixture
def broker():
    with own_broker(broker_url()) as client:
        yield client


@pytest.fixture
def raw_token(org, settings) -> str:
    settings.API_RATE_LIMIT = "100000/minute"
    return AccessToken.issue(org, ttl=3600)[1]


def wait_until(condition, timeout: float = 20.0, message: str = "condition not met before the deadline") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.05)


def upsert(api, external_id: str, **body):
    return api.put(f"/api/express/tasks/upsert/{external_id}", {"title": "Fix sink", **body}, format="json")


# --- a worker killed mid-delivery -------------------------------------------------------------


def worker_process(tmp_path: Path) -> subprocess.Popen:
    """`celery -A taskhub worker` as its own process, on this test's database and broker."""
    database = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "REDIS_URL": broker_url(),
        "CELERY_BROKER_URL": broker_url(),
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "WEBHOOK_TIMEOUT_SECONDS": "10",
        "TASKHUB_VAR_DIR": str(tmp_path),
    }
    command = [sys.executable, "-m", "celery", "-A", "taskhub", "worker", "--pool=solo", "--loglevel=WARNING",
               "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_a_worker_killed_mid_delivery_is_replaced_by_the_sweeper_with_the_same_webhook_id(
    api, endpoint, receiver, broker, tmp_path
):
    receiver.reply(200, delay=60)  # the first request hangs: the worker is mid-delivery when it dies
    worker = worker_process(tmp_path)
    try:
        assert upsert(api, "kill-9").status_code == 201
        (first,) = receiver.wait_for(1, timeout=30)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    delivery = Delivery.objects.get(endpoint=endpoint)
    assert delivery.status == Delivery.Status.PENDING
    assert delivery.locked_until > timezone.now(), "the dead worker's lease still holds the row"

    assert deliver_due() == 0, "nobody takes a leased row before its lease ends"
    with time_machine.travel(timezone.now() + lease_length() + timedelta(seconds=1), tick=True):
        assert deliver_due() == 1

    second = receiver.received[1]
    assert second.headers["webhook-id"] == first.headers["webhook-id"] == delivery.event_id
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SUCCEEDED
    assert delivery.attempts == 1


# --- Redis unreachable ------------------------------------------------------------------------


@pytest.fixture
def redis_down(settings, broker):
    """Broker, cache and rate-limit store all pointed at a port where nothing listens."""
    settings.REDIS_URL = CLOSED_PORT_URL
    cache = {"BACKEND": "taskhub.cache.RedisCache", "LOCATION": CLOSED_PORT_URL}
    settings.CACHES = {"default": cache}
    use_broker(CLOSED_PORT_URL)
    yield
    use_broker(broker_url())


def test_with_redis_unreachable_writes_are_accepted_into_the_outbox_and_delivered_once_it_is_back(
    api, endpoint, receiver, broker, redis_down, settings
):
    responses = [
        upsert(api, "outage-1"),
        upsert(api, "outage-2", details="second"),
        api.post("/api/express/tasks/outage-1/status/new", {"type": "ENROUTE"}, format="json"),
        api.post(f"/api/webhooks/endpoints/{endpoint.pk}/test/", format="json"),
    ]

    assert [response.status_code for response in responses] == [201, 201, 201, 202]
    assert "X-RateLimit-Limit" not in responses[0], "the rate limiter failed open"
    committed = set(Event.objects.values_list("id", flat=True))
    assert len(committed) == 4
    assert receiver.received == []

    settings.REDIS_URL = broker_url()
    use_broker(broker_url())
    with start_worker(app, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=10):
        sweep_webhook_deliveries.delay()
        receiver.wait_for(4, timeout=20)

    assert {request.headers["webhook-id"] for request in receiver.received} == committed
    wait_until(lambda: set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SUCCEEDED})


def test_with_redis_unreachable_no_request_is_a_server_error(api, other_api, org, broker, redis_down):
    responses = [
        api.get("/api/me"),
        api.get("/api/express/tasks"),
        upsert(api, "outage-3"),
        api.post("/api/groups", {"name": "North"}, format="json"),
        api.post("/api/webhooks/endpoints/", {"url": "https://hooks.example.com/in"}, format="json"),
        other_api.get("/api/tasks/"),
    ]

    assert all(response.status_code < 500 for response in responses), [r.status_code for r in responses]


def test_with_redis_unreachable_a_gone_endpoint_is_still_disabled_by_its_delivery(
    org, endpoint, receiver, broker, redis_down
):
    """The alert email cannot be queued; the 410 is still recorded and the endpoint disabled."""
    from webhooks.delivery import attempt_batch, claim_for_endpoint
    from webhooks.services import emit

    emit(organization=org, type="task.created", data={"identifier": "t1", "version": 1})
    receiver.reply(410)
    attempt_batch(claim_for_endpoint(endpoint.pk))  # the alert's enqueue fails after the commit

    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_reason) == (False, "The endpoint answered 410 Gone.")
    assert Delivery.objects.get(endpoint=endpoint).status == Delivery.Status.DEAD


# --- a web process killed between commit and enqueue ------------------------------------------


def test_an_event_committed_without_its_enqueue_is_delivered_by_the_sweeper(api, endpoint, receiver, broker):
    with mock.patch("webhooks.services.enqueue_endpoints"):  # the process "dies" right after COMMIT
        assert upsert(api, "lost-enqueue").status_code == 201
    assert broker.llen("celery") == 0
    event = Event.objects.get()

    with start_worker(app, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=10):
        sweep_webhook_deliveries.delay()
        (request,) = receiver.wait_for(1, timeout=20)

    assert request.headers["webhook-id"] == event.id
    wait_until(lambda: Delivery.objects.get(event=event).status == Delivery.Status.SUCCEEDED)


# --- the database connection dropped ----------------------------------------------------------


def wsgi_get(path: str, token: str) -> int:
    """One request through the WSGI entry point in this thread, as a sync gunicorn worker serves it."""
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1", "HTTP_AUTHORIZATION": f"Bearer {token}",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
    }  # fmt: skip
    status: list[str] = []
    response = application(environ, lambda code, headers, exc_info=None: status.append(code))
    try:
        b"".join(response)
    finally:
        response.close()  # request_finished: where Django decides whether to keep the connection
    return int(status[0].split()[0])


def terminate_backend(pid: int) -> None:
    database = connection.settings_dict
    with psycopg.connect(
        host=database["HOST"], port=database["PORT"], user=database["USER"], dbname=database["NAME"], autocommit=True
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_a_dropped_database_connection_is_replaced_on_the_next_request(raw_token):
    assert django_settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True
    assert wsgi_get("/api/me", raw_token) == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]

    terminate_backend(pid)

    assert wsgi_get("/api/me", raw_token) == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid, "a new connection serves the request"
