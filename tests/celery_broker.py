"""Pointing the Celery app at a test's own Redis database, for the suites that run a real worker."""

import ast
import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from celery.contrib.testing.worker import test_worker_stopped

from taskhub.celery import app


@test_worker_stopped.connect(dispatch_uid="tests.celery_broker.collect_worker_connections")
def collect_worker_connections(**kwargs) -> None:
    """An embedded worker's thread keeps its database connection from task to task, as a worker's
    threads do; when the thread has ended, collect what it held, so that the connection closes
    and the test database can be dropped at the end of the run."""
    gc.collect()


def use_broker(url: str) -> None:
    """Point publishers and workers at `url`, dropping connections pooled to a broker used earlier."""
    app.conf.broker_url = url
    app._pool = None  # pools are built lazily from broker_url on the next publish
    app.amqp._producer_pool = None


@contextmanager
def own_broker(url: str, settings=None) -> Iterator[redis.Redis]:
    """A Redis database for one test: the app publishes there, and it is emptied before and after."""
    use_broker(url)
    if settings is not None:
        settings.CELERY_BROKER_URL = url  # where /metrics and /readyz look for queue lengths
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        use_broker(url)


def queued(client: redis.Redis, queue: str) -> list[tuple[str, tuple]]:
    """The messages waiting in `queue`, oldest last, as (task name, positional arguments)."""
    messages = [json.loads(raw) for raw in client.lrange(queue, 0, -1)]
    return [(m["headers"]["task"], ast.literal_eval(m["headers"]["argsrepr"])) for m in messages]
