"""An endpoint's in-flight limit holds deliveries back only until a slot frees, not until the next sweep."""

import pytest

from webhooks import services
from webhooks.models import Delivery
from webhooks.tasks import deliver_webhook

pytest_plugins = ["tests.webhook_fixtures"]
pytestmark = pytest.mark.django_db


def test_a_freed_slot_sends_the_endpoints_held_back_deliveries_at_once(
    org, endpoint, receiver, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = 1
    with django_capture_on_commit_callbacks():  # the enqueue is dropped: the test drives the worker's task
        for n in range(3):
            services.emit(organization=org, type="task.created", data={"identifier": f"t{n}", "version": 1})
    first, *held = Delivery.objects.order_by("pk")
    deliver_webhook(first.pk)
    assert len(receiver.wait_for(3)) == 3
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SUCCEEDED}
    assert [r.headers["webhook-id"] for r in receiver.received] == [d.event_id for d in [first, *held]]  # oldest first


def test_a_task_for_a_busy_endpoint_leaves_its_delivery_to_the_slot_holder(
    org, endpoint, receiver, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = 1
    with django_capture_on_commit_callbacks():
        for n in range(2):
            services.emit(organization=org, type="task.created", data={"identifier": f"t{n}", "version": 1})
    busy, waiting = Delivery.objects.order_by("pk")
    from webhooks.delivery import claim

    claim(busy.pk)  # another worker holds the endpoint's only slot
    deliver_webhook(waiting.pk)
    waiting.refresh_from_db()
    assert (waiting.status, waiting.locked_until) == (Delivery.Status.PENDING, None)
    assert receiver.received == []
