"""Dispatcher admin: notification log and resend, templates with preview and compile check, scoping."""

import pytest
from django.urls import reverse

from notifications import services
from notifications.models import Notification, TemplateRule, TemplateSet
from tasks.models import Person, Task

pytest_plugins = ["tests.test_notifications_fixtures"]
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def outbox(settings):
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    settings.SMS_BACKEND = "console"


@pytest.fixture
def planned(make_task, no_quiet_hours) -> Task:
    task = make_task(external_id="ord-1")
    services.plan(task=task, event="created")
    return task


@pytest.fixture
def foreign_notification(other_org) -> Notification:
    person = Person.objects.create(organization=other_org, first_name="Eve", email="eve@globex.test")
    task = Task.objects.create(organization=other_org, customer=person, title="Globex job")
    (row,) = [n for n in services.plan(task=task, event="created") if n.channel == "email"]
    return row


def rule_formset(template_set: TemplateSet, body: str) -> dict[str, str]:
    """The change form's POST data for a set with one new rule."""
    return {
        "name": template_set.name,
        "key": template_set.key,
        "rules-TOTAL_FORMS": "1",
        "rules-INITIAL_FORMS": "0",
        "rules-MIN_NUM_FORMS": "0",
        "rules-MAX_NUM_FORMS": "1000",
        "rules-0-event": "status:STARTED",
        "rules-0-audience": "customer",
        "rules-0-channel": "sms",
        "rules-0-enabled": "on",
        "rules-0-subject": "",
        "rules-0-body": body,
    }


def test_the_notification_log_lists_the_organizations_messages_only(dispatcher_client, planned, foreign_notification):
    response = dispatcher_client.get(reverse("admin:notifications_notification_changelist"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "ada@example.com" in page
    assert "eve@globex.test" not in page
    other = reverse("admin:notifications_notification_change", args=[foreign_notification.pk])
    assert dispatcher_client.get(other).status_code == 404


FILTERS = ["status__exact=queued", "channel__exact=sms", "event=created", "created_at__gte=2020-01-01+00:00:00%2B00:00"]


@pytest.mark.parametrize("query", FILTERS)
def test_the_log_filters_by_status_channel_event_and_date(dispatcher_client, planned, query):
    response = dispatcher_client.get(reverse("admin:notifications_notification_changelist") + "?" + query)
    assert response.status_code == 200


def test_resend_queues_a_copy_under_a_new_key(dispatcher_client, planned):
    original = Notification.objects.get(channel="email")
    response = dispatcher_client.post(
        reverse("admin:notifications_notification_changelist"),
        {"action": "resend", "_selected_action": [original.pk]},
        follow=True,
    )
    assert response.status_code == 200
    copy = Notification.objects.filter(channel="email").exclude(pk=original.pk).get()
    assert (copy.to, copy.body, copy.status) == (original.to, original.body, "queued")
    assert copy.idempotency_key.startswith(original.idempotency_key + ":resend:")


def test_the_task_page_shows_its_notifications(dispatcher_client, planned):
    response = dispatcher_client.get(reverse("admin:tasks_task_change", args=[planned.pk]))
    assert response.status_code == 200
    assert "ada@example.com" in response.content.decode()


def test_a_template_set_page_previews_its_rules_with_the_sample_context(dispatcher_client, org, planned):
    default = TemplateSet.objects.get(organization=org, is_default=True)
    response = dispatcher_client.get(reverse("admin:notifications_templateset_change", args=[default.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "preview (sample context)" in page.lower()
    assert "Hi Ada Lovelace, Acme Field Services has booked Install dishwasher" in page


def test_a_template_that_does_not_compile_is_refused_with_the_error(dispatcher_client, org, planned):
    default = TemplateSet.objects.get(organization=org, is_default=True)
    TemplateRule.objects.filter(template_set=default).delete()
    url = reverse("admin:notifications_templateset_change", args=[default.pk])

    response = dispatcher_client.post(url, rule_formset(default, "On our way {% if %}"))

    assert response.status_code == 200  # the form again, with the error
    assert "This template does not compile" in response.content.decode()
    assert not TemplateRule.objects.filter(template_set=default).exists()


def test_a_template_that_compiles_is_saved(dispatcher_client, org, planned):
    default = TemplateSet.objects.get(organization=org, is_default=True)
    TemplateRule.objects.filter(template_set=default).delete()
    url = reverse("admin:notifications_templateset_change", args=[default.pk])

    response = dispatcher_client.post(url, rule_formset(default, "{{ crew_first_names }} started at {{ when }}"))

    assert response.status_code == 302
    assert TemplateRule.objects.get(template_set=default).event == "status:STARTED"
