"""One INSERT for many new rows (taskhub.inserting): the rows bulk_create would write, with their keys."""

from datetime import UTC, datetime

import pytest
from django.db import models
from django.test.utils import isolate_apps

from taskhub.inserting import _plain, insert_all
from tasks.models import Task, TaskAddress
from webhooks.models import Event

pytestmark = pytest.mark.django_db

START = datetime(2026, 5, 4, 8, 30, tzinfo=UTC)
GENERATED = {"id", "identifier", "url_safe_id", "external_id", "created_at", "updated_at", "status_changed_at"}


def new_task(org, ref: str) -> Task:
    return Task(organization=org, external_id=ref, title="Boiler", start_datetime=START,
                extra_fields={"floor": 3, "codes": ["A", "B"]}, notify_sms=False)  # fmt: skip


def test_the_rows_are_those_bulk_create_writes(org):
    ours, theirs = insert_all([new_task(org, "ours")])[0], Task.objects.bulk_create([new_task(org, "theirs")])[0]
    stored = {row["external_id"]: row for row in Task.objects.values()}
    assert {k: v for k, v in stored["ours"].items() if k not in GENERATED} == {
        k: v for k, v in stored["theirs"].items() if k not in GENERATED
    }
    assert stored["ours"]["id"] == ours.pk
    assert stored["theirs"]["id"] == theirs.pk
    assert stored["ours"]["created_at"] is not None
    assert stored["ours"]["updated_at"] is not None
    assert stored["ours"]["extra_fields"] == {"floor": 3, "codes": ["A", "B"]}
    assert not ours._state.adding
    ours.title = "Boiler, again"
    ours.save()  # an UPDATE of the row it wrote
    assert Task.objects.get(pk=ours.pk).title == "Boiler, again"


def test_keys_come_back_in_the_order_the_rows_were_given(org):
    task = Task.objects.create(organization=org, title="Move")
    rows = insert_all([TaskAddress(task=task, position=n, city=f"City {n}") for n in (4, 0, 3, 1, 2)])
    assert all(isinstance(row.pk, int) for row in rows)
    assert {row.pk: row.position for row in rows} == dict(TaskAddress.objects.values_list("pk", "position"))
    assert {row.pk: row.city for row in rows} == dict(TaskAddress.objects.values_list("pk", "city"))


def test_a_key_the_model_assigns_itself_is_written_as_given(org):
    event = Event(organization=org, type="task.updated", payload={"at": START})
    (written,) = insert_all([event])
    assert written.pk == event.pk
    assert written.pk.startswith("msg_")
    assert Event.objects.get(pk=event.pk).payload == {"at": "2026-05-04T08:30:00Z"}  # the field's own encoder


def test_rows_of_related_objects_saved_after_assignment_take_their_keys(org):
    task = Task(organization=org, title="Later")
    address = TaskAddress(task=task, city="Newark")
    task.save()
    insert_all([address])
    assert TaskAddress.objects.get(pk=address.pk).task_id == task.pk
    with pytest.raises(ValueError, match="unsaved related object"):
        insert_all([TaskAddress(task=Task(organization=org), city="Nowhere")])


def test_mixed_models_and_rows_with_keys_are_refused(org):
    task = Task.objects.create(organization=org, title="Move")
    with pytest.raises(ValueError, match="new instances of one model"):
        insert_all([TaskAddress(task=task), task])
    with pytest.raises(ValueError, match="new instances of one model"):
        insert_all([TaskAddress(pk=10**9, task=task)])
    assert insert_all([]) == []
    assert not TaskAddress.objects.exists()


@isolate_apps("tasks")
def test_a_model_with_values_the_database_computes_is_left_to_bulk_create():
    class Defaulted(models.Model):  # noqa: DJ008
        name = models.CharField(max_length=10, db_default="x")

        class Meta:
            app_label = "tasks"

    class Generated(models.Model):  # noqa: DJ008
        a = models.IntegerField()
        b = models.GeneratedField(expression=models.F("a") + 1, output_field=models.IntegerField(), db_persist=True)

        class Meta:
            app_label = "tasks"

    class Plain(models.Model):  # noqa: DJ008
        a = models.IntegerField(default=1)

        class Meta:
            app_label = "tasks"

    assert not _plain(Defaulted)
    assert not _plain(Generated)
    assert _plain(Plain)
    assert _plain(Task)
    assert _plain(Event)


def test_more_rows_than_the_backend_takes_parameters_for_go_in_batches(org):
    task = Task.objects.create(organization=org, title="Many stops")
    count = 6_000  # 66,000 values: more than one bound statement takes, many batches on SQLite
    rows = insert_all([TaskAddress(task=task, position=n % 30_000, city=f"Stop {n}") for n in range(count)])
    assert len({row.pk for row in rows}) == count
    assert {row.pk: row.position for row in rows} == dict(TaskAddress.objects.values_list("pk", "position"))
