"""A disabled endpoint is announced to the organization's administrators by email."""

import pytest
from django.core import mail

from taskhub.models import Membership
from webhooks.models import Endpoint
from webhooks.services import endpoint_disable
from webhooks.tasks import notify_endpoint_disabled

pytestmark = pytest.mark.django_db


@pytest.fixture
def locmem_mail(settings):
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}


def test_disabling_an_endpoint_emails_the_organizations_admins_only(
    org, other_org, django_user_model, locmem_mail, django_capture_on_commit_callbacks, monkeypatch
):
    admin = django_user_model.objects.create_user("boss", "boss@acme.test", "pw-1-boss", is_staff=True)
    Membership.objects.create(organization=org, user=admin, role=Membership.Role.ADMIN)
    dispatcher = django_user_model.objects.create_user("disp", "disp@acme.test", "pw-1-disp", is_staff=True)
    Membership.objects.create(organization=org, user=dispatcher)
    stranger = django_user_model.objects.create_user("other", "boss@globex.test", "pw-1-other", is_staff=True)
    Membership.objects.create(organization=other_org, user=stranger, role=Membership.Role.ADMIN)
    endpoint = Endpoint.objects.create(organization=org, url="https://hooks.example.com/in")
    monkeypatch.setattr(notify_endpoint_disabled, "delay", notify_endpoint_disabled)  # run the task in-line

    with django_capture_on_commit_callbacks(execute=True):
        endpoint_disable(endpoint=endpoint, reason="The endpoint answered 410 Gone.")

    (message,) = mail.outbox
    assert message.to == ["boss@acme.test"]
    assert "https://hooks.example.com/in" in message.subject
    assert "410 Gone" in message.body
    assert f"/admin/webhooks/endpoint/{endpoint.pk}/change/" in message.body


def test_an_endpoint_enabled_again_before_the_email_goes_is_not_announced(org, django_user_model, locmem_mail):
    admin = django_user_model.objects.create_user("boss", "boss@acme.test", "pw-1-boss", is_staff=True)
    Membership.objects.create(organization=org, user=admin, role=Membership.Role.ADMIN)
    endpoint = Endpoint.objects.create(organization=org, url="https://hooks.example.com/in")
    notify_endpoint_disabled(endpoint.pk)
    assert mail.outbox == []
