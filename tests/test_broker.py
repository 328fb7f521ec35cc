"""The Redis broker's transport (taskhub.broker): one redis-py client per pool, and the app uses it."""

import pytest
from kombu import Connection

from taskhub.broker import Transport
from taskhub.celery import app
from tests.celery_broker import own_broker

pytestmark = pytest.mark.requires_redis

BROKER_URL = "redis://127.0.0.1:6379/10"


def test_publishes_and_acknowledgements_share_one_client_instead_of_building_one_each():
    with own_broker(BROKER_URL) as client, Connection(BROKER_URL, transport="taskhub.broker:Transport") as connection:
        channel = connection.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
        producer = connection.Producer(serializer="json")
        queue = connection.SimpleQueue("probe")
        for n in range(3):
            producer.publish({"n": n}, routing_key="probe")
        received = [queue.get(timeout=5) for _ in range(3)]
        for message in received:
            message.ack()
        assert [m.payload["n"] for m in received] == [0, 1, 2]
        assert client.hlen("unacked") == 0  # every acknowledgement reached Redis
        queue.close()


def test_the_app_uses_it_when_the_broker_is_redis():
    with own_broker(BROKER_URL), app.connection_for_write() as connection:
        assert isinstance(connection.transport, Transport)
