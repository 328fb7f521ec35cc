"""One row's chosen columns in one UPDATE (taskhub.updating): what save(update_fields=...) writes, no more."""

import pytest
from django.db import DatabaseError
from django.db.models import signals

from taskhub.updating import save_fields, update_rows
from tasks.models import Group, Person, Task

pytestmark = pytest.mark.django_db


def test_only_the_named_columns_are_written_and_auto_now_moves(org):
    group = Group.objects.create(organization=org, name="North")
    task = Task.objects.create(organization=org, title="Old", details="kept")
    before = task.updated_at
    task.title, task.details, task.group = "New", "changed in memory only", group
    save_fields(task, ["title", "group", "updated_at"])
    stored = Task.objects.get(pk=task.pk)
    assert (stored.title, stored.details, stored.group_id) == ("New", "kept", group.pk)
    assert stored.updated_at == task.updated_at
    assert task.updated_at > before


def test_a_row_that_is_gone_is_an_error_as_with_save(org):
    task = Task.objects.create(organization=org, title="Gone")
    Task.objects.filter(pk=task.pk).delete()
    task.title = "Again"
    with pytest.raises(DatabaseError, match="did not affect any rows"):
        save_fields(task, ["title"])


def test_a_model_with_save_receivers_is_saved_by_save_itself(org):
    person = Person.objects.create(organization=org, first_name="Ada")
    heard = []

    def receiver(sender, instance, update_fields, **kwargs):
        heard.append(set(update_fields))

    signals.post_save.connect(receiver, sender=Person, weak=False)
    try:
        person.email = "ada@example.com"
        save_fields(person, ["email"])
    finally:
        signals.post_save.disconnect(receiver, sender=Person)
    assert heard == [{"email"}]
    assert Person.objects.get(pk=person.pk).email == "ada@example.com"


def test_update_rows_writes_the_same_values_into_the_named_rows_only(org):
    tasks = [Task.objects.create(organization=org, title=f"T{n}", details="kept") for n in range(3)]
    assert update_rows(Task, [tasks[0].pk, tasks[2].pk], title="Same", importance="high") == 2
    stored = {task.pk: (task.title, task.importance, task.details) for task in Task.objects.all()}
    assert stored == {
        tasks[0].pk: ("Same", "high", "kept"),
        tasks[1].pk: ("T1", tasks[1].importance, "kept"),
        tasks[2].pk: ("Same", "high", "kept"),
    }
    assert update_rows(Task, [], title="Nothing") == 0


def test_update_rows_refuses_what_is_not_a_plain_column(org):
    with pytest.raises(ValueError, match="plain columns"):
        update_rows(Task, [1], id=2)
