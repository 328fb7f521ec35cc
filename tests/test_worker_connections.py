"""A worker's database connections live as a web request's do: reused from task to task until
CONN_MAX_AGE has passed or they break, not opened again for every task (taskhub.celery)."""

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import connection

from taskhub.celery import app
from tests.celery_broker import own_broker

pytestmark = [pytest.mark.requires_redis, pytest.mark.requires_postgres, pytest.mark.django_db(transaction=True)]

BROKER_URL = "redis://127.0.0.1:6379/9"
seen: list[int] = []  # the server process each run of the task below was served by


@app.task(name="tests.record_backend")
def record_backend(*, expire: bool = False) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        seen.append(cursor.fetchone()[0])
    if expire:
        connection.close_at = time.monotonic()  # as if CONN_MAX_AGE had passed since it was opened


@pytest.fixture
def worker():
    seen.clear()
    with own_broker(BROKER_URL), start_worker(app, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=10):
        yield


def run_in_worker(**kwargs) -> None:
    count = len(seen)
    record_backend.delay(**kwargs)
    deadline = time.monotonic() + 15
    while len(seen) == count:
        assert time.monotonic() < deadline, "the worker did not run the task in time"
        time.sleep(0.02)


def test_tasks_in_a_row_reuse_the_worker_threads_connection(worker):
    for _ in range(3):
        run_in_worker()
    assert len(set(seen)) == 1, seen


def test_a_connection_past_its_age_is_closed_after_its_task_and_the_next_opens_another(worker):
    run_in_worker(expire=True)
    run_in_worker()
    run_in_worker()
    assert seen[0] != seen[1]
    assert seen[1] == seen[2]
