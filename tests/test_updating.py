"""One row's chosen columns in one UPDATE (taskhub.updating): what save(update_fields=...) writes, no more."""

import pytest
from django.db import DatabaseError
from django.db.models import signals

from taskhub.updating import save_fields
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
