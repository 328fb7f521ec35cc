"""Task services: every write to a task goes through here, whichever route called it."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import CharField, Model, OuterRef, QuerySet, StringAgg, Subquery, Value
from django.db.models.functions import Cast
from django.utils import timezone

from taskhub.errors import Conflict, ValidationFailed
from taskhub.inserting import insert_all
from taskhub.models import Organization
from taskhub.prepared import Prepared, PreparedDelete, columns, from_row
from taskhub.updating import save_fields

from . import events
from .attachments import attach_to_status
from .models import Person, Rating, Resource, StatusType, Task, TaskAddress, TaskStatus, member_ids
from .parsing import DateTimeInputError, parse_datetime_in_zone

TERMINAL = frozenset({StatusType.COMPLETE, StatusType.CANCELLED})
# After a terminal status the only way on is an explicit reopen to NOTSTARTED.
REOPEN = StatusType.NOTSTARTED


def check_transition(task: Task, new: StatusType) -> None:
    """The one place status transitions are decided; raises Conflict with the reason."""
    if task.is_deleted:
        raise Conflict("The task is deleted; its status can no longer change.", {"type": ["task is deleted"]})
    if task.status in TERMINAL and new != REOPEN:
        raise Conflict(
            f"The task is {task.status}; report {REOPEN} to reopen it before reporting {new}.",
            {"type": [f"not allowed after {task.status}"]},
        )


def lock_task(task: Task) -> Task:
    """Re-read `task` under a row lock; callers must be inside a transaction."""
    return Task.objects.select_for_update().get(pk=task.pk)


@transaction.atomic
def task_record_edit(*, task: Task, changed: list[str], created: bool = False) -> None:
    """Account for a task a form (the admin) saved: journal, version and events, as the API would."""
    if created:
        TaskStatus.objects.create(
            organization_id=task.organization_id, task=task, type=task.status, time=task.status_changed_at,
            source=TaskStatus.Source.ADMIN, notes="Task created",
        )  # fmt: skip
        events.task_changed(task, created=True, changed=[], crew_added=set(), crew_removed=set())
        return
    if not changed:
        return
    task = lock_task(task)
    task.version += 1
    task.save(update_fields=["version", "updated_at"])
    events.task_changed(task, created=False, changed=changed, crew_added=set(), crew_removed=set())


@transaction.atomic
def task_report_status(
    *,
    task: Task,
    type: StatusType | str,
    source: str = TaskStatus.Source.API,
    time: datetime | None = None,
    notes: str = "",
    reporter: Person | None = None,
    reporter_name: str = "",
    visible_to_customer: bool = True,
    extra_fields: dict[str, Any] | None = None,
    files: list | None = None,
    request_id: str | None = None,
    suppress_webhooks: bool = False,
) -> TaskStatus:
    """Add a journal entry and move the task's current status with it."""
    new = StatusType.parse(type) if isinstance(type, str) else type
    task = lock_task(task)
    check_transition(task, new)
    time = time or timezone.now()
    eta = reported_eta(task, new, extra_fields or {}, time)
    entry = TaskStatus.objects.create(
        organization_id=task.organization_id,
        task=task,
        type=new,
        time=time,
        source=source,
        notes=notes,
        reporter=reporter,
        reporter_name=reporter_name or (reporter.full_name if reporter else ""),
        visible_to_customer=visible_to_customer,
        extra_fields=extra_fields or {},
    )
    if files:
        attach_to_status(entry, files)
    task.status, task.status_changed_at, task.eta = new, entry.time, eta
    if new == StatusType.COMPLETE:
        task.completed_datetime = entry.time
    elif new == REOPEN:
        task.completed_datetime = None
    task.version += 1
    task.save(update_fields=["status", "status_changed_at", "eta", "completed_datetime", "version", "updated_at"])
    events.status_reported(task, entry, request_id, send_webhooks=not suppress_webhooks)
    closes = window_end(task)
    if eta and closes and eta > closes:
        events.task_late(task, eta, closes, request_id, send_webhooks=not suppress_webhooks)
    return entry


