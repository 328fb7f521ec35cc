"""Transports over real connections: SMTP to a local server, Twilio's API to a local fake."""

import threading
import time

import pytest
from django.core.mail import EmailMessage
from django.utils import timezone

from notifications import services
from notifications.models import Notification, Suppression
from notifications.sending import attempt, claim
from notifications.transports import TRANSPORTS, ConsoleSms, Email, TwilioSms, kept_mailer, transport_for
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


def emails(make_task, count: int) -> list[Notification]:
    """`count` planned emails, one per new task."""
    tasks = [make_task(external_id=f"ord-mail-{n}") for n in range(count)]
    return [row for task in tasks for row in services.plan(task=task, event="created") if row.channel == "email"]


def test_a_thread_sends_its_emails_over_one_connection(make_task, no_quiet_hours, smtp_server):
    rows = [send(row) for row in emails(make_task, 3)]
    assert [row.status for row in rows] == ["sent"] * 3
    assert len(smtp_server.messages) == 3
    assert len({mail.peer for mail in smtp_server.messages}) == 1  # one SMTP session for the three


def test_a_connection_idle_past_the_keepalive_is_opened_again(make_task, no_quiet_hours, smtp_server, settings):
    settings.EMAIL_KEEPALIVE_SECONDS = 0
    first, second = emails(make_task, 2)
    send(first)
    time.sleep(0.01)
    send(second)
    assert len({mail.peer for mail in smtp_server.wait_for(2)}) == 2


def test_an_email_whose_kept_connection_the_server_dropped_goes_over_a_new_one(make_task, no_quiet_hours, smtp_server):
    first, second = emails(make_task, 2)
    assert send(first).status == "sent"
    smtp_server.restart()  # the server closes every session, as one does with idle ones
    row = send(second)
    assert row.status == "sent"
    assert row.attempts == 1
    assert len({mail.peer for mail in smtp_server.wait_for(2)}) == 2


def test_a_changed_mail_server_gets_a_connection_of_its_own(make_task, no_quiet_hours, smtp_server, settings):
    first, second = emails(make_task, 2)
    assert send(first).status == "sent"
    settings.MAILERS["default"]["OPTIONS"]["port"] = 1  # nothing listens there
    row = send(second)
    assert row.status == "queued"
    assert "Could not reach the mail server" in row.error
    assert len(smtp_server.messages) == 1


def test_each_thread_keeps_a_connection_of_its_own(smtp_server):
    def send_one(n: int) -> None:
        kept_mailer.send(EmailMessage(subject=f"n{n}", body="hello", to=[f"r{n}@example.com"]))

    for n in range(2):  # one after the other: the second thread does not find the first one's connection
        worker = threading.Thread(target=send_one, args=(n,))
        worker.start()
        worker.join()
    send_one(2)
    send_one(3)
    mails = smtp_server.wait_for(4)
    assert len({mail.peer for mail in mails}) == 3  # each thread its own, this one's two over one


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
