"""The Arrivy-compatible upsert: Arrivy's field names translated into one TaskChanges."""

from typing import Any

from django.db import IntegrityError, transaction

from taskhub.inserting import insert_all
from taskhub.models import Organization
from taskhub.updating import save_fields

from .models import Group, Person, Resource, Task
from .references import people_sent, resolve_many, resolve_one, upsert_by_external, upsert_resources
from .services import TaskChanges, UpsertResult, find_for_update, task_upsert

TASK_FIELDS = ("title", "details", "start_datetime", "end_datetime", "enable_time_window_display",
               "time_window_start", "unscheduled", "extra_fields", "external_url", "template")  # fmt: skip
CUSTOMER_FIELDS = {
    "customer_first_name": "first_name",
    "customer_last_name": "last_name",
    "customer_email": "email",
    "customer_company_name": "company_name",
    "customer_mobile_number": "mobile_number",
    "customer_phone": "phone",
    "customer_notes": "notes",
}
CUSTOMER_ADDRESS_FIELDS = {
    "customer_address_line_1": "address_line_1",
    "customer_address_line_2": "address_line_2",
    "customer_city": "city",
    "customer_state": "state",
    "customer_country": "country",
    "customer_zipcode": "zipcode",
}


def _address(values: dict[str, Any]) -> dict[str, Any]:
    address = {k: v for k, v in values.items() if k != "exact_location"}
    if "exact_location" in values:
        location = values["exact_location"] or {}
        address.update(lat=location.get("lat"), lng=location.get("lng"))
    return address


def _customer(
    organization: Organization, data: dict[str, Any], current: Person | None, loaded: list[Person] | None = None
) -> Person | None:
    """The customer the request names, created or updated with the customer_* fields sent.

    `loaded`: people read with `customer_match` annotated (see _people_sent), instead of a lookup.
    """
    if data.get("customer_id"):
        person = resolve_one(Person, organization, data["customer_id"], "customer_id")
    else:
        person = current
    values = {CUSTOMER_FIELDS[k]: v for k, v in data.items() if k in CUSTOMER_FIELDS}
    if not values:
        return person
    if person is None and loaded is not None:
        person = next((p for p in loaded if p.customer_match), None)
    elif person is None and (values.get("email") or values.get("mobile_number") or values.get("phone")):
        person = _find_customer(organization, values)
    if person is None:
        return insert_all([Person(organization=organization, is_customer=True, **values)])[0]
    changed = [k for k, v in values.items() if getattr(person, k) != v]
    for k in changed:
        setattr(person, k, values[k])
    if changed:
        save_fields(person, changed)
    return person


def _find_customer(organization: Organization, values: dict[str, Any]) -> Person | None:
    people = Person.objects.filter(organization=organization, is_customer=True).order_by("pk")
    if values.get("email"):
        return people.filter(email__iexact=values["email"]).first()
    number = values.get("mobile_number") or values.get("phone")
    return people.filter(mobile_number=number).first() or people.filter(phone=number).first()


def _people_sent(organization: Organization, data: dict[str, Any], current: Task | None) -> list[Person] | None:
    """The crew `entity_ids` names and the customer matched by `customer_email`, in one query.

    Only when the request needs both (a task without a customer yet, found by email, and crew by
    id); otherwise each is read on its own, as before.
    """
    email = data.get("customer_email")
    refs = data.get("entity_ids") or []
    if not (email and refs) or data.get("customer_id") or (current is not None and current.customer_id):
        return None
    return people_sent(organization, refs, email)


def _crew(organization: Organization, data: dict[str, Any], loaded: list[Person] | None = None) -> list[Person] | None:
    if "entity_ids" not in data and "entities" not in data:
        return None
    crew = resolve_many(Person, organization, data.get("entity_ids") or [], "entity_ids", loaded)
    inline = []
    for item in data.get("entities") or []:
        values = {**item, "external_ref": item["external_id"]}
        del values["external_id"]
        name = values.pop("name", "")
        if name and not (values.get("first_name") or values.get("last_name")):
            values["first_name"], _, values["last_name"] = name.partition(" ")
        inline.append(values)
    crew += upsert_by_external(Person, organization, "external_ref", inline, is_crew=True)
    return list({p.pk: p for p in crew}.values())


def _resources(organization: Organization, data: dict[str, Any]) -> list[Resource] | None:
    if "resource_ids" not in data and "resources" not in data:
        return None
    rows = resolve_many(Resource, organization, data.get("resource_ids") or [], "resource_ids")
    rows += upsert_resources(organization, data.get("resources") or [])
    return list({r.pk: r for r in rows}.values())


def to_changes(organization: Organization, data: dict[str, Any], current: Task | None) -> TaskChanges:
    fields = {name: data[name] for name in TASK_FIELDS if name in data}
    if "notifications" in data:
        fields.update({f"notify_{k}": v for k, v in data["notifications"].items()})
    if "group_id" in data:
        fields["group"] = resolve_one(Group, organization, data["group_id"], "group_id") if data["group_id"] else None
    address = {CUSTOMER_ADDRESS_FIELDS[k]: v for k, v in data.items() if k in CUSTOMER_ADDRESS_FIELDS}
    if "customer_exact_location" in data:
        address.update(_address({"exact_location": data["customer_exact_location"]}))
    additional = data.get("additional_addresses")
    people = _people_sent(organization, data, current)
    return TaskChanges(
        fields=fields,
        customer=_customer(organization, data, current.customer if current else None, people),
        address=address or None,
        additional_addresses=[_address(a) for a in additional] if additional is not None else None,
        assignees=_crew(organization, data, people),
        resources=_resources(organization, data),
        suppress_webhooks=data.get("do_not_send_webhook_notification", False),
    )


def arrivy_upsert(*, organization: Organization, external_id: str, data: dict[str, Any]) -> UpsertResult:
    """PUT/POST /express/tasks/upsert/{external_id}: create or update by the integrator's id.

    A new id is inserted without a savepoint around the INSERT. If a concurrent request inserted
    the same id first, the unique index waits for it to commit and refuses ours; the whole change
    is then rolled back and run once more, and that second pass finds and updates the task.
    """
    try:
        return _arrivy_upsert(organization, external_id, data, insert_savepoint=False)
    except IntegrityError:
        return _arrivy_upsert(organization, external_id, data, insert_savepoint=True)


@transaction.atomic
def _arrivy_upsert(
    organization: Organization, external_id: str, data: dict[str, Any], *, insert_savepoint: bool
) -> UpsertResult:
    current = find_for_update(organization, external_id)
    changes = to_changes(organization, data, current)
    return task_upsert(
        organization=organization,
        external_id=external_id,
        changes=changes,
        locked=current,
        searched=True,
        insert_savepoint=insert_savepoint,
    )