def window_end(task: Task) -> datetime | None:
    """When the customer was told the crew would arrive at the latest: the window's end, else the start."""
    if task.unscheduled or not task.start_datetime:
        return None
    return task.end_datetime or task.start_datetime


MAX_ETA_MINUTES = 24 * 60


def reported_eta(task: Task, new: StatusType, extra: dict[str, Any], reported_at: datetime) -> datetime | None:
    """An ENROUTE report may say when the crew arrives (`eta` or `eta_minutes`); other statuses clear it."""
    if new != StatusType.ENROUTE:
        return None
    if extra.get("eta") not in (None, ""):
        try:
            return parse_datetime_in_zone(extra["eta"], task.organization.tz)
        except DateTimeInputError as exc:
            raise ValidationFailed(str(exc), {"extra_fields": {"eta": [str(exc)]}}) from None
    minutes = extra.get("eta_minutes")
    if minutes is None:
        return None
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 0 <= minutes <= MAX_ETA_MINUTES:
        message = f"eta_minutes must be a whole number from 0 to {MAX_ETA_MINUTES}."
        raise ValidationFailed(message, {"extra_fields": {"eta_minutes": [message]}})
    return reported_at + timedelta(minutes=minutes)


@transaction.atomic
def task_assign(*, task: Task, crew: Iterable[Person], replace: bool = False) -> set[int]:
    """Assign crew (added to those already assigned unless `replace`); returns the ids added."""
    task = lock_task(task)
    crew = [person for person in crew if person.organization_id == task.organization_id]
    if not replace:
        crew = list({p.pk: p for p in [*task.assignees.all(), *crew]}.values())
    added, removed = _write_members(task, "assignees", crew, created=False)
    if added or removed:
        task.version += 1
        task.save(update_fields=["version", "updated_at"])
        events.task_changed(task, created=False, changed=["assignees"], crew_added=added, crew_removed=removed)
    return added


@transaction.atomic
def task_delete(*, task: Task, request_id: str | None = None, suppress_webhooks: bool = False) -> Task:
    """Soft-delete: the task leaves lists and its external id is free again; its history stays."""
    task = lock_task(task)
    if not task.is_deleted:
        task.deleted_at = timezone.now()
        task.version += 1
        task.save(update_fields=["deleted_at", "version", "updated_at"])
        events.task_deleted(task, request_id, send_webhooks=not suppress_webhooks)
    return task


MAX_MESSAGE_LENGTH = 2000


@transaction.atomic
def task_customer_message(*, task: Task, text: str, source: str = TaskStatus.Source.TRACKER) -> TaskStatus:
    """A message from the customer (tracker page or SMS reply): a journal entry for dispatchers."""
    text = (text or "").strip()
    if not text or len(text) > MAX_MESSAGE_LENGTH:
        raise ValidationFailed(
            f"A message must be 1 to {MAX_MESSAGE_LENGTH} characters.", {"message": ["Empty or too long."]}
        )
    task = lock_task(task)
    if task.is_deleted:
        raise Conflict("The task is deleted.", {"message": ["task is deleted"]})
    entry = TaskStatus.objects.create(
        organization_id=task.organization_id, task=task, type=task.status, kind=TaskStatus.Kind.CUSTOMER_MESSAGE,
        source=source, notes=text, visible_to_customer=True,
    )  # fmt: skip
    task.version += 1
    task.save(update_fields=["version", "updated_at"])
    events.customer_message(task, entry)
    return entry


@transaction.atomic
def task_rate(*, task: Task, score: int, text: str = "") -> Rating:
    """The customer's rating of a completed task, once."""
    if not 1 <= int(score) <= 5:
        raise ValidationFailed("A rating is a whole number from 1 to 5.", {"score": ["From 1 to 5."]})
    if len(text) > MAX_MESSAGE_LENGTH:
        raise ValidationFailed("The comment is too long.", {"text": [f"At most {MAX_MESSAGE_LENGTH} characters."]})
    task = lock_task(task)
    if task.status != StatusType.COMPLETE:
        raise Conflict("Only a completed task can be rated.", {"score": ["The task is not complete."]})
    if Rating.objects.filter(task=task).exists():
        raise Conflict("This task has already been rated.", {"score": ["Already rated."]})
    rating = Rating.objects.create(organization_id=task.organization_id, task=task, score=score, text=text.strip())
    task.version += 1
    task.save(update_fields=["version", "updated_at"])
    events.task_rated(task, rating)
    return rating


