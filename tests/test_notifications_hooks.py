"""Provider endpoints: Twilio signatures, opt-out keywords, replies, and delivery status callbacks."""

import pytest
from django.urls import reverse

from notifications import services, twilio
from notifications.models import Notification, Suppression
from tasks.models import StatusType, TaskStatus
from tasks.services import task_report_status
from webhooks.models import Endpoint, Event

from .test_notifications_fixtures import AUTH_TOKEN, CUSTOMER_MOBILE, FROM_NUMBER, signed_post

pytest_plugins = ["tests.test_notifications_fixtures"]
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def provider(twilio_settings):
    twilio_settings.SMS_BACKEND = "console"
    twilio_settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    return twilio_settings


@pytest.fixture
def texted_task(make_task, no_quiet_hours):
    """A task whose customer was texted by the organization."""
    task = make_task(external_id="ord-1")
    services.plan(task=task, event="created")
    return task


def inbound(client, body: str, sender: str = CUSTOMER_MOBILE):
    return signed_post(client, "hooks:twilio-sms", {"From": sender, "To": FROM_NUMBER, "Body": body,
                                                    "MessageSid": "SM" + "1" * 32})  # fmt: skip


def test_the_signature_is_twilios_hmac_sha1_of_url_and_sorted_parameters():
    # Twilio's documented example (auth token 12345).
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675310", "Digits": "1234", "From": "+14158675310",
              "To": "+18005551212"}  # fmt: skip
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio.signature("12345", url, params.items()) == "GvWf1cFY/Q7PnoempGyD5oXAezc="


@pytest.mark.parametrize("name", ["hooks:twilio-sms", "hooks:twilio-status"])
def test_unsigned_callbacks_are_refused(client, name):
    response = client.post(reverse(name), {"From": CUSTOMER_MOBILE, "Body": "STOP"})
    assert response.status_code == 403


@pytest.mark.parametrize("name", ["hooks:twilio-sms", "hooks:twilio-status"])
def test_callbacks_signed_with_another_token_are_refused(client, name, texted_task):
    response = signed_post(client, name, {"From": CUSTOMER_MOBILE, "Body": "STOP"}, token="not-the-token")
    assert response.status_code == 403
    assert not Suppression.objects.exists()


def test_a_signature_for_other_parameters_is_refused(client, texted_task):
    path = reverse("hooks:twilio-sms")
    signature = twilio.signature(AUTH_TOKEN, "https://taskhub.test" + path, {"Body": "hello"}.items())
    response = client.post(path, {"Body": "STOP", "From": CUSTOMER_MOBILE}, HTTP_X_TWILIO_SIGNATURE=signature)
    assert response.status_code == 403


def test_callbacks_are_refused_when_no_auth_token_is_configured(client, settings):
    settings.TWILIO_AUTH_TOKEN = ""
    response = signed_post(client, "hooks:twilio-sms", {"From": CUSTOMER_MOBILE, "Body": "HELP"}, token="")
    assert response.status_code == 403


@pytest.mark.parametrize(
    "word", ["STOP", "stop", "Unsubscribe", "END", "QUIT", "STOPALL", "REVOKE", "OPTOUT", "CANCEL"]
)
def test_every_opt_out_keyword_suppresses_the_number_for_the_organization(client, org, texted_task, word):
    response = inbound(client, word)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    suppression = Suppression.objects.get()
    assert (suppression.organization, suppression.channel, suppression.address) == (org, "sms", CUSTOMER_MOBILE)
    assert not texted_task.statuses.filter(kind=TaskStatus.Kind.CUSTOMER_MESSAGE).exists()


def test_start_and_unstop_lift_the_suppression(client, texted_task):
    inbound(client, "STOP")
    inbound(client, "START")
    assert not Suppression.objects.exists()
    inbound(client, "STOP")
    inbound(client, "unstop")
    assert not Suppression.objects.exists()


def test_help_answers_with_twiml(client, texted_task):
    response = inbound(client, "help")
    assert response.status_code == 200
    body = response.content.decode()
    assert body.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Message>Acme Field Services:')
    assert "Reply STOP to opt out" in body


