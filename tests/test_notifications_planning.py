"""Planning: which messages an event writes, what they say, and when they may go."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications import services
from notifications.models import Notification, NotificationSettings, Suppression, TemplateRule, TemplateSet
from notifications.policy import in_quiet_hours, quiet_hours_end, retry_delay
from notifications.rendering import RenderError, compiled, render, when_text
from notifications.sending import SETTLE_AFTER, send_due
from notifications.tasks import send_notifications
from taskhub.models import Organization
from tasks.models import StatusType, Task, TaskAddress
from tasks.services import task_assign, task_delete, task_report_status

from .test_notifications_fixtures import CREW_MOBILE, CUSTOMER_MOBILE

pytest_plugins = ["tests.test_notifications_fixtures"]
pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")
START = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)  # 09:00 in New York


@pytest.fixture(autouse=True)
def quiet_outbox(settings):
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    settings.SMS_BACKEND = "console"


@pytest.fixture
def task(make_task, crew_member):
    task = make_task(start_datetime=START, end_datetime=START + timedelta(hours=2), crew=[crew_member])
    TaskAddress.objects.create(task=task, position=0, address_line_1="1 Main St", city="New York")
    return task


def rows(**filters) -> list[Notification]:
    return list(Notification.objects.filter(**filters).order_by("channel", "to"))


# --- Templates render per status and channel ---------------------------------------------------


def test_a_created_task_plans_an_sms_and_an_email_to_the_customer_with_the_tracker_link(task, no_quiet_hours):
    email, sms = services.plan(task=task, event="created")

    link = f"https://taskhub.test/t/{task.url_safe_id}"
    assert (sms.channel, sms.to, sms.status) == ("sms", CUSTOMER_MOBILE, "queued")
    assert sms.body == (
        f"Hi Ada Lovelace, Acme Field Services has booked Install dishwasher for Tue 1 Dec, 09:00–11:00. "
        f"Follow it here: {link}"
    )
    assert (email.channel, email.to) == ("email", "ada@example.com")
    assert email.subject == "Acme Field Services: Install dishwasher is booked"
    assert link in email.body


def test_each_status_is_announced_as_the_default_set_says(task, no_quiet_hours):
    enroute = task_report_status(task=task, type="ENROUTE")
    (on_the_way,) = rows(event="status:ENROUTE")
    assert on_the_way.channel == "sms"
    assert on_the_way.urgent
    assert on_the_way.body.startswith("Bob from Acme Field Services is on the way.")

    task_report_status(task=task, type="STARTED")
    assert rows(event="status:STARTED") == []  # no rule for STARTED in the default set

    task_report_status(task=task, type="COMPLETE")
    (done,) = rows(event="status:COMPLETE")
    assert done.channel == "email"
    assert done.subject == "Acme Field Services: Install dishwasher is complete"
    assert f"/t/{task.url_safe_id}" in done.body
    assert str(enroute.pk) in on_the_way.idempotency_key


def test_the_task_template_picks_its_set_and_an_unknown_key_falls_back_to_the_default(org, task, no_quiet_hours):
    vip = TemplateSet.objects.create(organization=org, key="vip", name="VIP")
    body = "{{ customer_name|upper }}: {{ status_label }} / {{ crew_first_names }}"
    TemplateRule.objects.create(template_set=vip, event="created", audience="customer", channel="sms", body=body)
    task.template = "vip"
    (sms,) = services.plan(task=task, event="created")
    assert sms.body == "ADA LOVELACE: Not started / Bob"

    task.template = "no-such-set"
    task.version = 2
    assert {row.channel for row in services.plan(task=task, event="created")} == {"sms", "email"}


def test_planning_the_same_event_twice_writes_one_row_per_recipient_and_channel(task, no_quiet_hours):
    services.plan(task=task, event="created")
    services.plan(task=task, event="created")
    assert Notification.objects.count() == 2


def test_the_task_notification_preferences_switch_off_the_customer_channels(task, no_quiet_hours):
    task.notify_email = False
    assert [row.channel for row in services.plan(task=task, event="created")] == ["sms"]
    task.notify_sms, task.version = False, 2
    assert services.plan(task=task, event="created") == []


def test_sms_goes_to_the_mobile_number_else_the_phone(task, customer, no_quiet_hours):
    customer.mobile_number = ""
    customer.save()
    (sms,) = [row for row in services.plan(task=task, event="created") if row.channel == "sms"]
    assert sms.to == "+12125550100"


def test_newly_assigned_crew_hear_about_it_and_crew_already_assigned_do_not(org, task, crew_member, no_quiet_hours):
    from tasks.models import Person

    newcomer = Person.objects.create(organization=org, first_name="Cy", mobile_number="+12125550199", is_crew=True)
    task_assign(task=task, crew=[newcomer])
    (sms,) = rows(event="assigned")
    assert sms.to == "+12125550199"
    assert "at 1 Main St, New York" in sms.body


def test_a_change_that_plans_several_events_builds_the_tasks_names_once(org, task, no_quiet_hours, monkeypatch):
    from notifications import rendering

    built = []
    monkeypatch.setattr(services, "task_context", lambda *a: built.append(a) or rendering.task_context(*a))
    task.status = StatusType.ENROUTE
    planned = services.plan_change(task, [("created", None), ("status:ENROUTE", None)])
    assert {row.event for row in planned} == {"created", "status:ENROUTE"}
    assert len(built) == 1


def test_a_template_that_fails_to_render_is_recorded_as_failed_not_raised(org, task, no_quiet_hours):
    rule = services.default_set_for(org).rules.get(event="created", channel="sms")
    TemplateRule.objects.filter(pk=rule.pk).update(body="{% if %}")
    sms = next(row for row in services.plan(task=task, event="created") if row.channel == "sms")
    assert sms.status == "failed"
    assert sms.error.startswith("Template error:")


def test_a_template_is_compiled_once_and_a_broken_one_fails_every_time():
    source = "Hi {{ customer_name }}, see {{ tracker_url }}"
    assert compiled(source) is compiled(source)
    assert render(source, {"customer_name": "Ada", "tracker_url": "x"}) == "Hi Ada, see x"
    assert render(source, {"customer_name": "Bob", "tracker_url": "y"}) == "Hi Bob, see y"
    for _ in range(2):
        with pytest.raises(RenderError):
            render("{% if %}", {})


def test_deleting_a_task_withdraws_its_unsent_messages(task, no_quiet_hours):
    services.plan(task=task, event="created")
    task_delete(task=task)
    assert {row.status for row in rows()} == {"failed"}
    assert rows()[0].error == "Not sent: the task was deleted."


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, "Tue 1 Dec, 09:00–11:00"),
        ({"end_datetime": None}, "Tue 1 Dec, 09:00"),
        ({"enable_time_window_display": True, "time_window_start": 60}, "Tue 1 Dec, between 08:00 and 11:00"),
        ({"unscheduled": True}, "unscheduled"),
        ({"start_datetime": None}, "unscheduled"),
    ],
)
def test_when_is_the_time_or_window_in_the_organization_zone(fields, expected):
    task = Task(**{"start_datetime": START, "end_datetime": START + timedelta(hours=2), **fields})
    assert when_text(task, NEW_YORK) == expected


# --- Opt-out, quiet hours and caps -------------------------------------------------------------


def test_a_suppressed_address_is_recorded_suppressed_and_never_sent(org, task, no_quiet_hours):
    Suppression.objects.create(organization=org, channel="sms", address=CUSTOMER_MOBILE, reason="STOP")
    services.plan(task=task, event="created")
    (sms,) = rows(channel="sms")
    assert sms.status == "suppressed"
    send_due()
    sms.refresh_from_db()
    assert sms.status == "suppressed"


def fresh(task: Task) -> Task:
    """The task as the next request reads it: with its organization's current configuration stamp."""
    return Task.objects.select_related("organization", "customer").get(pk=task.pk)


