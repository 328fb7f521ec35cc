"""Transports over real connections: SMTP to a local server, Twilio's API to a local fake."""

import pytest
from django.utils import timezone

from notifications import services
from notifications.models import Notification, Suppression
from notifications.sending import attempt, claim
from notifications.transports import TRANSPORTS, ConsoleSms, Email, TwilioSms, transport_for
from webhooks.models import Endpoint, Event

from .test_notifications_fixtures import ACCOUNT_SID, AUTH_TOKEN, CUSTOMER_MOBILE

pytest_plugins = ["tests.test_notifications_fixtures"]
pytestmark = pytest.mark.django_db


@pytest.fixture
def planned(make_task, no_quiet_hours, smtp_server, fake_twilio):
    task = make_task(external_id="ord-1")
    return {row.channel: row for row in services.plan(task=task, event="created")}


def send(row: Notification) -> Notification:
    claimed = claim(row.pk)
    assert claimed is not None
    return attempt(claimed)


def test_the_registry_has_one_transport_per_channel_and_provider(settings):
    assert {"email": Email, "sms:console": ConsoleSms, "sms:twilio": TwilioSms} == TRANSPORTS
    settings.SMS_BACKEND = "twilio"
    assert isinstance(transport_for("sms"), TwilioSms)
    settings.SMS_BACKEND = "console"
    assert isinstance(transport_for("sms"), ConsoleSms)


def test_email_goes_through_smtp_with_a_text_and_an_html_part(planned, smtp_server):
    row = send(planned["email"])
    (mail,) = smtp_server.messages
    assert row.status == "sent"
    assert row.provider_message_id.startswith("<")
    assert mail.sender == "dispatch@acme.test"
    assert "Content-Type: text/html" in mail.content
    assert row.provider_message_id in mail.content


def test_twilio_gets_the_message_with_basic_auth_and_the_status_callback(planned, fake_twilio):
    import base64

    row = send(planned["sms"])
    (sms,) = fake_twilio.messages
    assert row.status == "sent"
    assert row.provider_message_id.startswith("SM")
    assert sms.authorization == "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert sms.status_callback == "https://taskhub.test/hooks/twilio/status"


@pytest.mark.parametrize("code", [21211, 21614])
def test_an_invalid_number_fails_at_once_and_raises_notification_failed(org, planned, fake_twilio, code):
    Endpoint.objects.create(organization=org, url="https://crm.example.com/hooks")
    fake_twilio.fail_next(400, code=code, message="The 'To' number is not a valid phone number.")
    row = send(planned["sms"])
    assert row.status == "failed"
    assert row.attempts == 1
    assert row.next_attempt_at is None
    assert f"error {code}" in row.error
    assert Event.objects.filter(type="notification.failed").count() == 1


def test_an_opted_out_number_fails_and_is_suppressed(org, planned, fake_twilio):
    fake_twilio.fail_next(400, code=21610, message="Attempt to send to unsubscribed recipient")
    assert send(planned["sms"]).status == "failed"
    assert Suppression.objects.filter(organization=org, channel="sms", address=CUSTOMER_MOBILE).exists()


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_retried_later(planned, fake_twilio, status):
    fake_twilio.fail_next(status, code=20429 if status == 429 else None)
    row = send(planned["sms"])
    assert row.status == "queued"
    assert row.attempts == 1
    assert 29 <= (row.next_attempt_at - timezone.now()).total_seconds() <= 30
    assert claim(row.pk) is None  # not due before its time


def test_after_five_failed_attempts_the_message_fails(planned, fake_twilio):
    row = planned["sms"]
    for _ in range(5):
        fake_twilio.fail_next(503)
        Notification.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
        row = send(row)
    assert row.status == "failed"
    assert row.attempts == 5
    assert fake_twilio.requests == 5


def test_an_unreachable_mail_server_is_retried(planned, settings):
    settings.MAILERS["default"]["OPTIONS"]["port"] = 1  # nothing listens there
    row = send(planned["email"])
    assert row.status == "queued"
    assert "Could not reach the mail server" in row.error


def test_an_opt_out_after_planning_is_honoured_when_sending(org, planned, fake_twilio):
    Suppression.objects.create(organization=org, channel="sms", address=CUSTOMER_MOBILE)
    assert send(planned["sms"]).status == "suppressed"
    assert fake_twilio.requests == 0
