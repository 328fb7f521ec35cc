"""The dispatcher admin: every page renders, the task list stays cheap, tenants stay apart,
and the task actions go through the services."""

import re
from datetime import datetime, timedelta

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from taskhub.admin_scoping import EstimatedCountPaginator
from taskhub.models import AccessToken, ApiClient, IdempotencyRecord, Membership
from tasks.models import (
    Attachment,
    Group,
    Person,
    Rating,
    Resource,
    StatusType,
    Task,
    TaskAddress,
    TaskStatus,
    Unit,
)
from tasks.services import task_report_status

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:tasks_task_changelist")
OUR_MODELS = [model for model in admin.site._registry if model._meta.app_label in {"taskhub", "tasks"}]
WRITTEN_BY_SERVICES_ONLY = {TaskStatus, IdempotencyRecord}


@pytest.fixture(autouse=True)
def plain_static_files(settings):
    """Pages render without a collectstatic manifest (the production storage needs one)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def make_tasks(org, count: int, *, prefix: str = "T") -> list[Task]:
    """`count` tasks with a customer, a group and two crew each — everything the list shows."""
    group, _ = Group.objects.get_or_create(organization=org, name=f"{org.slug} group")
    customer, _ = Person.objects.get_or_create(organization=org, first_name="Cara", last_name=f"Customer {org.slug}")
    crew = [Person.objects.get_or_create(organization=org, first_name=f"Crew{i}", is_crew=True)[0] for i in (1, 2)]
    start = timezone.now() + timedelta(days=1)
    tasks = Task.objects.bulk_create(
        Task(
            organization=org,
            external_id=f"{prefix}-{org.slug}-{n}",
            title=f"{org.slug} job {n}",
            start_datetime=start + timedelta(hours=n),
            group=group,
            customer=customer,
        )
        for n in range(Task.objects.filter(organization=org).count(), count)
    )
    Through = Task.assignees.through
    Through.objects.bulk_create(Through(task_id=t.pk, person_id=p.pk) for t in tasks for p in crew)
    return tasks


@pytest.fixture
def world(org, django_user_model):
    """One row of every model the admin shows, in `org`."""
    group = Group.objects.create(organization=org, name="Riverside", external_ref="g-1")
    unit = Unit.objects.create(organization=org, group=group, unit_number="1A", external_ref="u-1")
    crew = Person.objects.create(organization=org, first_name="Rita", last_name="Crew", is_crew=True)
    customer = Person.objects.create(organization=org, first_name="Carl", last_name="Customer", phone="+12125550101")
    resource = Resource.objects.create(organization=org, name="Van 1", external_id="van-1")
    task = Task.objects.create(organization=org, external_id="job-1", title="Fix sink", customer=customer, unit=unit)
    task.assignees.add(crew)
    task.resources.add(resource)
    TaskAddress.objects.create(task=task, address_line_1="1 Main St", city="New York")
    entry = task_report_status(task=task, type=StatusType.ENROUTE)
    Attachment.objects.create(organization=org, task=task, status=entry, note="Photo of the sink")
    Rating.objects.create(organization=org, task=task, score=5)
    ApiClient.issue(org, "CRM")
    AccessToken.issue(org, name="integration")
    IdempotencyRecord.objects.create(organization=org, key="k-1", route="POST /api/task/", fingerprint="0" * 64)
    user = django_user_model.objects.create_user("member", is_staff=True)
    Membership.objects.create(organization=org, user=user)
    return task


def changelist_ids(response) -> set[int]:
    return {obj.pk for obj in response.context["cl"].result_list}


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


# --- Every page renders ------------------------------------------------------------------------


@pytest.mark.parametrize("model", OUR_MODELS, ids=lambda m: m._meta.label)
def test_every_changelist_add_and_change_page_renders_for_a_superuser(admin_client, world, model):
    opts = model._meta
    assert admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")).status_code == 200
    obj = model._default_manager.first()
    change = admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
    assert change.status_code == 200
    add = admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
    # The journal and idempotency records are written by the services only.
    assert add.status_code == (403 if model in WRITTEN_BY_SERVICES_ONLY else 200)


def test_task_change_page_shows_the_tracker_link_and_the_journal(admin_client, world, settings):
    page = admin_client.get(reverse("admin:tasks_task_change", args=[world.pk])).content.decode()
    assert f"{settings.PUBLIC_BASE_URL}/t/{world.url_safe_id}" in page
    assert "On the way" in page  # the journal inline


# --- The task list stays cheap ------------------------------------------------------------------


def changelist_queries(client, url: str = CHANGELIST) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return [query["sql"] for query in captured.captured_queries]


@pytest.mark.parametrize("who", ["superuser", "dispatcher"])
def test_task_changelist_query_count_is_the_same_at_10_and_200_tasks(request, org, other_org, who):
    client = request.getfixturevalue("admin_client" if who == "superuser" else "dispatcher_client")
    make_tasks(other_org, 5)
    make_tasks(org, 10)
    at_10 = changelist_queries(client)
    make_tasks(org, 200)
    at_200 = changelist_queries(client)
    assert len(at_10) == len(at_200), (len(at_10), len(at_200))
    assert len(at_200) <= 12


def test_task_changelist_never_counts_the_whole_table(admin_client, org):
    make_tasks(org, 30)
    for url in (CHANGELIST, CHANGELIST + "?status__exact=NOTSTARTED", CHANGELIST + "?q=job"):
        counts = [sql for sql in changelist_queries(admin_client, url) if "COUNT(" in sql and "tasks_task" in sql]
        assert counts, "expected a capped count"
        assert all("LIMIT" in sql for sql in counts), counts


def hierarchy_links(client, url: str) -> tuple[list[str], list[str]]:
    """(the date hierarchy's choices, the queries the page ran)."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    start = html.index('<nav class="toplinks"')
    nav = html[start : html.index("</nav>", start)]
    choices = [re.sub(r"\s+", " ", text).strip() for text in re.findall(r"<a [^>]*>([^<]+)</a>", nav)]
    return choices, [query["sql"] for query in captured.captured_queries]


def test_the_date_hierarchy_lists_the_periods_between_the_first_and_last_task_without_a_scan(admin_client, org):
    zone = org.tz
    for when in (datetime(2026, 3, 3, 9, 0), datetime(2026, 5, 10, 23, 30), datetime(2027, 1, 2, 8, 0)):
        Task.objects.create(organization=org, title="Job", start_datetime=when.replace(tzinfo=zone))
    with timezone.override(zone):
        years, queries = hierarchy_links(admin_client, CHANGELIST)
        months, _ = hierarchy_links(admin_client, CHANGELIST + "?start_datetime__year=2026")
        days, _ = hierarchy_links(admin_client, CHANGELIST + "?start_datetime__year=2026&start_datetime__month=5")
    assert years == ["2026", "2027"]
    assert months[0] == "&lsaquo; All dates"
    assert months[1:] == ["March 2026", "April 2026", "May 2026"]
    assert days[1:] == ["May 10"]  # 23:30 in the organization's zone is still the 10th
    assert not [sql for sql in queries if "DISTINCT" in sql.upper() and "tasks_task" in sql]


@pytest.mark.requires_postgres
def test_a_big_unfiltered_task_list_uses_the_planner_estimate(admin_client, org, monkeypatch):
    make_tasks(org, 30)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tasks_task")
    monkeypatch.setattr(EstimatedCountPaginator, "cap", 10)
    queries = changelist_queries(admin_client)
    assert not [sql for sql in queries if "COUNT(" in sql and "tasks_task" in sql]
    assert admin_client.get(CHANGELIST).context["cl"].result_count == 30


def test_task_changelist_marks_deleted_tasks(admin_client, world):
    admin_client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [world.pk], "post": "yes"})
    world.refresh_from_db()
    assert world.deleted_at is not None
    assert world.statuses.count() == 1
    assert world.addresses.count() == 1
    page = admin_client.get(CHANGELIST).content.decode()
    assert "<del>On the way</del>" in page
    assert "deleted" in page
    assert admin_client.get(CHANGELIST + "?deleted=no").context["cl"].result_count == 0


