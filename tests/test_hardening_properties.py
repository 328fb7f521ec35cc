"""Properties that hold for any input: the datetime parser, person specs, phone numbers, the upsert merge.

Examples per property are bounded for CI (PROPERTY_EXAMPLES, default 60); raise it locally to search harder.
"""

import os
import uuid
import zoneinfo
from datetime import UTC, datetime, timedelta

import phonenumbers
import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from taskhub.errors import ValidationFailed
from taskhub.phones import normalize_phone
from tasks import arrivy
from tasks.models import Person, Task
from tasks.parsing import DateTimeInputError, parse_datetime_in_zone
from tasks.references import person_resolve
from tasks.serializers import PersonSpecSerializer, UpsertSerializer

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "60"))
bounded = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

ZONES = ["UTC", "America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Kiritimati"]
zones = st.sampled_from(ZONES).map(zoneinfo.ZoneInfo)
in_range = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2199, 12, 30))
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda minutes: timedelta(minutes=minutes))


class Rollback(Exception):
    """Raised to undo one example's writes, so examples do not see each other's rows."""


def isolated(function):
    """Run `function` in a savepoint that is always rolled back."""
    try:
        with transaction.atomic():
            function()
            raise Rollback
    except Rollback:
        pass


# --- datetimes --------------------------------------------------------------------------------


@bounded
@given(moment=in_range, offset=offsets, zone=zones, separator=st.sampled_from(["T", " "]))
def test_a_datetime_with_an_offset_round_trips_to_the_same_instant_whatever_the_zone(moment, offset, zone, separator):
    aware = moment.replace(tzinfo=UTC).astimezone(timezone_of(offset))
    parsed = parse_datetime_in_zone(aware.isoformat(sep=separator), zone)

    assert parsed == aware
    assert parsed.utcoffset() == timedelta(0)


def timezone_of(offset: timedelta):
    from datetime import timezone

    return timezone(offset)


@bounded
@given(moment=in_range, zone=zones, separator=st.sampled_from(["T", " "]))
def test_a_naive_datetime_is_read_in_the_organizations_zone(moment, zone, separator):
    parsed = parse_datetime_in_zone(moment.isoformat(sep=separator), zone)

    assert parsed == moment.replace(tzinfo=zone)


@bounded
@given(moment=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)), zone=zones)
def test_years_outside_the_supported_range_are_refused(moment, zone):
    assume(not 1970 <= moment.year <= 2200)
    with pytest.raises(DateTimeInputError, match="out of range"):
        parse_datetime_in_zone(moment.isoformat(), zone)


@bounded
@given(
    raw=st.one_of(
        st.text(max_size=40),
        st.from_regex(r"\A\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([+-]\d{2}:?\d{2}|Z)?\Z"),
        st.integers(),
        st.none(),
        st.lists(st.integers(), max_size=2),
        st.floats(allow_nan=True),
    ),
    zone=zones,
)
def test_garbage_is_a_datetime_input_error_and_nothing_else(raw, zone):
    try:
        parsed = parse_datetime_in_zone(raw, zone)
    except DateTimeInputError:
        return
    assert isinstance(raw, str)
    assert parsed.utcoffset() == timedelta(0)
    assert 1969 <= parsed.year <= 2201


# --- phone numbers ----------------------------------------------------------------------------

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
FORMATS = [
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    phonenumbers.PhoneNumberFormat.RFC3966,
]


@st.composite
def valid_numbers(draw) -> phonenumbers.PhoneNumber:
    region = draw(st.sampled_from(REGIONS))
    kind = draw(st.sampled_from([phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]))
    number = phonenumbers.example_number_for_type(region, kind)
    assume(number is not None and phonenumbers.is_valid_number(number))
    return number


@bounded
@given(number=valid_numbers(), style=st.sampled_from(FORMATS))
def test_a_valid_number_in_any_international_format_normalizes_to_e164_idempotently(number, style):
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    written = phonenumbers.format_number(number, style).removeprefix("tel:")

    assert normalize_phone(written) == e164
    assert normalize_phone(e164) == e164
    assert normalize_phone(normalize_phone(written), None) == e164


@bounded
@given(number=valid_numbers())
def test_a_national_number_normalizes_in_its_own_region(number):
    region = phonenumbers.region_code_for_number(number)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)

    assert normalize_phone(national, region) == phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@bounded
@given(raw=st.one_of(st.text(max_size=30), st.from_regex(r"\A\+?[\d \-().]{0,25}\Z")))
def test_anything_else_is_a_validation_error_or_a_valid_e164_number(raw):
    try:
        result = normalize_phone(raw)
    except ValidationError as error:
        refused = error
    else:
        refused = None
    if refused is not None:
        assert refused.code == "invalid_phone"
    elif result:
        assert result.startswith("+")
        assert phonenumbers.is_valid_number(phonenumbers.parse(result, None))
        assert normalize_phone(result) == result
    else:
        assert not raw.strip()


