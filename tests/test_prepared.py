"""Queries compiled once (taskhub.prepared): the same rows as the queryset they were compiled from."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.models import OuterRef, Subquery
from django.db.models.functions import JSONObject

from taskhub.prepared import Prepared
from tasks.models import Task, TaskAddress
from tasks.tracker import tracker_task

pytestmark = pytest.mark.django_db

MARK_REF, MARK_VERSION = "\x00ref\x00", 2_147_480_007  # in the column's range, as a marker must be


def by_ref_and_version(ref: str, version: int):
    first_line = TaskAddress.objects.filter(task=OuterRef("pk")).order_by("position", "pk")
    return (
        Task.objects.filter(external_id=ref, version__gte=version)
        .order_by("pk")
        .values("pk", "title", "start_datetime", "unscheduled", "organization__name",
                address=Subquery(first_line.values(data=JSONObject(line="address_line_1", lat="lat"))[:1]))
    )  # fmt: skip


PREPARED = Prepared(by_ref_and_version, MARK_REF, MARK_VERSION)


def test_rows_are_what_values_gives_with_each_call_binding_its_own_values(org):
    start = datetime(2026, 5, 4, 8, 30, tzinfo=UTC)
    one = Task.objects.create(organization=org, external_id="r-1", title="One", start_datetime=start)
    TaskAddress.objects.create(task=one, address_line_1="1 Elm Street", lat=42.5)
    Task.objects.create(organization=org, external_id="r-2", title="Two", version=3, unscheduled=True)
    for ref, version in (("r-1", 0), ("r-2", 0), ("r-2", 3), ("r-2", 4), ("missing", 0)):
        assert PREPARED.rows(ref, version) == list(by_ref_and_version(ref, version))
    row = PREPARED.first("r-1", 1)
    assert row["start_datetime"] == start  # converted as the ORM converts: an aware datetime
    assert row["address"] == {"line": "1 Elm Street", "lat": 42.5}
    assert row["organization__name"] == "Acme Field Services"
    assert PREPARED.first("r-2", 4) is None


def test_a_marker_the_query_binds_twice_or_never_is_refused(org):
    twice = Prepared(lambda ref: Task.objects.filter(external_id=ref, title=ref).values("pk"), "\x00same\x00")
    with pytest.raises(ValueError, match="bound 2 times"):
        twice.rows("x")
    never = Prepared(lambda ref: Task.objects.filter(external_id="fixed").values("pk"), "\x00unused\x00")
    with pytest.raises(ValueError, match="bound 0 times"):
        never.rows("x")


@pytest.mark.django_db(transaction=True)
def test_a_locking_query_runs_only_inside_a_transaction(org):
    from django.db import transaction
    from django.db.transaction import TransactionManagementError

    locked = Prepared(lambda ref: Task.objects.select_for_update().filter(external_id=ref).values("pk"), "\x00ref\x00")
    task = Task.objects.create(organization=org, external_id="r-1", title="One")
    with transaction.atomic():
        assert locked.rows("r-1") == [{"pk": task.pk}]
    with pytest.raises(TransactionManagementError):
        locked.rows("r-1")


def test_a_datetime_marker_is_bound_as_the_backend_binds_a_datetime(org):
    """SQLite stores naive text in the connection's zone, PostgreSQL timestamptz: the marker and each value alike."""
    marker = datetime(2001, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)
    before = Prepared(lambda at: Task.objects.filter(start_datetime__lt=at).order_by("pk").values("pk"), marker)
    times = [datetime(2026, 5, 4, hour, 30, tzinfo=UTC) for hour in (6, 8, 10)]
    tasks = [Task.objects.create(organization=org, title=f"T{n}", start_datetime=at) for n, at in enumerate(times)]
    for at in (times[0], times[1], datetime(2026, 5, 4, 10, 30, 1, tzinfo=UTC), marker):
        expected = list(Task.objects.filter(start_datetime__lt=at).order_by("pk").values("pk"))
        assert before.rows(at) == expected
    assert [row["pk"] for row in before.rows(times[2])] == [tasks[0].pk, tasks[1].pk]


def test_a_compiled_delete_removes_what_the_querysets_delete_would_and_refuses_rows_others_refer_to(org):
    from taskhub.prepared import PreparedDelete

    tasks = [Task.objects.create(organization=org, title=f"T{n}") for n in range(2)]
    for task in tasks:
        TaskAddress.objects.bulk_create([TaskAddress(task=task, position=p) for p in range(3)])
    of_task = PreparedDelete(lambda task_id: TaskAddress.objects.filter(task_id=task_id), MARK_VERSION)
    assert of_task.run(tasks[0].pk) == 3
    assert of_task.run(tasks[0].pk) == 0
    assert set(TaskAddress.objects.values_list("task_id", flat=True)) == {tasks[1].pk}
    refused = PreparedDelete(lambda pk: Task.objects.filter(pk=pk), MARK_VERSION)  # addresses refer to tasks
    with pytest.raises(ValueError, match="need the ORM's delete"):
        refused.run(tasks[1].pk)
    assert TaskAddress.objects.count() == 3


@pytest.mark.requires_postgres
def test_a_statement_run_often_on_a_connection_is_prepared_in_the_server(org):
    """Server-side binding with a prepare threshold: PostgreSQL parses and plans the tracker's read
    once per connection (DATABASE_PREPARED_STATEMENTS)."""
    task = Task.objects.create(organization=org, external_id="p-1", title="Prepared")
    for _ in range(6):  # psycopg prepares on the run after its fifth
        assert tracker_task(task.url_safe_id).pk == task.pk
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s AND statement LIKE %s",
            ["%first_address%", '%"tasks_task"."url_safe_id" = $%'],
        )
        assert cursor.fetchone()[0] == 1
