"""Parsing of integrator input that several routes share: datetimes in an organization's zone."""

import zoneinfo
from datetime import datetime

from django.utils import timezone
from django.utils.dateparse import parse_datetime

EARLIEST_YEAR = 1970
LATEST_YEAR = 2200
ACCEPTED_FORMATS = "YYYY-MM-DDThh:mm:ss, YYYY-MM-DD hh:mm:ss, optionally with Z or ±hh:mm"


class DateTimeInputError(ValueError):
    pass


def parse_datetime_in_zone(raw: object, zone: zoneinfo.ZoneInfo) -> datetime:
    """ISO 8601 with 'T' or a space; an offset wins, a naive value is read in `zone`."""
    if not isinstance(raw, str) or not raw.strip():
        raise DateTimeInputError(f"Expected a datetime string ({ACCEPTED_FORMATS}).")
    try:
        value = parse_datetime(raw.strip())
    except ValueError as exc:  # well-formed but impossible, e.g. month 13
        raise DateTimeInputError(f"'{raw}' is not a valid datetime: {exc}.") from exc
    if value is None:
        raise DateTimeInputError(f"'{raw}' is not a datetime; use {ACCEPTED_FORMATS}.")
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise DateTimeInputError(f"'{raw}' is out of range ({EARLIEST_YEAR}–{LATEST_YEAR}).")
    if timezone.is_naive(value):
        value = value.replace(tzinfo=zone)
    return value.astimezone(zoneinfo.ZoneInfo("UTC"))