# --- person specs -----------------------------------------------------------------------------

SPEC_FIELD = "resident"


@pytest.fixture
def people(org, other_org) -> dict[str, Person]:
    return {
        "mine": Person.objects.create(
            organization=org, external_ref="res-1", email="pat@example.com", first_name="Pat", phone="+14155550123"
        ),
        "theirs": Person.objects.create(
            organization=other_org, external_ref="res-9", email="lee@example.com", first_name="Lee"
        ),
    }


def spec_values(people_refs: list[str]):
    refs = st.sampled_from(people_refs) | st.text(max_size=70) | st.from_regex(r"\A\d{1,64}\Z") | st.uuids().map(str)
    return st.fixed_dictionaries(
        {},
        optional={
            "identifier": refs,
            "external_ref": st.sampled_from(["res-1", "res-9", ""]) | st.text(max_size=300),
            "email_address": st.sampled_from(["pat@example.com", "LEE@example.com", ""]) | st.emails() | st.text(),
            "phone_number": st.sampled_from(["+14155550123", "(415) 555-0199", "", "12"]) | st.text(max_size=45),
            "first_name": st.text(max_size=140),
            "last_name": st.text(max_size=140),
        },
    )


@pytest.mark.django_db
def test_any_person_spec_resolves_within_the_organization_or_is_refused_naming_the_field(org, people):
    refs = [str(p.identifier) for p in people.values()] + [str(p.pk) for p in people.values()]

    @bounded
    @given(spec=spec_values(refs))
    def check(spec):
        isolated(lambda: resolve_or_refuse(org, spec))

    check()


def resolve_or_refuse(org, spec: dict) -> None:
    serializer = PersonSpecSerializer(data=spec)
    if not serializer.is_valid():
        assert set(serializer.errors) <= set(spec)  # a 400 naming the spec's own fields
        return
    try:
        person = person_resolve(org, serializer.validated_data, field=SPEC_FIELD, role="customer")
    except ValidationFailed as error:
        refused = error.fields
    else:
        refused = None
    if refused is not None:
        assert refused, "a refusal names the field"
        assert all(name.split(".")[0] == SPEC_FIELD for name in refused), refused
        return
    assert person.organization_id == org.pk
    assert Person.objects.filter(pk=person.pk, organization=org).exists()
    if not (spec.get("identifier") or spec.get("external_ref")):
        assert person.is_customer, "a person found or created by contact details takes the role"


# --- the upsert merge -------------------------------------------------------------------------

partial_upserts = st.fixed_dictionaries(
    {},
    optional={
        # NUL and lone surrogates are refused with a 400 (tests/test_hardening_input.py); the merge
        # concerns accepted values.
        "title": st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20),
        "details": st.sampled_from(["", "Leaky tap", "Bring a ladder"]),
        "unscheduled": st.booleans(),
        "time_window_start": st.none() | st.integers(min_value=0, max_value=120),
        "template": st.sampled_from(["", "default", "gold"]),
        "extra_fields": st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(0, 3), max_size=2),
    },
)
DEFAULTS = {
    "title": "",
    "details": "",
    "unscheduled": False,
    "time_window_start": None,
    "template": "",
    "extra_fields": {},
}


@pytest.mark.django_db
def test_a_sequence_of_partial_upserts_equals_merging_the_same_dicts_in_memory(org):
    @bounded
    @given(bodies=st.lists(partial_upserts, min_size=1, max_size=6))
    def check(bodies):
        isolated(lambda: replay_upserts(org, bodies))

    check()


def replay_upserts(org, bodies: list[dict]) -> None:
    external_id = f"prop-{uuid.uuid4()}"
    expected, version = dict(DEFAULTS), 0
    for index, body in enumerate(bodies):
        serializer = UpsertSerializer(data=body, context={"organization": org})
        serializer.is_valid(raise_exception=True)
        sent = {name: value for name, value in serializer.validated_data.items() if name in DEFAULTS}
        result = arrivy.arrivy_upsert(organization=org, external_id=external_id, data=serializer.validated_data)
        merged = {**expected, **sent}
        effective = index == 0 or merged != expected
        expected = merged
        version = 1 if index == 0 else version + (1 if effective else 0)
        task = Task.objects.get(pk=result.task.pk)
        assert {name: getattr(task, name) for name in DEFAULTS} == expected
        assert task.version == version, (body, result.changed)
    assert Task.objects.filter(organization=org, external_id=external_id).count() == 1
