"""Phone numbers: parsed with `phonenumbers`, stored in E.164."""

import phonenumbers
from django.core.exceptions import ValidationError

DEFAULT_REGION = "US"


def normalize_phone(raw: str, region: str | None = DEFAULT_REGION) -> str:
    """Return `raw` in E.164 (+14155550123) or raise ValidationError saying why."""
    raw = (raw or "").strip()
    if not raw:
        return ""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(
            f"'{raw}' is not a phone number; use the international form, e.g. +14155550123.", code="invalid_phone"
        ) from exc
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(
            f"'{raw}' is not a valid phone number; use the international form, e.g. +14155550123.",
            code="invalid_phone",
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def validate_e164(value: str) -> None:
    if value and normalize_phone(value, None) != value:
        raise ValidationError(f"'{value}' is not in E.164 form, e.g. +14155550123.", code="invalid_phone")