def test_an_opt_out_and_its_lifting_reach_the_next_change_planned(org, task, no_quiet_hours):
    services.plan(task=task, event="created", occurrence="first")  # remembers that nobody opted out
    services.suppression_add(organization=org, channel="sms", address=CUSTOMER_MOBILE, reason="STOP")
    services.plan(task=fresh(task), event="created", occurrence="second")
    services.suppression_lift(organization=org, channel="sms", address=CUSTOMER_MOBILE)
    services.plan(task=fresh(task), event="created", occurrence="third")
    sms = {n.idempotency_key.split(":")[3]: n.status for n in rows(channel="sms")}
    assert sms == {"first": "queued", "second": "suppressed", "third": "queued"}


def test_with_many_opt_outs_planning_asks_the_database(org, task, no_quiet_hours, monkeypatch):
    monkeypatch.setattr(services, "REMEMBERED_SUPPRESSIONS", 1)
    Suppression.objects.create(organization=org, channel="sms", address="+15550000001", reason="STOP")
    Suppression.objects.create(organization=org, channel="sms", address=CUSTOMER_MOBILE, reason="STOP")
    services.plan(task=fresh(task), event="created")
    (sms,) = rows(channel="sms")
    assert sms.status == "suppressed"


def test_changed_quiet_hours_reach_the_next_change_planned(org, task, no_quiet_hours):
    with time_machine.travel(datetime(2026, 11, 30, 22, 30, tzinfo=NEW_YORK), tick=False):
        services.plan(task=task, event="created", occurrence="first")  # remembers: no quiet hours
        no_quiet_hours.quiet_hours_start, no_quiet_hours.quiet_hours_end = time(21), time(8)
        no_quiet_hours.save()
        services.plan(task=fresh(task), event="created", occurrence="second")
    sms = {n.idempotency_key.split(":")[3]: n.status for n in rows(channel="sms")}
    assert sms == {"first": "queued", "second": "held"}


