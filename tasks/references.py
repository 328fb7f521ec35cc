"""Resolving what integrators send to rows of their own organization, and the people they name."""

import contextlib
import uuid
from typing import Any

from django.db import connections
from django.db.models import BooleanField, ExpressionWrapper, Model, Q, QuerySet

from taskhub.errors import ValidationFailed
from taskhub.models import Organization
from taskhub.prepared import Prepared, columns, from_row

from .models import Group, Person, Resource, Unit


def _split_refs(refs: list[Any]) -> tuple[set[int], set[uuid.UUID]]:
    ids, uuids = set(), set()
    for ref in refs:
        text = str(ref).strip()
        if text.isdigit():
            if int(text) < 2**63:  # larger ones name no row (and overflow SQLite's integers)
                ids.add(int(text))
            continue
        with contextlib.suppress(ValueError):
            uuids.add(uuid.UUID(text))
    return ids, uuids


def refs_filter(refs: list[Any]) -> Q:
    """The rows `refs` name, by numeric id or UUID identifier."""
    ids, uuids = _split_refs(refs)
    return Q(pk__in=ids) | Q(identifier__in=uuids)


# Numeric ids, the usual kind of ref, are read by queries compiled once per model, number of ids
# and thread (taskhub.prepared): compiling the ORM's query cost three times what running it did.
MAX_PREPARED_IDS = 100
_MARK = -(2**31) + 1  # ids no row has, within every key column's range: one per slot of the IN list
_ORGANIZATION_MARK = _MARK + 2 * MAX_PREPARED_IDS
_EMAIL_MARKS = ("\x00customer email\x00", "\x00customer email, selected\x00")
_prepared: dict[tuple, Prepared] = {}


def _by_ids_query(model: type[Model], count: int, with_customer: bool) -> Prepared:
    """The organization's rows with `count` ids (and, `with_customer`, the customer an email names)."""
    key = (model, count, with_customer)
    found = _prepared.get(key)
    if found is not None:
        return found

    def build(organization_id: int, *marks: Any) -> QuerySet:
        rows = model.objects.filter(organization_id=organization_id)
        if not with_customer:
            rows = rows.filter(pk__in=marks)
            return (rows.order_by() if count == 1 else rows).values(*columns(model))  # one row needs no ORDER BY
        where, selected = marks[count:]
        match = ExpressionWrapper(Q(is_customer=True, email__iexact=selected), output_field=BooleanField())
        return (
            rows.filter(Q(pk__in=marks[:count]) | Q(is_customer=True, email__iexact=where))
            .annotate(customer_match=match)
            .order_by("pk")
            .values(*columns(model), "customer_match")
        )

    marks = [_MARK + n for n in range(count)] + (list(_EMAIL_MARKS) if with_customer else [])
    return _prepared.setdefault(key, Prepared(build, _ORGANIZATION_MARK, *marks))


def _read_by_ids(model: type[Model], organization: Organization, ids: set[int], email: str = "") -> list:
    if not ids and not email:
        return []
    query = _by_ids_query(model, len(ids), bool(email))
    values = [*sorted(ids)]
    if email:
        value = connections[query.db].ops.prep_for_iexact_query(email)  # as the email__iexact lookup binds it
        values += [value, value]
    rows = []
    names = columns(model)
    for row in query.rows(organization.pk, *values):
        instance = from_row(model, row, query.db, names)
        if email:
            instance.customer_match = row["customer_match"]
        rows.append(instance)
    return rows


def _prepared_ids(refs: list[Any]) -> set[int] | None:
    """The ids `refs` name when all are numeric and few enough for a prepared query; else None."""
    ids, uuids = _split_refs(refs)
    if uuids or len(ids) > MAX_PREPARED_IDS:
        return None
    return ids


def people_sent(organization: Organization, refs: list[Any], email: str) -> list[Person]:
    """The people `refs` name and the customers `email` matches (`customer_match`), in one query.

    The database decides the match, as email__iexact would.
    """
    ids = _prepared_ids(refs)
    if ids is not None:
        return _read_by_ids(Person, organization, ids, email)
    match = Q(is_customer=True, email__iexact=email)
    return list(
        Person.objects.filter(organization=organization)
        .filter(refs_filter(refs) | match)
        .annotate(customer_match=ExpressionWrapper(match, output_field=BooleanField()))
        .order_by("pk")
    )


