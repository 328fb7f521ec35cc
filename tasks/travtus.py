"""The Travtus-compatible "Create Task" and its update: person specs, groups and units, request log."""

from typing import Any

from django.db import transaction

from taskhub.errors import Conflict, NotFound, ValidationFailed
from taskhub.models import Organization

from . import events
from .models import Person, StatusType, Task, TaskRequest, TaskStatus
from .references import person_resolve, resolve_group, resolve_one, resolve_unit
from .services import TaskChanges, task_delete, task_report_status, task_update, task_upsert

# Travtus' coarse statuses, reported as the journal type they stand for.
STATUS_TYPES = {"created": StatusType.NOTSTARTED, "in_progress": StatusType.STARTED, "completed": StatusType.COMPLETE}
SCALARS = ("due_datetime", "reminder_datetime", "importance", "relevant_conversation", "notes", "title")


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    fields = {name: data[name] for name in SCALARS if name in data}
    if "description" in data:
        fields["details"] = data["description"]
    return fields


def _create_changes(organization: Organization, data: dict[str, Any], request_id: str) -> TaskChanges:
    fields = _fields(data)
    group = resolve_group(organization, group_id=data.get("group_id"), external_ref=data.get("group_external_ref"))
    fields["group"] = group
    if "unit_id" in data or "unit_external_ref" in data:
        unit = resolve_unit(organization, unit_id=data.get("unit_id"), external_ref=data.get("unit_external_ref"))
        if unit.group_id != group.pk:
            field = "unit_id" if "unit_id" in data else "unit_external_ref"
            raise ValidationFailed("The unit does not belong to the group.", {field: ["Unit is not in this group."]})
        fields["unit"] = unit
    if data.get("creator"):
        fields["creator"] = person_resolve(organization, data["creator"], field="creator", role="staff")
    assignees = None
    if data.get("assignee"):
        assignees = [person_resolve(organization, data["assignee"], field="assignee", role="crew")]
    customer = None
    if data.get("resident"):
        customer = person_resolve(organization, data["resident"], field="resident", role="customer")
    return TaskChanges(fields=fields, customer=customer, assignees=assignees, request_id=request_id)


@transaction.atomic
def travtus_create(*, organization: Organization, data: dict[str, Any], request_id: str) -> Task:
    """POST /task/: always a new task (an external_ref already in use is a 409)."""
    external_ref = data.get("external_ref") or None
    if external_ref and Task.objects.alive().filter(organization=organization, external_id=external_ref).exists():
        raise Conflict("A task with this external_ref already exists.", {"external_ref": ["Already in use."]})
    changes = _create_changes(organization, data, request_id)
    result = task_upsert(organization=organization, external_id=external_ref, changes=changes)
    record_request(organization, request_id=request_id, route="POST /task/", status_code=200, task=result.task)
    return result.task


def _target(organization: Organization, data: dict[str, Any]) -> Task:
    tasks = Task.objects.alive().select_for_update().filter(organization=organization)
    task = (
        tasks.filter(identifier=data["identifier"]).first()
        if "identifier" in data
        else tasks.filter(external_id=data["external_ref"]).first()
    )
    if task is None:
        raise NotFound("No task with this identifier or external_ref.")
    return task


@transaction.atomic
def travtus_update(*, organization: Organization, data: dict[str, Any], request_id: str) -> Task:
    """PATCH /task/: the fields sent, then the status change (deleted = soft delete)."""
    task = _target(organization, data)
    changes = TaskChanges(fields=_fields(data), request_id=request_id)
    if "completed_datetime" in data:
        changes.fields["completed_datetime"] = data["completed_datetime"]
    if "resident_id" in data:
        resident = data["resident_id"]
        changes.fields["customer"] = resolve_one(Person, organization, resident, "resident_id") if resident else None
    if "assignee_id" in data:
        assignee = data["assignee_id"]
        changes.assignees = [resolve_one(Person, organization, assignee, "assignee_id")] if assignee else []
    task = task_update(task=task, changes=changes).task
    status = data.get("status")
    if status == "deleted":
        task = task_delete(task=task, request_id=request_id)
    elif status and task.coarse_status != status:
        task_report_status(task=task, type=STATUS_TYPES[status], source=TaskStatus.Source.API, request_id=request_id)
    record_request(organization, request_id=request_id, route="PATCH /task/", status_code=200, task=task)
    return task


@transaction.atomic(savepoint=False)
def record_request(
    organization: Organization,
    *,
    request_id: str,
    route: str,
    status_code: int,
    task: Task | None = None,
    errors: dict | None = None,
) -> TaskRequest:
    """Log the request's outcome and send it as request.completed / request.failed."""
    ok = status_code < 400
    entry = TaskRequest.objects.create(
        organization=organization, request_id=request_id, method=route.split()[0], route=route,
        outcome=TaskRequest.Outcome.COMPLETED if ok else TaskRequest.Outcome.FAILED, status_code=status_code,
        task=task, errors=errors or {},
    )  # fmt: skip
    events.request_finished(organization, request_id=str(request_id), ok=ok, task=task, route=route, errors=errors)
    return entry