def test_the_digest_noting_its_day_is_not_a_configuration_change(org, no_quiet_hours):
    stamp = Organization.objects.get(pk=org.pk).config_stamp
    no_quiet_hours.last_digest_date = date(2026, 12, 1)
    no_quiet_hours.save(update_fields=["last_digest_date"])
    NotificationSettings.objects.filter(organization=org).update(last_digest_date=date(2026, 12, 2))
    assert Organization.objects.get(pk=org.pk).config_stamp == stamp
    NotificationSettings.objects.filter(organization=org).update(quiet_hours_end=time(7))
    assert Organization.objects.get(pk=org.pk).config_stamp != stamp


@pytest.mark.parametrize(
    ("local", "quiet"),
    [(time(20, 59), False), (time(21, 0), True), (time(23, 30), True), (time(7, 59), True), (time(8, 0), False)],
)
def test_quiet_hours_run_over_midnight(local, quiet):
    assert in_quiet_hours(local, time(21), time(8)) is quiet


def test_quiet_hours_end_at_the_next_opening_in_the_organization_zone():
    late = datetime(2026, 12, 1, 22, 30, tzinfo=NEW_YORK)
    assert quiet_hours_end(late, NEW_YORK, time(21), time(8)) == datetime(2026, 12, 2, 8, 0, tzinfo=NEW_YORK)
    early = datetime(2026, 12, 2, 6, 0, tzinfo=NEW_YORK)
    assert quiet_hours_end(early, NEW_YORK, time(21), time(8)) == datetime(2026, 12, 2, 8, 0, tzinfo=NEW_YORK)
    assert quiet_hours_end(datetime(2026, 12, 2, 12, 0, tzinfo=NEW_YORK), NEW_YORK, time(21), time(8)) is None


def test_non_urgent_sms_are_held_through_quiet_hours_and_released_when_they_end(task):
    with time_machine.travel(datetime(2026, 11, 30, 22, 30, tzinfo=NEW_YORK), tick=False):
        services.plan(task=task, event="created")
        sms, email = rows(channel="sms")[0], rows(channel="email")[0]
        assert sms.status == "held"
        assert sms.next_attempt_at == datetime(2026, 12, 1, 8, 0, tzinfo=NEW_YORK)
        assert email.status == "queued"  # quiet hours are for SMS
        send_due()
        assert [m.to for m in mail.outbox] == [["ada@example.com"]]
    with time_machine.travel(datetime(2026, 12, 1, 7, 59, tzinfo=NEW_YORK), tick=False):
        assert send_due() == 0
    with time_machine.travel(datetime(2026, 12, 1, 8, 0, 5, tzinfo=NEW_YORK), tick=False):
        assert send_due() == 1
        sms.refresh_from_db()
        assert sms.status == "sent"
        assert sms.sent_at == timezone.now()