# --- Tenants stay apart -------------------------------------------------------------------------


def test_a_dispatcher_gets_404_for_another_organizations_task(dispatcher_client, org, other_org):
    theirs = make_tasks(other_org, 1)[0]
    for view in ("change", "history", "delete"):
        assert dispatcher_client.get(reverse(f"admin:tasks_task_{view}", args=[theirs.pk])).status_code == 404
    ours = make_tasks(org, 1)[0]
    assert dispatcher_client.get(reverse("admin:tasks_task_change", args=[ours.pk])).status_code == 200


def test_a_dispatcher_never_sees_another_organizations_rows(dispatcher_client, org, other_org):
    ours, theirs = make_tasks(org, 3), make_tasks(other_org, 3)
    response = dispatcher_client.get(CHANGELIST)
    assert changelist_ids(response) == {t.pk for t in ours}
    assert "globex" not in response.content.decode()  # nor in the group filter
    people = dispatcher_client.get(reverse("admin:tasks_person_changelist"))
    assert {p.organization_id for p in people.context["cl"].result_list} == {org.pk}
    assert theirs


def test_autocomplete_offers_only_the_dispatchers_organization(dispatcher_client, org, other_org):
    Person.objects.create(organization=org, first_name="Zed", last_name="Ours")
    Person.objects.create(organization=other_org, first_name="Zed", last_name="Theirs")
    params = {"app_label": "tasks", "model_name": "task", "field_name": "customer", "term": "Zed"}
    results = dispatcher_client.get(reverse("admin:autocomplete"), params).json()["results"]
    assert [r["text"] for r in results] == ["Zed Ours"]


