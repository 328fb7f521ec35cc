"""Each process keeps the configuration every change reads (endpoints, notification rules) until it changes.

These tests commit for real (transaction=True): within one transaction the copy is bypassed for
an organization whose configuration the transaction itself changed.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications.models import Notification, TemplateRule
from notifications.services import default_set_for
from webhooks.models import Delivery, Endpoint
from webhooks.services import endpoint_create, endpoint_disable, endpoint_update

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/express/tasks/upsert/{}"
BODY = {"title": "Fix the boiler", "customer_first_name": "Ada", "customer_email": "ada@example.com"}


@pytest.fixture(autouse=True)
def rules(org):
    """The organization's default notification rules exist, as on any organization in use: a first change
    that wrote them would itself renew the copy, and hide what these tests look for."""
    default_set_for(org)


def upsert(api, external_id: str, **extra):
    response = api.put(URL.format(external_id), {**BODY, **extra}, format="json")
    assert response.status_code in (200, 201), response.content
    return response


def reads(captured, table: str) -> int:
    return sum(1 for q in captured.captured_queries if q["sql"].startswith("SELECT") and f'FROM "{table}"' in q["sql"])


def deliveries_to(endpoint: Endpoint, external_id: str) -> int:
    return Delivery.objects.filter(endpoint=endpoint, event__task__external_id=external_id).count()


def test_changes_after_the_first_read_the_endpoints_and_rules_from_the_process_copy(api, org):
    endpoint = endpoint_create(organization=org, url="https://hooks.example.com/a")
    upsert(api, "first")
    with CaptureQueriesContext(connection) as captured:
        upsert(api, "second")
    assert reads(captured, "webhooks_endpoint") == 0
    assert reads(captured, "notifications_templaterule") == 0
    assert deliveries_to(endpoint, "second") == 1  # still sent, and still planned:
    assert Notification.objects.filter(task__external_id="second", event="created").exists()


def test_a_new_endpoint_gets_the_next_change(api, org):
    upsert(api, "before")
    endpoint = endpoint_create(organization=org, url="https://hooks.example.com/new")
    upsert(api, "after")
    assert deliveries_to(endpoint, "after") == 1


def test_an_endpoint_disabled_or_switched_off_gets_nothing_from_the_next_change(api, org):
    failing = endpoint_create(organization=org, url="https://hooks.example.com/failing")
    switched = endpoint_create(organization=org, url="https://hooks.example.com/switched")
    upsert(api, "one")
    assert deliveries_to(failing, "one") == deliveries_to(switched, "one") == 1
    endpoint_disable(endpoint=failing, reason="The endpoint answered 410 Gone.")  # a plain UPDATE, no signal
    upsert(api, "two")
    assert (deliveries_to(failing, "two"), deliveries_to(switched, "two")) == (0, 1)
    endpoint_update(endpoint=switched, enabled=False)
    upsert(api, "three")
    assert deliveries_to(switched, "three") == 0


def test_an_edited_or_deleted_rule_is_what_the_next_change_uses(api, org):
    upsert(api, "one")
    rule = TemplateRule.objects.get(template_set__organization=org, event="created", channel="email")
    rule.body = "Booked: {{ task_title }}."
    rule.save()
    upsert(api, "two")
    assert Notification.objects.get(task__external_id="two", event="created", channel="email").body == (
        "Booked: Fix the boiler."
    )
    rule.delete()
    upsert(api, "three")
    assert not Notification.objects.filter(task__external_id="three", event="created", channel="email").exists()


def test_bulk_writes_to_endpoints_and_rules_reach_the_next_change(api, org):
    endpoint = endpoint_create(organization=org, url="https://hooks.example.com/bulk")
    upsert(api, "one")
    Endpoint.objects.filter(organization=org).update(enabled=False)
    TemplateRule.objects.filter(template_set__organization=org).update(enabled=False)
    upsert(api, "two")
    assert deliveries_to(endpoint, "two") == 0
    assert not Notification.objects.filter(task__external_id="two").exists()
    Endpoint.objects.filter(organization=org).update(enabled=True)
    upsert(api, "three")
    assert deliveries_to(endpoint, "three") == 1


def test_the_failure_clock_of_an_endpoint_is_not_a_change_of_configuration(org):
    endpoint = endpoint_create(organization=org, url="https://hooks.example.com/clock")
    org.refresh_from_db()
    stamp = org.config_stamp
    Endpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now())
    org.refresh_from_db()
    assert org.config_stamp == stamp


def test_rules_written_in_bulk_renew_the_stamp(org):
    template_set = default_set_for(org)
    org.refresh_from_db()
    stamp = org.config_stamp
    TemplateRule.objects.bulk_create(
        [TemplateRule(template_set=template_set, event="status:STARTED", audience="customer", channel="sms", body="x")]
    )
    org.refresh_from_db()
    assert org.config_stamp != stamp
