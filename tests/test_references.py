"""Refs to the organization's rows: numeric ids through compiled queries, the same rows as the ORM's."""

import pytest

from taskhub.errors import ValidationFailed
from tasks import references
from tasks.models import Group, Person
from tasks.references import people_sent, resolve_many, resolve_one

pytestmark = pytest.mark.django_db


def fields(people: list[Person]) -> list[dict]:
    return [{f.attname: getattr(p, f.attname) for f in Person._meta.concrete_fields} for p in people]


@pytest.fixture
def people(org) -> list[Person]:
    names = [("Cy", "Young"), ("Ada", "Lovelace"), ("Bob", "Smith"), ("Al", "Lovelace")]
    return [
        Person.objects.create(organization=org, first_name=first, last_name=last, is_crew=True) for first, last in names
    ]


def test_numeric_refs_read_the_rows_the_orm_reads_in_its_order(org, people):
    for refs in ([people[0].pk], [people[0].pk, people[1].pk, str(people[2].pk)], [p.pk for p in people]):
        ids = {int(ref) for ref in refs}
        expected = list(Person.objects.filter(organization=org, pk__in=ids))  # the model's order: by name
        assert fields(resolve_many(Person, org, refs, "entity_ids")) == fields(expected)
        assert (Person, len(ids), False) in references._prepared
    group = Group.objects.create(organization=org, name="North")
    assert resolve_one(Group, org, str(group.pk), "group_id") == group


def test_unknown_ids_and_another_organizations_are_refused_naming_the_field(org, other_org, people):
    stranger = Person.objects.create(organization=other_org, first_name="Eve")
    for refs in ([people[0].pk, 10**12], [stranger.pk], [2**70]):
        with pytest.raises(ValidationFailed) as refused:
            resolve_many(Person, org, refs, "entity_ids")
        assert set(refused.value.fields) == {"entity_ids"}


def test_identifiers_and_ids_together_are_read_by_the_orm(org, people):
    refs = [str(people[0].identifier), people[1].pk]
    assert {p.pk for p in resolve_many(Person, org, refs, "entity_ids")} == {people[0].pk, people[1].pk}


def test_the_customer_an_email_names_is_matched_as_email_iexact_matches(org, people):
    ada = Person.objects.create(organization=org, first_name="Ada", email="Ada@Example.com", is_customer=True)
    Person.objects.create(organization=org, first_name="X", email="axb@example.com", is_customer=True)
    Person.objects.create(organization=org, first_name="Crew", email="ada@example.com", is_crew=True)
    found = people_sent(org, [people[0].pk], "ada@EXAMPLE.com")
    assert [p.pk for p in found if p.customer_match] == [ada.pk]
    assert people[0].pk in {p.pk for p in found}
    wildcard = people_sent(org, [people[0].pk], "a_b@example.com")  # `_` is no wildcard, on any database
    assert [p for p in wildcard if p.customer_match] == []
    assert (Person, 1, True) in references._prepared
    by_identifier = people_sent(org, [str(people[0].identifier)], "ADA@example.com")
    assert [p.pk for p in by_identifier if p.customer_match] == [ada.pk]
    no_such_crew = people_sent(org, [2**70], "ada@example.com")  # an id no row can have: only the customer
    assert [(p.pk, p.customer_match) for p in no_such_crew] == [(ada.pk, True)]