def resolve_many(
    model: type[Model], organization: Organization, refs: list[Any], field: str, loaded: list | None = None
) -> list:
    """Rows of `organization` by numeric id or UUID identifier; any unknown ref is a 400 naming `field`.

    `loaded`: the organization's rows already read by a query that covered refs_filter(refs).
    """
    if not refs:
        return []
    if loaded is None and (ids := _prepared_ids(refs)) is not None:
        rows = _read_by_ids(model, organization, ids)
    elif loaded is None:
        rows = model.objects.filter(refs_filter(refs), organization=organization)
        rows = list(rows.order_by() if len(refs) == 1 else rows)  # one row needs no ORDER BY
    else:
        ids, uuids = _split_refs(refs)
        rows = [row for row in loaded if row.pk in ids or row.identifier in uuids]
    found = {str(r.pk) for r in rows} | {str(r.identifier) for r in rows}
    unknown = [str(ref) for ref in refs if str(ref).strip() not in found and _norm_uuid(ref) not in found]
    if unknown:
        raise ValidationFailed(
            f"Unknown {field}: {', '.join(unknown)}.",
            {field: [f"No such id in this organization: {ref}" for ref in unknown]},
        )
    return rows


def _norm_uuid(ref: Any) -> str:
    try:
        return str(uuid.UUID(str(ref).strip()))
    except ValueError:
        return ""


def resolve_one(model: type[Model], organization: Organization, ref: Any, field: str):
    return resolve_many(model, organization, [ref], field)[0]


def resolve_by_external_ref(model: type[Model], organization: Organization, ref: str, field: str):
    row = model.objects.filter(organization=organization, external_ref=ref).first()
    if row is None:
        raise ValidationFailed(
            f"Unknown {field}: {ref}.", {field: [f"No {model._meta.verbose_name} with this reference."]}
        )
    return row


def resolve_group(organization: Organization, *, group_id: Any = None, external_ref: str | None = None) -> Group:
    if group_id is not None:
        return resolve_one(Group, organization, group_id, "group_id")
    return resolve_by_external_ref(Group, organization, external_ref, "group_external_ref")


def resolve_unit(organization: Organization, *, unit_id: Any = None, external_ref: str | None = None) -> Unit:
    if unit_id is not None:
        return resolve_one(Unit, organization, unit_id, "unit_id")
    return resolve_by_external_ref(Unit, organization, external_ref, "unit_external_ref")


ROLE_FLAGS = {"customer": "is_customer", "crew": "is_crew", "staff": "is_staff_member"}


def person_resolve(organization: Organization, spec: dict[str, Any], *, field: str, role: str) -> Person:
    """A Travtus person spec: by identifier or external_ref, else found or created by contact + name.

    A spec with only contact details needs (email or phone) and (first or last name).
    """
    if spec.get("identifier"):
        return resolve_one(Person, organization, spec["identifier"], f"{field}.identifier")
    if spec.get("external_ref"):
        return resolve_by_external_ref(Person, organization, spec["external_ref"], f"{field}.external_ref")
    email, phone = spec.get("email_address") or "", spec.get("phone_number") or ""
    first, last = spec.get("first_name") or "", spec.get("last_name") or ""
    if not (email or phone) or not (first or last):
        raise ValidationFailed(
            f"{field} needs an identifier or external_ref, or (email_address or phone_number) and "
            "(first_name or last_name).",
            {
                field: [
                    "Give identifier or external_ref, or (email_address or phone_number) and (first_name or last_name)."
                ]
            },
        )
    match = Q(email__iexact=email) if email else Q(phone=phone) | Q(mobile_number=phone)
    person = Person.objects.filter(match, organization=organization).order_by("pk").first()
    if person is None:
        return Person.objects.create(
            organization=organization, email=email, phone=phone, first_name=first, last_name=last,
            **{ROLE_FLAGS[role]: True},
        )  # fmt: skip
    if not getattr(person, ROLE_FLAGS[role]):
        setattr(person, ROLE_FLAGS[role], True)
        person.save(update_fields=[ROLE_FLAGS[role]])
    return person


def upsert_by_external(model: type[Model], organization: Organization, key: str, items: list[dict], **flags) -> list:
    """Create or update rows of `model` by their external key (one SELECT, then bulk writes)."""
    if not items:
        return []
    by_key = {item[key]: item for item in items}
    existing = {getattr(r, key): r for r in model.objects.filter(organization=organization, **{f"{key}__in": by_key})}
    created, updated, ordered = [], [], []
    for ref, values in by_key.items():
        values = {k: v for k, v in values.items() if k != key}
        row = existing.get(ref)
        if row is None:
            row = model(organization=organization, **{key: ref}, **flags, **values)
            created.append(row)
        elif any(getattr(row, k) != v for k, v in {**flags, **values}.items()):
            for k, v in {**flags, **values}.items():
                setattr(row, k, v)
            updated.append(row)
        ordered.append(row)
    if created:
        model.objects.bulk_create(created)
    if updated:
        model.objects.bulk_update(updated, [*flags, *{k for item in items for k in item if k != key}])
    return ordered


def upsert_resources(organization: Organization, items: list[dict]) -> list[Resource]:
    return upsert_by_external(Resource, organization, "external_id", items)