# --- Create and update ----------------------------------------------------------------------

RELATIONS = frozenset({"group", "unit", "creator", "customer"})
ADDRESS_FIELDS = ("title", "address_line_1", "address_line_2", "city", "state", "country", "zipcode", "lat", "lng")


@dataclass
class TaskChanges:
    """What one request asks of a task, whichever route it came by; None means 'not sent'."""

    fields: dict[str, Any] = field(default_factory=dict)
    customer: Person | None = None
    address: dict[str, Any] | None = None
    additional_addresses: list[dict[str, Any]] | None = None
    assignees: list[Person] | None = None
    resources: list[Resource] | None = None
    suppress_webhooks: bool = False
    request_id: str | None = None


@dataclass
class UpsertResult:
    task: Task
    created: bool
    changed: list[str] = field(default_factory=list)
    # The task as the change's webhook events carry it, when one was built: its REST representation
    # as the task now is (TaskOutSerializer), so the response need not build it a second time.
    representation: dict[str, Any] | None = None


MEMBER_RELATIONS = ("assignees", "resources")
# What a change lists in `changed` that is not a column of the task.
MEMBER_FIELDS = frozenset({*MEMBER_RELATIONS, "addresses"})


def _member_ids(relation: str) -> Subquery:
    """The ids of the task's members of an M2M relation, comma-separated, as a column of the task's row."""
    through = Task._meta.get_field(relation).remote_field.through
    column = Task._meta.get_field(relation).m2m_reverse_name()
    rows = through.objects.filter(task=OuterRef("pk")).values("task")
    return Subquery(rows.annotate(ids=StringAgg(Cast(column, CharField()), Value(","))).values("ids"))


TASK_COLUMNS, PERSON_COLUMNS, RATING_COLUMNS = columns(Task), columns(Person), columns(Rating)


def locked_rows(organization_id: int, external_id: str):
    """find_for_update()'s query: the task's columns, its customer's and rating's, its member ids."""
    return (
        Task.objects.select_for_update(of=("self",))
        .filter(organization=organization_id, external_id=external_id, deleted_at__isnull=True)
        .order_by()  # unique among live tasks (task_external_id_unique): no ORDER BY to build or run
        .values(
            *TASK_COLUMNS,
            *(f"customer__{name}" for name in PERSON_COLUMNS),
            *(f"rating__{name}" for name in RATING_COLUMNS),
            **{f"current_{relation}": _member_ids(relation) for relation in MEMBER_RELATIONS},
        )[:1]
    )


def cache_rating(task: Task, rating: Rating | None) -> None:
    """Set the task's reverse one-to-one as select_related would: None makes `task.rating` raise."""
    if rating is not None:
        Rating.task.field.set_cached_value(rating, task)
    Task.rating.related.set_cached_value(task, rating)


# Compiled once per thread: compiling this query cost more than running it.
LOCKED_ROW = Prepared(locked_rows, -(2**62) + 3, "\x00external id\x00")

ADDRESS_COLUMNS = columns(TaskAddress)


def address_rows(task_id: int):
    return TaskAddress.objects.filter(task_id=task_id).order_by("position").values(*ADDRESS_COLUMNS)


# What an update compares the addresses sent with, and how it removes them; compiled once per thread, as LOCKED_ROW.
TASK_MARK = -(2**62) + 4
ADDRESS_ROWS = Prepared(address_rows, TASK_MARK)
ADDRESSES_OF = PreparedDelete(lambda task_id: TaskAddress.objects.filter(task_id=task_id), TASK_MARK)
MEMBER_MARK, MAX_PREPARED_MEMBERS = -(2**62) + 100, 20
_member_deletes: dict[tuple, PreparedDelete] = {}


