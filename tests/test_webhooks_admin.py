"""Webhooks in the admin: a dispatcher sees and resends only their organization's messages."""

import pytest

from webhooks import services
from webhooks.models import Delivery, Endpoint, Event
from webhooks.tasks import sweep_webhook_deliveries

pytest_plugins = ["tests.webhook_fixtures"]
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def plain_static_files(settings):
    """Pages render without a collectstatic manifest (the production storage needs one)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def messages(org, other_org, make_endpoint, receiver, django_capture_on_commit_callbacks):
    """One delivered message for each organization."""
    make_endpoint(organization=org, description="acme-endpoint")
    make_endpoint(organization=other_org, description="globex-endpoint")
    with django_capture_on_commit_callbacks():
        ours = services.emit(organization=org, type="task.created", data={"identifier": "acme-task"})
        theirs = services.emit(organization=other_org, type="task.created", data={"identifier": "globex-task"})
    sweep_webhook_deliveries()
    return ours, theirs


def test_a_dispatcher_lists_only_their_organizations_endpoints_and_messages(dispatcher_client, messages):
    ours, theirs = messages
    endpoints = dispatcher_client.get("/admin/webhooks/endpoint/").content.decode()
    assert "acme-endpoint" in endpoints
    assert "globex-endpoint" not in endpoints
    log = dispatcher_client.get("/admin/webhooks/event/").content.decode()
    assert ours.id in log
    assert theirs.id not in log
    deliveries = dispatcher_client.get("/admin/webhooks/delivery/").content.decode()
    assert ours.id in deliveries
    assert theirs.id not in deliveries


def test_a_message_page_shows_its_deliveries_and_a_delivery_page_its_attempts(dispatcher_client, messages):
    ours, _ = messages
    page = dispatcher_client.get(f"/admin/webhooks/event/{ours.id}/change/")
    assert page.status_code == 200
    assert "acme-task" in page.content.decode()
    delivery = ours.deliveries.get()
    page = dispatcher_client.get(f"/admin/webhooks/delivery/{delivery.pk}/change/")
    assert page.status_code == 200
    assert "Succeeded" in page.content.decode()


def test_another_organizations_message_and_delivery_cannot_be_opened(dispatcher_client, messages):
    _, theirs = messages
    for url in [
        f"/admin/webhooks/event/{theirs.id}/change/",
        f"/admin/webhooks/delivery/{theirs.deliveries.get().pk}/change/",
    ]:
        response = dispatcher_client.get(url, follow=True)
        assert "globex-task" not in response.content.decode()
        assert response.status_code == 404 or response.redirect_chain, url


def test_the_resend_action_sends_the_message_again(
    dispatcher_client, messages, receiver, django_capture_on_commit_callbacks
):
    ours, theirs = messages
    with django_capture_on_commit_callbacks():
        dispatcher_client.post(
            "/admin/webhooks/event/", {"action": "resend", "_selected_action": [ours.id, theirs.id]}, follow=True
        )
    assert Delivery.objects.get(event=ours).status == Delivery.Status.PENDING
    assert Delivery.objects.get(event=theirs).status == Delivery.Status.SUCCEEDED
    sweep_webhook_deliveries()
    assert [r.headers["webhook-id"] for r in receiver.received].count(ours.id) == 2


def test_an_endpoint_added_in_the_admin_refuses_a_private_address(dispatcher_client, org, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    response = dispatcher_client.post(
        "/admin/webhooks/endpoint/add/",
        {"organization": org.pk, "url": "http://169.254.169.254/", "event_types": "[]", "headers": "{}"},
    )
    assert response.status_code == 200
    assert "public addresses only" in response.content.decode()
    assert not Endpoint.objects.exists()
    assert not Event.objects.exists()
