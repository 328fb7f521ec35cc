"""A commit to endpoints a worker is sending to queues no task: it rings their bells (webhooks.doorbell)."""

import threading
import time

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from celery.signals import before_task_publish
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from taskhub.celery import app
from tests.celery_broker import own_broker, queued
from tests.test_webhooks_worker import wait_until
from webhooks import doorbell, services
from webhooks.delivery import deliver_due, drainers
from webhooks.models import Delivery
from webhooks.tasks import deliver_endpoint

pytest_plugins = ["tests.webhook_fixtures"]
pytestmark = pytest.mark.requires_redis

BROKER_URL = "redis://127.0.0.1:6379/12"
DATA = {"identifier": "t1", "version": 1}


@pytest.fixture
def broker():
    with own_broker(BROKER_URL) as client:
        yield client


def change(org, count: int = 1) -> None:
    """`count` committed changes for the organization's endpoints, each enqueued on its commit."""
    for n in range(count):
        with transaction.atomic():
            services.emit(organization=org, type="task.created", data={**DATA, "n": n})


def names(broker) -> list[str]:
    return [name for name, _ in queued(broker, "webhooks")]


@pytest.mark.django_db(transaction=True)
def test_a_commit_to_an_endpoint_this_thread_holds_rings_and_queues_no_task(org, endpoint, broker):
    assert drainers.take_all([endpoint.pk]) == [endpoint.pk]
    try:
        change(org, 2)
        assert names(broker) == []  # held: the bell rang instead
        assert drainers.noted(endpoint.pk) is True  # heard before claiming again
        assert drainers.noted(endpoint.pk) is False
    finally:
        assert drainers.release_all([endpoint.pk]) == []
    change(org)
    assert names(broker) == ["webhooks.tasks.deliver_endpoint"]  # let go: the next commit queues its task


@pytest.mark.django_db(transaction=True)
def test_a_ring_after_the_holders_last_look_is_kept_or_handed_on(org, endpoint, broker):
    drainers.take_all([endpoint.pk])
    assert doorbell.ring([endpoint.pk]) == []
    assert drainers.hand_back(endpoint.pk) is True  # rang since the last look: still held, claim again
    assert doorbell.ring([endpoint.pk]) == []
    assert drainers.release_all([endpoint.pk]) == [endpoint.pk]  # let go, but it rang: hand it on
    assert doorbell.ring([endpoint.pk]) == [endpoint.pk]  # no holder now: that commit needs a task

    drainers.take_all([endpoint.pk])
    assert drainers.hand_back(endpoint.pk) is False  # silent: let go
    assert doorbell.ring([endpoint.pk]) == [endpoint.pk]


@pytest.mark.django_db(transaction=True)
def test_a_task_for_an_endpoint_another_process_holds_rings_it_and_ends(org, endpoint):
    assert doorbell.take([endpoint.pk]) == [True]  # what another worker process's drainer does
    change(org)
    try:
        with CaptureQueriesContext(connection) as captured:
            deliver_endpoint(endpoint.pk)
        assert len(captured) == 0  # no claim, no wait on the endpoint's row lock
        assert Delivery.objects.get().status == Delivery.Status.PENDING
        assert doorbell.hand_back(endpoint.pk) is True  # the other process hears it and claims again
    finally:
        doorbell.release([endpoint.pk])


@pytest.mark.django_db(transaction=True)
def test_a_holders_key_lapses_unless_renewed(endpoint):
    drain_key = doorbell._keys(endpoint.pk)[0]
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    doorbell.take([endpoint.pk])
    try:
        assert 0 < client.pttl(drain_key) <= doorbell.HOLD_MS  # a worker that dies holding it frees it
        client.pexpire(drain_key, 1000)
        assert doorbell.touch(endpoint.pk, last=0.0) > 0.0
        assert client.pttl(drain_key) > 1000
    finally:
        doorbell.release([endpoint.pk])
    assert client.exists(drain_key) == 0


@pytest.mark.django_db(transaction=True)
def test_without_a_reachable_redis_every_commit_queues_its_task(org, endpoint, broker, settings):
    settings.REDIS_URL = "redis://127.0.0.1:6999/0"  # nothing listens there
    assert doorbell.ring([endpoint.pk]) == [endpoint.pk]
    assert doorbell.take([endpoint.pk]) == [True]
    change(org)
    assert names(broker) == ["webhooks.tasks.deliver_endpoint"]
    settings.REDIS_URL = ""  # the embedded set-up
    change(org)
    assert names(broker) == ["webhooks.tasks.deliver_endpoint"] * 2


@pytest.mark.django_db(transaction=True)
def test_changes_while_a_worker_sends_reach_every_endpoint_with_one_task_queued_on_commit(
    org, make_endpoint, receiver, broker
):
    """A real worker: the first change's round is held at its receiver while ten more changes
    commit. They queue no deliver_endpoints task of their own, and all of them arrive."""
    endpoints = [make_endpoint() for _ in range(3)]
    published: list[str] = []
    lock = threading.Lock()

    def count(sender=None, **kwargs) -> None:
        with lock:
            published.append(sender)

    before_task_publish.connect(count)
    try:
        with start_worker(app, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=10):
            receiver.reply(delay=30)  # the first change's first request hangs until released
            change(org)
            receiver.wait_for(1, timeout=15)
            change(org, 10)
            receiver.release.set()
            assert len(receiver.wait_for(33, timeout=20)) == 33
            wait_until(lambda: Delivery.objects.filter(status=Delivery.Status.SUCCEEDED).count() == 33)
    finally:
        before_task_publish.disconnect(count)
    assert published.count("webhooks.tasks.deliver_endpoints") == 1  # the ten others rang
    assert {request.body.count('"n"') for request in receiver.received} == {1}
    for e in endpoints:
        assert Delivery.objects.filter(endpoint=e, status=Delivery.Status.SUCCEEDED).count() == 11


@pytest.mark.django_db(transaction=True)
def test_changes_to_an_endpoint_held_by_a_worker_that_died_go_out_by_the_sweeper_until_its_key_lapses(
    org, endpoint, receiver, broker
):
    drain_key = doorbell._keys(endpoint.pk)[0]
    doorbell.take([endpoint.pk])  # held by a worker that then died: nobody hears its bell
    change(org)
    assert names(broker) == []
    assert deliver_due() == 1  # the sweeper's pass, every 5 s
    assert len(receiver.wait_for(1)) == 1
    redis.Redis.from_url(django_settings.REDIS_URL).pexpire(drain_key, 1)  # its key lapses
    time.sleep(0.01)
    change(org)
    assert names(broker) == ["webhooks.tasks.deliver_endpoint"]