def _delete_members(through: type[Model], column: str, task_id: int, ids: set[int]) -> None:
    """Remove these members of the task: one compiled DELETE per thread and count (the ORM's above 20)."""
    if len(ids) > MAX_PREPARED_MEMBERS:
        through.objects.filter(task_id=task_id, **{f"{column}__in": ids}).delete()
        return
    key = (through, column, len(ids))
    found = _member_deletes.get(key)
    if found is None:

        def build(task: int, *members: int) -> QuerySet:
            return through.objects.filter(task_id=task, **{f"{column}__in": members})

        marks = [MEMBER_MARK + n for n in range(len(ids))]
        found = _member_deletes.setdefault(key, PreparedDelete(build, TASK_MARK, *marks))
    found.run(task_id, *sorted(ids))


def current_addresses(task: Task) -> list[TaskAddress]:
    """The task's addresses in order: the ones already loaded, else one compiled query."""
    loaded = getattr(task, "_prefetched_objects_cache", {}).get("addresses")
    if loaded is not None:
        return list(loaded)
    db = ADDRESS_ROWS.db
    found = [from_row(TaskAddress, row, db, ADDRESS_COLUMNS) for row in ADDRESS_ROWS.rows(task.pk)]
    for address in found:
        TaskAddress.task.field.set_cached_value(address, task)
    return found


def find_for_update(organization: Organization, external_id: str) -> Task | None:
    """The org's live task with this external id, locked, in one query.

    With its customer, rating, crew ids and resource ids: what the change compares and the
    response shows.
    """
    row = LOCKED_ROW.first(organization.pk, external_id)
    if row is None:
        return None
    db = LOCKED_ROW.db
    task = from_row(Task, row, db, TASK_COLUMNS)
    Task.organization.field.set_cached_value(task, organization)
    Task.customer.field.set_cached_value(task, from_row(Person, row, db, PERSON_COLUMNS, "customer__"))
    cache_rating(task, from_row(Rating, row, db, RATING_COLUMNS, "rating__"))
    for relation in MEMBER_RELATIONS:
        ids = row[f"current_{relation}"]
        task.__dict__[f"_{relation}_ids"] = {int(pk) for pk in ids.split(",")} if ids else set()
    return task


def _insert_task(
    organization: Organization, external_id: str | None, fields: dict[str, Any], savepoint: bool = True
) -> Task | None:
    """Insert, or return None when a concurrent request inserted the same external id first.

    Without `savepoint` that IntegrityError reaches the caller, which retries the whole change.
    """
    task = Task(organization=organization, external_id=external_id, **fields)
    if external_id is None or not savepoint:
        insert_all([task])
        return task
    try:
        with transaction.atomic():
            insert_all([task])
    except IntegrityError:
        return None
    return task


def _apply_fields(task: Task, fields: dict[str, Any]) -> list[str]:
    changed = []
    for name, value in fields.items():
        if isinstance(value, Model) or (value is None and name in RELATIONS):
            # Compare foreign keys by id: reading the relation would cost a query.
            current, wanted = getattr(task, f"{name}_id"), value.pk if value is not None else None
        else:
            current, wanted = getattr(task, name), value
        if current != wanted:
            setattr(task, name, value)
            changed.append(name)
    return changed


def _write_addresses(task: Task, changes: TaskChanges, created: bool) -> bool:
    if changes.address is None and changes.additional_addresses is None:
        return False
    existing = [] if created else current_addresses(task)
    first = next((a for a in existing if a.position == 0), None)
    rows = [first] if first else []
    if changes.address is not None:
        values = {name: getattr(first, name) for name in ADDRESS_FIELDS} if first else {}
        rows = [TaskAddress(task=task, position=0, **{**values, **changes.address})]
    if changes.additional_addresses is None:
        rows += [a for a in existing if a.position > 0]
    else:
        rows += [TaskAddress(task=task, position=i, **a) for i, a in enumerate(changes.additional_addresses, 1)]
    before = [tuple(getattr(a, n) for n in ADDRESS_FIELDS) for a in sorted(existing, key=lambda a: a.position)]
    after = [tuple(getattr(a, n) for n in ADDRESS_FIELDS) for a in rows if a is not None]
    if before == after and not created:
        task.__dict__.setdefault("_prefetched_objects_cache", {})["addresses"] = existing
        return False
    if existing:
        ADDRESSES_OF.run(task.pk)
    for row in rows:
        row.pk = None
    insert_all(rows)
    task.__dict__.setdefault("_prefetched_objects_cache", {})["addresses"] = rows
    return True