def test_a_reply_lands_on_the_most_recent_open_task_of_the_sender(client, make_task, texted_task):
    closed = make_task(external_id="old", status=StatusType.COMPLETE)
    response = inbound(client, "Running 10 minutes late, sorry")
    assert response.status_code == 200
    entry = texted_task.statuses.get(kind=TaskStatus.Kind.CUSTOMER_MESSAGE)
    assert (entry.notes, entry.source) == ("Running 10 minutes late, sorry", "sms")
    assert not closed.statuses.exists()


def test_a_reply_from_an_unknown_number_is_dropped_quietly(client, texted_task):
    assert inbound(client, "who is this?", sender="+12125550111").status_code == 200
    assert not TaskStatus.objects.filter(kind=TaskStatus.Kind.CUSTOMER_MESSAGE).exists()


def test_another_organizations_customer_with_the_same_number_is_not_touched(client, other_org, texted_task):
    from tasks.models import Person, Task

    twin = Person.objects.create(organization=other_org, first_name="Ada", mobile_number=CUSTOMER_MOBILE)
    other_task = Task.objects.create(organization=other_org, customer=twin, title="Other")
    inbound(client, "STOP")
    inbound(client, "Hello")
    assert set(Suppression.objects.values_list("organization", flat=True)) == {texted_task.organization_id}
    assert not other_task.statuses.exists()


# --- Delivery status ----------------------------------------------------------------------------


@pytest.fixture
def sent_sms(texted_task) -> Notification:
    sms = Notification.objects.get(channel="sms")
    Notification.objects.filter(pk=sms.pk).update(status="sent", provider_message_id="SM" + "a" * 32)
    sms.refresh_from_db()
    return sms


def status_callback(client, sid: str, status: str, error_code: str = ""):
    params = {"MessageSid": sid, "MessageStatus": status, "To": CUSTOMER_MOBILE, "From": FROM_NUMBER}
    if error_code:
        params["ErrorCode"] = error_code
    return signed_post(client, "hooks:twilio-status", params)


def test_a_delivered_report_marks_the_notification_delivered(client, sent_sms):
    assert status_callback(client, sent_sms.provider_message_id, "delivered").status_code == 204
    sent_sms.refresh_from_db()
    assert sent_sms.status == "delivered"


@pytest.mark.parametrize("status", ["undelivered", "failed"])
def test_an_undelivered_or_failed_report_fails_it_and_raises_notification_failed(client, org, sent_sms, status):
    Endpoint.objects.create(organization=org, url="https://crm.example.com/hooks", event_types=["notification.failed"])
    status_callback(client, sent_sms.provider_message_id, status, "30003")
    status_callback(client, sent_sms.provider_message_id, status, "30003")  # a repeated report raises nothing more

    sent_sms.refresh_from_db()
    assert sent_sms.status == "failed"
    assert sent_sms.error == f"The provider reports the message {status} (error 30003)."
    event = Event.objects.get(type="notification.failed")
    assert event.payload["data"]["notification_id"] == sent_sms.pk
    assert event.payload["data"]["task_external_id"] == "ord-1"


def test_an_opted_out_report_also_suppresses_the_number(client, sent_sms):
    status_callback(client, sent_sms.provider_message_id, "failed", "21610")
    assert Suppression.objects.filter(address=CUSTOMER_MOBILE).exists()


def test_a_late_failure_report_does_not_undo_a_delivery(client, sent_sms):
    status_callback(client, sent_sms.provider_message_id, "delivered")
    status_callback(client, sent_sms.provider_message_id, "failed")
    sent_sms.refresh_from_db()
    assert sent_sms.status == "delivered"


def test_a_status_change_after_stop_is_recorded_suppressed(client, texted_task):
    inbound(client, "STOP")
    task_report_status(task=texted_task, type="ENROUTE")
    assert Notification.objects.get(event="status:ENROUTE").status == "suppressed"