def test_urgent_sms_go_during_quiet_hours(task):
    with time_machine.travel(datetime(2026, 12, 1, 23, 0, tzinfo=NEW_YORK), tick=False):
        task_report_status(task=task, type="ENROUTE")
        (sms,) = rows(event="status:ENROUTE")
        assert sms.status == "queued"
        send_due()
        sms.refresh_from_db()
        assert sms.status == "sent"


def test_the_daily_cap_stops_sending_with_a_clear_error(org, make_task, no_quiet_hours):
    NotificationSettings.objects.filter(organization=org).update(daily_sms_cap=1)
    first, second = make_task(external_id="a"), make_task(external_id="b")
    services.plan(task=first, event="created")
    services.plan(task=second, event="created")
    send_due()
    sms = {row.task_id: row for row in rows(channel="sms")}
    assert sms[first.pk].status == "sent"
    assert sms[second.pk].status == "failed"
    assert "daily SMS cap reached" in sms[second.pk].error
    assert len(mail.outbox) == 2  # the email cap is separate


def test_the_daily_count_keeps_what_settled_and_reads_only_newer_sends(org, make_task, no_quiet_hours):
    """Sends older than SETTLE_AFTER are counted once per process; a batch reads only the newer ones,
    other workers' among them. (Deleting settled rows stands in for "not read again".)"""
    NotificationSettings.objects.filter(organization=org).update(daily_sms_cap=4)
    noon = datetime(2026, 12, 1, 12, 0, tzinfo=ZoneInfo("America/New_York"))

    def sms_of(external_id: str) -> Notification:
        services.plan(task=make_task(external_id=external_id), event="created")
        send_due()
        return rows(channel="sms", task__external_id=external_id)[0]

    with time_machine.travel(noon - timedelta(hours=3), tick=False) as traveller:
        earlier = [sms_of(f"morning-{n}") for n in range(2)]
        traveller.move_to(noon)
        assert sms_of("first").status == "sent"  # counted 2: the morning's, settled from here on
        Notification.objects.filter(pk__in=[row.pk for row in earlier]).delete()
        traveller.shift(SETTLE_AFTER + timedelta(seconds=1))
        other_worker = sms_of("other")  # 3 sent: the morning's two are still counted
        assert other_worker.status == "sent"
        assert sms_of("capped").status == "failed"  # 4: two remembered, "first" settled, "other" read anew
        traveller.move_to(noon + timedelta(days=1))
        assert sms_of("next-day").status == "sent"  # a new day counts from its start


def test_a_changes_messages_are_sent_in_a_fixed_number_of_statements_and_one_more_each(org, make_task, no_quiet_hours):
    counts = {}
    for tasks in (1, 3):
        planned = [row.pk for n in range(tasks) for row in services.plan(task=make_task(external_id=f"{tasks}-{n}"),
                                                                         event="created")]  # fmt: skip
        with CaptureQueriesContext(connection) as captured:
            send_notifications(planned)
        counts[tasks] = (len(planned), len(captured))
    (few, few_queries), (many, many_queries) = counts[1], counts[3]
    assert (few, many) == (2, 6)  # an SMS and an email a task
    assert many_queries - few_queries == many - few  # the claim and the counts toward the caps are read once
    assert {row.status for row in rows()} == {Notification.Status.SENT}


@pytest.mark.django_db(transaction=True)  # committed: a stamp renewed in the open transaction is never trusted
def test_sending_reads_opt_outs_and_settings_from_the_processs_copy_while_the_configuration_stands(
    org, make_task, no_quiet_hours
):
    """As planning does: the claim reads the organization's configuration stamp with the rows, and a
    new opt-out or setting renews the stamp (tests/test_notifications_transports.py sends after one)."""
    first, second = ([row.pk for row in services.plan(task=make_task(external_id=ref), event="created")]
                     for ref in ("first", "second"))  # fmt: skip
    send_notifications(first)  # reads them, under the stamp the claim read
    with CaptureQueriesContext(connection) as captured:
        send_notifications(second)
    read = " ".join(query["sql"] for query in captured)
    assert "notifications_suppression" not in read
    assert "notifications_notificationsettings" not in read
    assert {row.status for row in rows()} == {Notification.Status.SENT}
    NotificationSettings.objects.filter(organization=org).update(daily_email_cap=1, daily_sms_cap=1)
    planned = [row.pk for row in services.plan(task=make_task(external_id="capped"), event="created")]
    send_notifications(planned)
    assert {row.status for row in rows(task__external_id="capped")} == {Notification.Status.FAILED}