def test_a_dispatcher_cannot_act_on_another_organizations_task(dispatcher_client, other_org):
    theirs = make_tasks(other_org, 1)[0]
    data = {"action": "report_status", "_selected_action": [theirs.pk], "apply": "1", "type": "STARTED"}
    dispatcher_client.post(CHANGELIST, data)
    assert not theirs.statuses.exists()


def test_the_task_form_offers_only_the_dispatchers_organizations(dispatcher_client, org, other_org):
    form = dispatcher_client.get(reverse("admin:tasks_task_add")).context["adminform"].form
    assert list(form.fields["organization"].queryset) == [org]
    assert form.initial["organization"] == org.pk


def test_a_dispatcher_sees_the_dispatch_models_on_the_admin_index(dispatcher_client):
    page = dispatcher_client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:tasks_task_changelist") in page
    assert reverse("admin:taskhub_accesstoken_changelist") not in page


def test_api_credentials_are_for_organization_admins_only(dispatcher_client, dispatcher, org):
    url = reverse("admin:taskhub_accesstoken_changelist")
    assert dispatcher_client.get(url).status_code == 403
    Membership.objects.filter(user=dispatcher).update(role=Membership.Role.ADMIN)
    assert dispatcher_client.get(url).status_code == 200


def test_a_task_cannot_link_a_customer_of_another_organization(admin_client, org, other_org):
    stranger = Person.objects.create(organization=other_org, first_name="Stranger")
    data = {
        "organization": org.pk,
        "title": "New job",
        "importance": "normal",
        "customer": stranger.pk,
        "extra_fields": "{}",
        "addresses-TOTAL_FORMS": 0,
        "addresses-INITIAL_FORMS": 0,
        "statuses-TOTAL_FORMS": 0,
        "statuses-INITIAL_FORMS": 0,
    }
    response = admin_client.post(reverse("admin:tasks_task_add"), data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["customer"] == ["Choose one that belongs to Acme Field Services."]
    assert not Task.objects.exists()


def test_task_search_finds_a_customer_by_a_nationally_formatted_phone(admin_client, world):
    response = admin_client.get(CHANGELIST, {"q": "(212) 555-0101"})
    assert changelist_ids(response) == {world.pk}


# --- Actions go through the services ------------------------------------------------------------


def test_report_status_asks_for_the_status_then_writes_the_journal(dispatcher_client, org):
    task = make_tasks(org, 1)[0]
    selection = {"action": "report_status", "_selected_action": [task.pk]}
    page = dispatcher_client.post(CHANGELIST, selection)
    assert page.status_code == 200
    assert "Report a status" in page.content.decode()

    done = dispatcher_client.post(CHANGELIST, {**selection, "apply": "1", "type": "ENROUTE", "notes": "Leaving now"})
    assert done.status_code == 302
    task.refresh_from_db()
    entry = task.statuses.get()
    assert (task.status, entry.type, entry.source, entry.notes) == ("ENROUTE", "ENROUTE", "admin", "Leaving now")
    assert entry.reporter_name == "dispatch"
    assert task.version == 2


def test_a_refused_transition_is_reported_as_an_error_message(dispatcher_client, org):
    done, open_ = make_tasks(org, 2)
    task_report_status(task=done, type=StatusType.COMPLETE)
    data = {"action": "report_status", "_selected_action": [done.pk, open_.pk], "apply": "1", "type": "STARTED"}
    response = dispatcher_client.post(CHANGELIST, data, follow=True)
    assert response.status_code == 200
    shown = messages_of(response) or [str(m) for m in response.context["messages"]]
    assert any("Refused for 1 task" in m and "COMPLETE" in m for m in shown), shown
    assert any("Reported STARTED on 1 task" in m for m in shown), shown
    assert list(done.statuses.values_list("type", flat=True)) == ["COMPLETE"]
    assert list(open_.statuses.values_list("type", flat=True)) == ["STARTED"]


def test_assign_crew_assigns_through_the_service(dispatcher_client, org, other_org):
    task = make_tasks(org, 1)[0]
    new = Person.objects.create(organization=org, first_name="Nina", is_crew=True)
    Person.objects.create(organization=other_org, first_name="Foreign", is_crew=True)
    selection = {"action": "assign_crew", "_selected_action": [task.pk]}
    form = dispatcher_client.post(CHANGELIST, selection).context["form"]
    assert "Foreign" not in str(form["crew"])

    dispatcher_client.post(CHANGELIST, {**selection, "apply": "1", "crew": [new.pk], "replace": "on"})
    task.refresh_from_db()
    assert list(task.assignees.all()) == [new]
    assert task.version == 2


def test_editing_a_task_bumps_its_version_and_keeps_its_status(admin_client, world):
    data = {
        "organization": world.organization_id,
        "title": "Fix sink (urgent)",
        "importance": "high",
        "assignees": list(world.assignees.values_list("pk", flat=True)),
        "extra_fields": "{}",
        "notify_sms": "on",
        "addresses-TOTAL_FORMS": 1,
        "addresses-INITIAL_FORMS": 1,
        "addresses-0-id": world.addresses.get().pk,
        "addresses-0-task": world.pk,
        "addresses-0-address_line_1": "1 Main St",
        "addresses-0-city": "New York",
        "addresses-0-position": 0,
        "statuses-TOTAL_FORMS": 1,
        "statuses-INITIAL_FORMS": 1,
    }
    response = admin_client.post(reverse("admin:tasks_task_change", args=[world.pk]), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    world.refresh_from_db()
    assert (world.title, world.status, world.version) == ("Fix sink (urgent)", "ENROUTE", 3)


# --- Credentials: secrets shown once ------------------------------------------------------------


def test_adding_an_access_token_shows_the_raw_token_once(admin_client, org):
    url = reverse("admin:taskhub_accesstoken_add")
    response = admin_client.post(url, {"organization": org.pk, "name": "crm"}, follow=True)
    [raw] = [m.split("Bearer token: ")[1].split(" ")[0] for m in messages_of(response) if "Bearer token" in m]
    token = AccessToken.objects.by_raw(raw)
    assert token.name == "crm"
    assert token.token_hash != raw
    page = admin_client.get(reverse("admin:taskhub_accesstoken_change", args=[token.pk])).content.decode()
    assert raw not in page


def test_adding_an_api_client_shows_the_secret_once(admin_client, org):
    response = admin_client.post(
        reverse("admin:taskhub_apiclient_add"), {"organization": org.pk, "name": "crm"}, follow=True
    )
    [message] = [m for m in messages_of(response) if "secret" in m]
    client = ApiClient.objects.get(name="crm")
    secret = message.split("secret: ")[1].split(" ")[0]
    assert client.check_secret(secret)


def test_revoking_tokens_sets_revoked_at(admin_client, org):
    token, _ = AccessToken.issue(org)
    url = reverse("admin:taskhub_accesstoken_changelist")
    admin_client.post(url, {"action": "revoke", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_at is not None