def _write_members(task: Task, relation: str, wanted: list | None, created: bool) -> tuple[set[int], set[int]]:
    """Replace the members of an M2M relation; returns (added ids, removed ids)."""
    if wanted is None:
        if created:  # a new task has none: spare the response and the events a query
            task.__dict__.setdefault("_prefetched_objects_cache", {})[relation] = []
        return set(), set()
    manager = getattr(task, relation)
    through = manager.through
    column = manager.target_field_name + "_id"
    current = set() if created else member_ids(task, relation)
    target = {obj.pk for obj in wanted}
    added, removed = target - current, current - target
    if removed:
        _delete_members(through, column, task.pk, removed)
    if added:
        insert_all([through(task_id=task.pk, **{column: pk}) for pk in sorted(added)])
    task.__dict__.setdefault("_prefetched_objects_cache", {})[relation] = list(wanted)
    task.__dict__.pop(f"_{relation}_ids", None)
    return added, removed


def _fields_of(changes: TaskChanges) -> dict[str, Any]:
    fields = dict(changes.fields)
    if changes.customer is not None:
        fields["customer"] = changes.customer
    return fields


@transaction.atomic(savepoint=False)
def task_upsert(
    *,
    organization: Organization,
    external_id: str | None,
    changes: TaskChanges,
    locked: Task | None = None,
    searched: bool = False,
    insert_savepoint: bool = True,
) -> UpsertResult:
    """Create the org's task with this external id, or update only the fields sent; one transaction.

    `locked` is the task when the caller already holds find_for_update()'s lock on it; `searched`
    says the caller already ran find_for_update() in this transaction and found nothing.
    Race-safe: the row is locked when it exists; when two requests create the same new id at
    once, the unique index lets one insert and the other falls back to locking and updating it
    (or, with `insert_savepoint=False`, raises IntegrityError for the caller to retry).
    """
    task = locked
    if task is None and external_id and not searched:
        task = find_for_update(organization, external_id)
    if task is None:
        task = _insert_task(organization, external_id, _fields_of(changes), savepoint=insert_savepoint)
        if task is not None:
            Task.rating.related.set_cached_value(task, None)  # a new task has no rating: no query to show it
            return _apply_changes(task, changes, created=True)
        task = find_for_update(organization, external_id)
    task.organization = organization  # already loaded: spare the events a query
    return _apply_changes(task, changes, created=False)


@transaction.atomic(savepoint=False)
def task_update(*, task: Task, changes: TaskChanges) -> UpsertResult:
    """Update only the fields sent of an existing task."""
    return _apply_changes(lock_task(task), changes, created=False)


def _apply_changes(task: Task, changes: TaskChanges, *, created: bool) -> UpsertResult:
    changed = [] if created else _apply_fields(task, _fields_of(changes))
    if _write_addresses(task, changes, created):
        changed.append("addresses")
    crew_added, crew_removed = _write_members(task, "assignees", changes.assignees, created)
    res_added, res_removed = _write_members(task, "resources", changes.resources, created)
    if crew_added or crew_removed:
        changed.append("assignees")
    if res_added or res_removed:
        changed.append("resources")
    if created:
        insert_all([TaskStatus(
            organization_id=task.organization_id, task=task, type=task.status, time=task.status_changed_at,
            source=TaskStatus.Source.SYSTEM, notes="Task created",
        )])  # fmt: skip
    elif changed:
        task.version += 1
        # Only the columns the change set: the rest of the row is what the lock read.
        save_fields(task, [*(name for name in changed if name not in MEMBER_FIELDS), "version", "updated_at"])
    representation = None
    if created or changed:
        representation = events.task_changed(
            task, created=created, changed=changed, crew_added=crew_added, crew_removed=crew_removed,
            request_id=changes.request_id, send_webhooks=not changes.suppress_webhooks,
        )  # fmt: skip
    return UpsertResult(task=task, created=created, changed=changed, representation=representation)