def test_the_retry_schedule_backs_off_then_gives_up():
    assert [retry_delay(n) for n in range(1, 6)] == [
        timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(hours=1), None,
    ]  # fmt: skip


# --- Reminders and the digest -------------------------------------------------------------------


def test_a_reminder_goes_to_the_assignee_at_its_time_and_only_once(task, crew_member, no_quiet_hours):
    from notifications.reminders import plan_due_reminders

    task.reminder_datetime = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    task.save()
    with time_machine.travel(datetime(2026, 11, 30, 14, 59, 30, tzinfo=UTC), tick=False):
        assert plan_due_reminders() == 0
    with time_machine.travel(datetime(2026, 11, 30, 15, 0, 10, tzinfo=UTC), tick=False):
        assert plan_due_reminders() == 2
        assert plan_due_reminders() == 0
    reminders = rows(event="reminder")
    assert [(r.channel, r.to) for r in reminders] == [("email", "bob@acme.test"), ("sms", CREW_MOBILE)]
    assert reminders[1].body.startswith("Reminder: Install dishwasher for Ada Lovelace, Tue 1 Dec, 09:00–11:00.")

    task.reminder_datetime = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)  # moved: a new reminder
    task.save()
    with time_machine.travel(datetime(2026, 11, 30, 18, 1, tzinfo=UTC), tick=False):
        assert plan_due_reminders() == 2


def test_a_reminder_without_crew_goes_to_the_creator(make_task, creator, no_quiet_hours):
    from notifications.reminders import plan_due_reminders

    make_task(creator=creator, reminder_datetime=datetime(2026, 11, 30, 15, 0, tzinfo=UTC))
    with time_machine.travel(datetime(2026, 11, 30, 15, 0, 1, tzinfo=UTC), tick=False):
        plan_due_reminders()
    assert {(r.channel, r.to) for r in rows(event="reminder")} == {("sms", "+12125550188"), ("email", "dee@acme.test")}


def test_the_crew_get_tomorrows_tasks_at_the_digest_hour_once(org, make_task, crew_member, no_quiet_hours):
    from notifications.reminders import plan_due_digests

    make_task(title="Fix boiler", crew=[crew_member], start_datetime=datetime(2026, 12, 1, 13, 0, tzinfo=NEW_YORK))
    make_task(
        title="Install dishwasher", crew=[crew_member], start_datetime=datetime(2026, 12, 1, 9, 0, tzinfo=NEW_YORK)
    )
    make_task(title="Next week", crew=[crew_member], start_datetime=datetime(2026, 12, 8, 9, 0, tzinfo=NEW_YORK))
    with time_machine.travel(datetime(2026, 11, 30, 16, 59, tzinfo=NEW_YORK), tick=False):
        assert plan_due_digests() == 0
    with time_machine.travel(datetime(2026, 11, 30, 17, 0, 30, tzinfo=NEW_YORK), tick=False):
        assert plan_due_digests() == 1
        assert plan_due_digests() == 0
        send_due()
    (digest,) = rows(event="digest")
    assert digest.status == "sent"
    assert digest.subject == "Acme Field Services: your tasks for Tue 1 Dec"
    assert digest.body.index("09:00: Install dishwasher") < digest.body.index("13:00: Fix boiler")
    assert "Next week" not in digest.body
    assert mail.outbox[-1].to == ["bob@acme.test"]


def test_every_new_organization_gets_the_default_set(org, task, no_quiet_hours):
    services.plan(task=task, event="created")
    default = TemplateSet.objects.get(organization=org, is_default=True)
    events = set(default.rules.values_list("event", flat=True))
    assert events == {"created", "assigned", "status:ENROUTE", "status:COMPLETE", "rescheduled", "reminder", "digest"}
    assert StatusType.ENROUTE in {e.split(":")[-1] for e in events}
