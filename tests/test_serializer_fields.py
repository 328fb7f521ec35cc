"""Input shapes lend their fields, built once per thread, to each new instance."""

import threading
from datetime import UTC, datetime

import pytest

from tasks.serializers import AddressInSerializer, UpsertSerializer

pytestmark = pytest.mark.django_db

BODY = {
    "start_datetime": "2026-12-01T09:00:00",
    "additional_addresses": [{"city": "Newark"}],
    "customer_exact_location": {"lat": 40.75, "lng": -73.99},
}


def validated(org, data=BODY) -> UpsertSerializer:
    serializer = UpsertSerializer(data=data, context={"organization": org})
    serializer.is_valid()
    return serializer


def test_instances_in_one_thread_share_fields_and_build_them_once(org):
    first, second = validated(org), validated(org)
    assert first.fields is second.fields
    assert second.fields["additional_addresses"].child.fields is first.fields["additional_addresses"].child.fields


def test_each_instance_validates_with_its_own_context(org, other_org):
    """A naive time is read in the organization of the instance validating it, not the previous one's."""
    new_york, london = validated(org), validated(other_org)
    assert london.validated_data["start_datetime"] == datetime(2026, 12, 1, 9, tzinfo=UTC)
    again = validated(org)
    assert again.validated_data["start_datetime"] == datetime(2026, 12, 1, 14, tzinfo=UTC)
    assert new_york.validated_data["start_datetime"] == again.validated_data["start_datetime"]
    assert again.fields["start_datetime"].root is again
    assert again.fields["additional_addresses"].child.root is again


def test_nested_errors_still_name_the_field(org):
    bad = validated(org, {"additional_addresses": [{"city": "Newark", "floor": 3}], "customer_exact_location": {}})
    assert bad.errors["additional_addresses"][0] == {"floor": ["Unknown field."]}
    assert set(bad.errors["customer_exact_location"]) == {"lat", "lng"}
    good = validated(org)
    assert good.is_valid(), good.errors


def test_other_threads_build_their_own(org):
    here = validated(org).fields
    there = []
    thread = threading.Thread(target=lambda: there.append(UpsertSerializer(data=BODY).fields))
    thread.start()
    thread.join()
    assert there[0] is not here
    assert set(there[0]) == set(here)


def test_a_shape_used_alone_and_nested_keeps_separate_fields(org):
    alone = AddressInSerializer(data={"city": "Newark"})
    assert alone.is_valid(), alone.errors
    nested = validated(org).fields["additional_addresses"].child
    assert alone.fields is not nested.fields
    assert nested.fields["city"].parent is nested
