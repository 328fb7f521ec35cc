"""Domain model rules the database and validation enforce: ids unique per organization,
soft delete keeps history, phone numbers in E.164."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from tasks.models import Group, Person, StatusType, Task, Unit
from tasks.services import task_delete, task_report_status

pytestmark = pytest.mark.django_db


def test_duplicate_external_id_in_one_organization_is_refused(org):
    Task.objects.create(organization=org, external_id="job-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Task.objects.create(organization=org, external_id="job-1")
    assert Task.objects.filter(external_id="job-1").count() == 1


def test_duplicate_external_id_has_a_clear_validation_message(org):
    Task.objects.create(organization=org, external_id="job-1")
    with pytest.raises(ValidationError) as error:
        Task(organization=org, external_id="job-1").full_clean()
    assert "already has a task with this external id" in str(error.value)


def test_the_same_external_id_in_two_organizations_is_fine(org, other_org):
    Task.objects.create(organization=org, external_id="job-1")
    Task.objects.create(organization=other_org, external_id="job-1")
    assert Task.objects.filter(external_id="job-1").count() == 2


def test_tasks_without_an_external_id_do_not_collide(org):
    Task.objects.create(organization=org)
    Task.objects.create(organization=org)
    assert Task.objects.filter(organization=org, external_id__isnull=True).count() == 2


def test_a_soft_deleted_tasks_external_id_can_be_reused_and_its_history_stays(org):
    old = Task.objects.create(organization=org, external_id="job-1", title="Old")
    task_report_status(task=old, type=StatusType.ENROUTE)
    task_delete(task=old)

    new = Task.objects.create(organization=org, external_id="job-1", title="New")

    old.refresh_from_db()
    assert old.is_deleted
    assert old.coarse_status == "deleted"
    assert list(old.statuses.values_list("type", flat=True)) == ["ENROUTE"]
    assert list(Task.objects.alive().filter(external_id="job-1")) == [new]


@pytest.mark.parametrize("phone", ["12345", "call me", "+1 555"])
def test_person_phone_must_be_a_real_number_with_a_clear_error(org, phone):
    person = Person(organization=org, first_name="Ann", phone=phone)
    with pytest.raises(ValidationError) as error:
        person.full_clean()
    message = error.value.message_dict["phone"][0]
    assert f"'{phone}' is not" in message
    assert "+14155550123" in message  # says what a good number looks like


@pytest.mark.parametrize("phone", ["+1 212 555 0101", "(212) 555-0101", "212.555.0101"])
def test_person_phone_in_a_national_or_spaced_form_is_stored_in_e164(org, phone):
    person = Person(organization=org, first_name="Ann", phone=phone)
    person.full_clean()
    assert person.phone == "+12125550101"


def test_person_with_a_valid_e164_phone_passes(org):
    person = Person(organization=org, first_name="Ann", phone="+12125550101", mobile_number="+442079460958")
    person.full_clean()
    person.save()
    assert person.sms_number == "+442079460958"


@pytest.mark.parametrize(
    "make",
    [
        lambda org, ref: Person.objects.create(organization=org, external_ref=ref),
        lambda org, ref: Group.objects.create(organization=org, name="G", external_ref=ref),
        lambda org, ref: Unit.objects.create(
            organization=org, group=Group.objects.create(organization=org, name="G"), unit_number="1", external_ref=ref
        ),
    ],
    ids=["person", "group", "unit"],
)
def test_duplicate_external_ref_per_organization_is_refused(org, other_org, make):
    make(org, "ref-1")
    make(other_org, "ref-1")  # another organization may use the same reference
    with pytest.raises(IntegrityError), transaction.atomic():
        make(org, "ref-1")


def test_a_tasks_status_label_is_the_one_django_gives_and_an_unknown_value_shows_as_itself():
    from django.utils import translation

    assert "get_status_display" in Task.__dict__  # not Django's, which builds a dict of every choice per call
    task = Task()
    generic = Task._get_FIELD_display
    with translation.override("de"):
        for status in StatusType:
            task.status = status
            assert task.get_status_display() == generic(task, Task._meta.get_field("status"))
    task.status = "LEGACY"
    assert task.get_status_display() == "LEGACY" == generic(task, Task._meta.get_field("status"))
